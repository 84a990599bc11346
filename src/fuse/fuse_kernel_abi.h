// The parts of the kernel's FUSE protocol (include/uapi/linux/fuse.h) that
// clonefs reads or writes itself, defined here because Debian 12's headers
// (protocol 7.38, libfuse 3.14) predate FUSE passthrough (7.40, Linux 6.9).
//
// Only what fuse_channel.cc, fuse_ops.cc and uring_queues.cc need: the
// request and reply headers, INIT's request and reply, OPEN's reply, the
// backing-file ioctls of /dev/fuse, and FUSE over io_uring's buffers and
// commands (7.42, Linux 6.14). Layouts are checked below: sizes and offsets against
// the kernel's documented ABI, and against the system header where it has
// the same structure.
//
// THREAD SAFETY: constants and plain structs.
#pragma once

#include <linux/ioctl.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace clonefs::fuse::kabi {

// Opcodes.
inline constexpr uint32_t kOpRead = 15;
inline constexpr uint32_t kOpWrite = 16;
inline constexpr uint32_t kOpInit = 26;
inline constexpr uint32_t kOpInterrupt = 36;
// The high bit of `unique` marks an INTERRUPT (and its reply).
inline constexpr uint64_t kIntReqBit = 1ull << 63;

// INIT flags (fuse_init_in.flags | flags2 << 32, and the same in the reply).
inline constexpr uint64_t kInitExt = 1ull << 30;      // FUSE_INIT_EXT: flags2 is valid
inline constexpr uint64_t kPassthrough = 1ull << 37;  // FUSE_PASSTHROUGH (7.40)
inline constexpr uint64_t kOverIoUring = 1ull << 41;  // FUSE_OVER_IO_URING (7.42)

// fuse_open_out.open_flags.
inline constexpr uint32_t kFopenDirectIo = 1u << 0;  // FOPEN_DIRECT_IO
// FOPEN_PARALLEL_DIRECT_WRITES (7.36)
inline constexpr uint32_t kFopenParallelDirectWrites = 1u << 6;
inline constexpr uint32_t kFopenPassthrough = 1u << 7;  // FOPEN_PASSTHROUGH (7.40)

// The kernel accepts 1..FILESYSTEM_MAX_STACK_DEPTH in fuse_init_out.max_stack_depth;
// a backing file must lie on a file system stacked less deep than that.
inline constexpr uint32_t kFilesystemMaxStackDepth = 2;

struct InHeader {  // fuse_in_header
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;
  uint16_t padding;
};

struct ReadIn {  // fuse_read_in
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t read_flags;
  uint64_t lock_owner;
  uint32_t flags;
  uint32_t padding;
};

struct WriteIn {  // fuse_write_in
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t write_flags;
  uint64_t lock_owner;
  uint32_t flags;
  uint32_t padding;
};

struct WriteOut {  // fuse_write_out
  uint32_t size;
  uint32_t padding;
};

struct OutHeader {  // fuse_out_header
  uint32_t len;
  int32_t error;
  uint64_t unique;
};

struct InitIn {  // fuse_init_in (7.36+)
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint32_t flags2;
  uint32_t unused[11];
};

struct InitOut {  // fuse_init_out (7.40+: max_stack_depth was unused[0] before)
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;
  uint16_t request_timeout;  // 7.43
  uint16_t unused[11];
};

struct OpenOut {  // fuse_open_out (7.40+: backing_id was padding before)
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};

struct BackingMap {  // fuse_backing_map (7.40)
  int32_t fd;
  uint32_t flags;  // must be 0
  uint64_t padding;
};

