#include "mount/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "fuse/mount_table.h"
#include "fuse/runtime_info.h"
#include "metadata/metadata.h"

namespace clonefs::testing {

RunResult Sh(const std::string& cmd) {
  RunResult r;
  FILE* p = popen(("exec 2>&1; " + cmd).c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool ShOk(const std::string& cmd) {
  RunResult r = Sh(cmd);
  EXPECT_EQ(r.code, 0) << "command failed: " << cmd << "\n" << r.out;
  return r.code == 0;
}

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string ClonefsBinary() { return CLONEFS_BINARY; }

std::string Sha256(const std::string& path) {
  RunResult r = Sh("sha256sum " + Quote(path));
  return r.code == 0 ? r.out.substr(0, 64) : "error: " + r.out;
}

void WriteRandomFile(const std::string& path, uint64_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> block(512);
  for (uint64_t done = 0; done < size; done += 4096) {
    for (auto& w : block) w = rng();
    f.write(reinterpret_cast<const char*>(block.data()),
            static_cast<std::streamsize>(std::min<uint64_t>(4096, size - done)));
  }
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::vector<uint8_t> v;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return v;
  constexpr size_t kChunk = 1 << 20;
  while (true) {
    const size_t have = v.size();
    v.resize(have + kChunk);
    const ssize_t n = read(fd, v.data() + have, kChunk);
    if (n <= 0) {
      v.resize(have);  // end of file (or an error: what was read so far)
      break;
    }
    v.resize(have + static_cast<size_t>(n));
  }
  close(fd);
  return v;
}

std::unique_ptr<metadata::Metadata> OpenMetadataOffline(const std::string& metadata_dir) {
  auto sb = metadata::Metadata::ReadSuperblock(metadata_dir);
  if (!sb.ok()) {
    ADD_FAILURE() << "read superblock " << metadata_dir << ": " << sb.status().ToString();
    return nullptr;
  }
  metadata::MetadataOptions o;
  o.dir = metadata_dir;
  o.image_size = sb->image_size;
  o.region_size = sb->region_size;
  o.read_only = true;
  o.verify_identities = false;
  o.create_if_missing = false;
  auto md = metadata::Metadata::Open(o);
  if (!md.ok()) {
    ADD_FAILURE() << "open metadata " << metadata_dir << ": " << md.status().ToString();
    return nullptr;
  }
  return std::move(*md);
}

Result<control::StatusReport> QueryStatus(const std::string& mnt) {
  RunResult js = Sh(ClonefsBinary() + " status --json " + Quote(mnt));
  if (js.code != 0) return Status::IoError("clonefs status --json: " + js.out);
  return control::ReportFromJsonText(js.out);
}

int64_t HydratedRegions(const std::string& metadata_dir) {
  auto md = OpenMetadataOffline(metadata_dir);
  return md ? static_cast<int64_t>(md->NrHydratedRegions()) : -1;
}

CloneDir::CloneDir() {
  src = dir_ / "src.img";
  dst = dir_ / "dst.img";
  mnt = dir_ / "mnt";
  log = dir_ / "clonefs.log";
  done_flag = dir_ / "complete";
  metadata = dst + ".clonefs";
  mkdir(mnt.c_str(), 0755);
}

CloneDir::~CloneDir() {
  for (const auto& l : loops_) Sh("umount -l " + l + " 2>/dev/null; losetup -d " + l);
  if (IsMounted()) Sh(ClonefsBinary() + " unmount --force " + Quote(mnt));
  // A lazily detached daemon finishes on its own; give it a moment so the
  // temporary directory can go.
  for (int i = 0; i < 100 && DaemonPid() != 0; ++i) usleep(20000);
}

RunResult CloneDir::Mount(const std::string& extra) {
  return Sh(ClonefsBinary() + " mount --log-file " + Quote(log) + " --on-complete " +
             Quote("touch " + done_flag) + " " + extra + " " + Quote(src) + " " + Quote(dst) +
             " " + Quote(mnt));
}

RunResult CloneDir::Unmount(const std::string& extra) {
  return Sh(ClonefsBinary() + " unmount " + extra + " " + Quote(mnt));
}

bool CloneDir::WaitComplete(int seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (access(done_flag.c_str(), F_OK) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool CloneDir::IsMounted() const {
  auto e = fuse::FindMount(mnt);
  return e.ok() && e->has_value() && (*e)->fstype == "fuse.clonefs";
}

int CloneDir::DaemonPid() const {
  // The mounted clone's record (whatever --metadata it was given), else the
  // record in the default metadata directory (a lazily detached daemon).
  auto info = fuse::FindDaemonInfo(mnt);
  if (!info.ok()) info = fuse::ReadDaemonRecord(metadata);
  return info.ok() && fuse::IsClonefsProcess(info->pid) ? info->pid : 0;
}

std::string CloneDir::LogText() const {
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string CloneDir::AttachLoop() {
  RunResult r = Sh("losetup --direct-io=on -f --show " + Quote(exposed()));
  if (r.code != 0) {
    ADD_FAILURE() << "losetup: " << r.out;
    return "";
  }
  std::string dev = r.out.substr(0, r.out.find('\n'));
  loops_.push_back(dev);
  return dev;
}

void CloneDir::DetachLoop(const std::string& dev) {
  ShOk("losetup -d " + dev);
  std::erase(loops_, dev);
  // The kernel lets the file go only once the device's last opener closes
  // it (udev probes a device after a file system on it is unmounted), and
  // until then unmounting the clone is refused as busy. The device's
  // loop/ attributes go away when it has let go.
  const std::string bound = "/sys/block/" + std::filesystem::path(dev).filename().string() +
                            "/loop/backing_file";
  // (Another test may take the freed device for another file meanwhile: what
  // counts is that it no longer holds this clone's file.)
  auto holds_ours = [&] {
    std::ifstream f(bound);
    std::string file;
    return std::getline(f, file) && file == exposed();
  };
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (holds_ours() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(holds_ours()) << dev << " still holds its file after 10 s";
}

}  // namespace clonefs::testing
