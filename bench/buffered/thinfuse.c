// thinfuse: the thinnest libfuse server over one file, the baseline for
// what FUSE itself costs. Exposes FILE as MOUNTPOINT/img with the same open
// flags clonefs uses (direct_io, parallel direct writes); read and write
// are one pread/pwrite on FILE opened buffered (or O_DIRECT with -d). No
// metadata, no locking, libfuse's own multi-threaded loop.
//
//   thinfuse [-d] FILE MOUNTPOINT      (foreground; fusermount3 -u to stop)
#define _GNU_SOURCE
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6)
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int g_fd = -1;
static off_t g_size;

static void fill(fuse_ino_t ino, struct stat* st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  if (ino == 1) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else {
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = g_size;
  }
}

static void op_init(void* u, struct fuse_conn_info* c) {
  (void)u;
  c->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
               FUSE_CAP_SPLICE_MOVE);
  if (c->capable & FUSE_CAP_ASYNC_DIO) c->want |= FUSE_CAP_ASYNC_DIO;
  c->max_write = 1 << 20;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent != 1 || strcmp(name, "img") != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = 2;
  e.attr_timeout = e.entry_timeout = 3600;
  fill(2, &e.attr);
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)fi;
  struct stat st;
  fill(ino, &st);
  fuse_reply_attr(req, &st, 3600);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)ino;
  (void)fi;
  struct fuse_open_out out;  // as clonefs: direct_io + parallel direct writes
  memset(&out, 0, sizeof(out));
  out.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
  fuse_reply_buf(req, (const char*)&out, sizeof(out));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info* fi) {
  (void)ino;
  (void)fi;
  char* buf = aligned_alloc(4096, (size + 4095) / 4096 * 4096);
  ssize_t n = pread(g_fd, buf, size, off);
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_buf(req, buf, (size_t)n);
  }
  free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                     struct fuse_file_info* fi) {
  (void)ino;
  (void)fi;
  ssize_t n = pwrite(g_fd, buf, size, off);
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else {
    fuse_reply_write(req, (size_t)n);
  }
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int ds, struct fuse_file_info* fi) {
  (void)ino;
  (void)ds;
  (void)fi;
  fuse_reply_err(req, fdatasync(g_fd) == 0 ? 0 : errno);
}

int main(int argc, char** argv) {
  int direct = 0;
  if (argc > 1 && strcmp(argv[1], "-d") == 0) {
    direct = 1;
    argv++;
    argc--;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: thinfuse [-d] FILE MOUNTPOINT\n");
    return 2;
  }
  g_fd = open(argv[1], O_RDWR | (direct ? O_DIRECT : 0));
  if (g_fd < 0) {
    perror(argv[1]);
    return 1;
  }
  g_size = lseek(g_fd, 0, SEEK_END);
  static const struct fuse_lowlevel_ops ops = {.init = op_init, .lookup = op_lookup,
                                               .getattr = op_getattr, .open = op_open,
                                               .read = op_read, .write = op_write,
                                               .fsync = op_fsync};
  char* fargv[] = {argv[0], "-o", "default_permissions,fsname=thinfuse", NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
  struct fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
  if (se == NULL || fuse_session_mount(se, argv[2]) != 0) return 1;
  struct fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, 64);
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return rc == 0 ? 0 : 1;
}