// FUSE over io_uring. Each ring entry is two buffers, given to the kernel
// once (REGISTER, an IORING_OP_URING_CMD on the /dev/fuse descriptor whose
// sqe->addr points at two iovecs): the headers below, and a payload buffer
// of at least the connection's largest request or reply payload. A request
// arrives as: fuse_in_header in in_out, its first argument (the per-opcode
// header, e.g. fuse_write_in; may be empty) in op_in, every further argument
// in the payload, and payload_sz. The reply goes back the same way: the
// fuse_out_header in in_out, every reply argument in the payload, with
// payload_sz; COMMIT_AND_FETCH then hands it over and waits for the next
// request in one command.
inline constexpr size_t kUringInOutSize = 128;          // FUSE_URING_IN_OUT_HEADER_SZ
inline constexpr size_t kUringOpInSize = 128;           // FUSE_URING_OP_IN_OUT_SZ
inline constexpr uint32_t kUringCmdRegister = 1;        // FUSE_IO_URING_CMD_REGISTER
inline constexpr uint32_t kUringCmdCommitAndFetch = 2;  // FUSE_IO_URING_CMD_COMMIT_AND_FETCH

struct UringEntInOut {  // fuse_uring_ent_in_out
  uint64_t flags;
  uint64_t commit_id;   // the request's unique; echoed in UringCmdReq::commit_id
  uint32_t payload_sz;  // bytes of the payload buffer in use, either way
  uint32_t padding;
  uint64_t reserved;
};

struct UringReqHeader {             // fuse_uring_req_header: iov[0] of a REGISTER
  uint8_t in_out[kUringInOutSize];  // fuse_in_header, then fuse_out_header
  uint8_t op_in[kUringOpInSize];    // the per-opcode header of a request
  UringEntInOut ring_ent_in_out;
};

struct UringCmdReq {  // fuse_uring_cmd_req: in the SQE's 80-byte command area
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;  // the queue: one per possible CPU, numbered as the CPUs
  uint8_t padding[6];
};

// A field of a protocol message at byte `off` of `p`, which need not be
// aligned for T (requests and replies are handled as bytes).
template <typename T>
T Load(const void* p, size_t off) {
  T v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + off, sizeof(v));
  return v;
}
template <typename T>
void Store(void* p, size_t off, T v) {
  std::memcpy(static_cast<uint8_t*>(p) + off, &v, sizeof(v));
}

inline constexpr uint32_t kDevIocMagic = 229;
inline constexpr unsigned long kDevIocBackingOpen = _IOW(kDevIocMagic, 1, BackingMap);
inline constexpr unsigned long kDevIocBackingClose = _IOW(kDevIocMagic, 2, uint32_t);

static_assert(sizeof(InHeader) == 40);
static_assert(sizeof(OutHeader) == 16);
static_assert(sizeof(InitIn) == 64 && offsetof(InitIn, flags2) == 16);
static_assert(sizeof(InitOut) == 64);
static_assert(offsetof(InitOut, flags2) == 32 && offsetof(InitOut, max_stack_depth) == 36);
static_assert(sizeof(OpenOut) == 16 && offsetof(OpenOut, open_flags) == 8 &&
              offsetof(OpenOut, backing_id) == 12);
static_assert(sizeof(BackingMap) == 16);
static_assert(sizeof(ReadIn) == 40 && offsetof(ReadIn, size) == 16);
static_assert(sizeof(WriteIn) == 40 && offsetof(WriteIn, flags) == 32);
static_assert(sizeof(UringEntInOut) == 32 && offsetof(UringEntInOut, payload_sz) == 16);
static_assert(sizeof(UringReqHeader) == 288 && offsetof(UringReqHeader, op_in) == 128 &&
              offsetof(UringReqHeader, ring_ent_in_out) == 256);
static_assert(sizeof(UringCmdReq) == 24 && offsetof(UringCmdReq, qid) == 16);
// The ioctl numbers as the kernel spells them (_IOW(229, 1, 16 bytes), _IOW(229, 2, 4 bytes)).
static_assert(kDevIocBackingOpen == 0x4010e501ul && kDevIocBackingClose == 0x4004e502ul);

}  // namespace clonefs::fuse::kabi
