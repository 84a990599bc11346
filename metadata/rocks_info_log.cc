#include "metadata/rocks_info_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace clonefs::metadata {

std::shared_ptr<RocksInfoLog> RocksInfoLog::Open(const std::string& dir) {
  std::shared_ptr<RocksInfoLog> log(new RocksInfoLog(dir));
  std::lock_guard<std::mutex> l(log->mu_);
  log->OpenFile(/*truncate=*/false);
  return log;
}

RocksInfoLog::RocksInfoLog(std::string dir)
    : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL), dir_(std::move(dir)) {}

RocksInfoLog::~RocksInfoLog() {
  if (fd_ >= 0) close(fd_);
}

void RocksInfoLog::OpenFile(bool truncate) {
  if (fd_ >= 0) close(fd_);
  const std::string path = dir_ + "/LOG";
  fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0),
             0644);
  struct stat st;
  size_ = fd_ >= 0 && fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void RocksInfoLog::Logv(const char* format, va_list ap) {
  char line[1024];
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm t;
  localtime_r(&tv.tv_sec, &t);
  int n = snprintf(line, sizeof(line), "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %ld ",
                   t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                   static_cast<long>(tv.tv_usec), static_cast<long>(syscall(SYS_gettid)));
  if (n < 0) return;
  size_t len = static_cast<size_t>(n);
  va_list copy;
  va_copy(copy, ap);
  n = vsnprintf(line + len, sizeof(line) - len - 1, format, copy);
  va_end(copy);
  if (n < 0) return;
  len = std::min(len + static_cast<size_t>(n), sizeof(line) - 2);  // a long line is cut
  if (line[len - 1] != '\n') line[len++] = '\n';

  std::lock_guard<std::mutex> l(mu_);
  if (fd_ < 0) OpenFile(/*truncate=*/false);  // the directory may exist only now
  if (size_ + len > kMaxBytes) {
    const std::string path = dir_ + "/LOG";
    if (rename(path.c_str(), (path + ".old").c_str()) == 0) OpenFile(/*truncate=*/true);
  }
  if (fd_ < 0) return;
  const ssize_t w = write(fd_, line, len);  // a failed or short write loses (part of) the line
  if (w > 0) size_ += static_cast<uint64_t>(w);
}

}  // namespace clonefs::metadata
