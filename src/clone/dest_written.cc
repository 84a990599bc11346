#include "clone/dest_written.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "clone/dest_guard.h"
#include "metadata/clone_files.h"

namespace clonefs::clone {
namespace {

Status WriteAll(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "cannot write " + path);
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

std::string UtcNow() {
  const time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace

Status RecordDestWritten(const std::string& metadata_dir, const std::string& change) {
  const std::string path = metadata::CloneFilePath(metadata_dir, metadata::kDestWrittenName);
  const std::string tmp = metadata::CloneFilePath(metadata_dir, metadata::kDestWrittenTempName);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "cannot create " + tmp);
  Status s = WriteAll(fd, change + ", seen " + UtcNow() + "\n", tmp);
  if (s.ok() && fsync(fd) != 0) s = Status::FromErrno(errno, "cannot sync " + tmp);
  close(fd);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::FromErrno(errno, "cannot rename " + tmp + " to " + path);
  }
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  return SyncParentDir(path);
}

Result<std::optional<std::string>> ReadDestWritten(const std::string& metadata_dir) {
  const std::string path = metadata::CloneFilePath(metadata_dir, metadata::kDestWrittenName);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Status::FromErrno(errno, "cannot read " + path);
  }
  std::string text;
  char buf[1024];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return Status::FromErrno(err, "cannot read " + path);
    }
    if (n == 0 || text.size() > 4096) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (const size_t nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return std::optional<std::string>(text.empty() ? "another program wrote dest" : text);
}

Status CheckNoDestWritten(const std::string& metadata_dir, const std::string& dest) {
  CLONEFS_ASSIGN_OR_RETURN(const std::optional<std::string> record, ReadDestWritten(metadata_dir));
  if (!record) return Status::OK();
  const std::string& line = *record;
  const std::string path = metadata::CloneFilePath(metadata_dir, metadata::kDestWrittenName);
  return Status::Mismatch(
      "dest " + dest + " was changed under this clone while it was mounted (its record: \"" + line +
      "\"). What the clone hydrated there can no longer be told from what that program wrote, so "
      "it is not served. Restore dest from a backup and remove " +
      path +
      ", or start a new clone (a new --metadata directory, and a new dest or --overwrite-dest); "
      "if you are sure that program changed nothing of the image, remove " +
      path + " and mount again");
}

}  // namespace clonefs::clone
