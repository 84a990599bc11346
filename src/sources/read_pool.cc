#include "sources/read_pool.h"

#include <cstring>
#include <thread>

#include "base/clock.h"
#include "sources/source_wait.h"

namespace clonefs {
namespace {
uint64_t MonoNow() { return Clock::Real()->NowNanos(); }
}  // namespace

ReadPool::ReadPool(std::shared_ptr<Device> inner, int threads)
    : inner_(std::move(inner)), threads_(std::max(threads, 1)), max_threads_(4 * threads_) {}

std::shared_ptr<ReadPool> ReadPool::Create(std::shared_ptr<Device> inner, int threads) {
  std::shared_ptr<ReadPool> pool(new ReadPool(std::move(inner), threads));
  std::lock_guard<std::mutex> l(pool->mu_);
  for (int i = 0; i < pool->threads_; ++i) pool->SpawnLocked();
  return pool;
}

void ReadPool::SpawnLocked() {
  ++live_;
  std::thread([self = shared_from_this()] { self->Worker(); }).detach();
}

Status ReadPool::Read(uint64_t off, void* buf, size_t len, uint64_t timeout_ns,
                      const CancelToken* token, const std::string& name, Status* checked) {
  auto job = std::make_shared<Job>();
  job->off = off;
  job->len = len;
  job->bounce.reset(new uint8_t[len]);
  job->dest = job->bounce.get();
  job->check_after = checked != nullptr;
  Status s = RunAndWait(job, timeout_ns, token, name, ReadWhat(off, len));
  // If it finished, the worker is done with the job: nobody else touches the
  // bounce buffer or the check's answer.
  if (s.ok()) {
    std::memcpy(buf, job->bounce.get(), len);
    if (checked != nullptr) *checked = job->checked;
  }
  return s;
}

Status ReadPool::Call(CallFn fn, uint64_t timeout_ns, const CancelToken* token,
                      const std::string& name, const std::string& what) {
  auto job = std::make_shared<Job>();
  job->call = std::move(fn);
  return RunAndWait(job, timeout_ns, token, name, what);
}

Status ReadPool::RunAndWait(const std::shared_ptr<Job>& job, uint64_t timeout_ns,
                            const CancelToken* token, const std::string& name,
                            const std::string& what) {
  const uint64_t deadline = MonoNow() + timeout_ns;
  std::unique_lock<std::mutex> l(mu_);
  if (stopping_) return Status::Aborted("source " + name + " was closed");
  foreground_.push_back(job);
  work_cv_.notify_one();
  WaitEnd end = WaitForDone(l, job->cv, deadline, token, [&] { return job->finished; });
  if (end == WaitEnd::kDone) return job->status;
  job->abandoned = true;
  if (!job->started) {
    for (auto it = foreground_.begin(); it != foreground_.end(); ++it) {
      if (it->get() == job.get()) {
        foreground_.erase(it);
        break;
      }
    }
  } else {
    job->left_behind = true;
    ++left_behind_;
    if (live_ - left_behind_ < threads_ && live_ < max_threads_ && !stopping_) SpawnLocked();
  }
  l.unlock();
  return end == WaitEnd::kTimedOut ? SourceTimedOut(what, name, timeout_ns)
                                   : SourceInterrupted(what, name);
}

void ReadPool::ReadAsync(uint64_t off, void* buf, size_t len, Device::ReadDone done) {
  auto job = std::make_shared<Job>();
  job->off = off;
  job->len = len;
  job->dest = static_cast<uint8_t*>(buf);
  job->done = std::move(done);
  std::unique_lock<std::mutex> l(mu_);
  if (stopping_) {
    l.unlock();
    job->done(Status::Aborted("source " + inner_->Name() + " was closed"));
    return;
  }
  background_.push_back(std::move(job));
  work_cv_.notify_one();
}

void ReadPool::Worker() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    work_cv_.wait(l, [&] { return stopping_ || !foreground_.empty() || !background_.empty(); });
    std::deque<std::shared_ptr<Job>>& q = !foreground_.empty() ? foreground_ : background_;
    if (q.empty()) break;  // stopping
    std::shared_ptr<Job> job = std::move(q.front());
    q.pop_front();
    if (job->abandoned) continue;
    job->started = true;
    job->started_ns = MonoNow();
    running_.insert(job.get());
    l.unlock();
    Status s = job->call ? job->call(*inner_) : inner_->Read(job->off, job->dest, job->len);
    Status checked = s.ok() && job->check_after ? inner_->CheckUnchanged() : Status::OK();
    l.lock();
    job->checked = std::move(checked);
    running_.erase(job.get());
    job->finished = true;
    job->status = s;
    const uint64_t now = MonoNow();
    if (job->left_behind) {
      --left_behind_;
      recovered_ns_ = now;
    }
    if (job->done) {
      Device::ReadDone done = std::move(job->done);
      job->done = nullptr;
      l.unlock();
      done(std::move(s));
      l.lock();
    } else {
      job->cv.notify_all();
    }
    // A replacement took this thread's place while it was stuck: retire.
    if (live_ - left_behind_ > threads_) break;
  }
  --live_;
  exit_cv_.notify_all();
}

void ReadPool::Stall(uint64_t timeout_ns, uint64_t* stalled_since_ns, uint64_t* recovered_ns,
                     uint64_t* oldest_started_ns) const {
  std::lock_guard<std::mutex> l(mu_);
  // The clock is read under mu_, as every started_ns is: a job that started
  // after a reading taken before the lock would look 2^64 ns old.
  const uint64_t now = MonoNow();
  uint64_t oldest = UINT64_MAX;
  for (const Job* j : running_) oldest = std::min(oldest, j->started_ns);
  *stalled_since_ns = oldest <= now && now - oldest > timeout_ns ? oldest + timeout_ns : 0;
  *recovered_ns = recovered_ns_;
  if (oldest_started_ns != nullptr) *oldest_started_ns = oldest != UINT64_MAX ? oldest : 0;
}

void ReadPool::Shutdown() {
  std::deque<std::shared_ptr<Job>> fg, bg;
  std::unique_lock<std::mutex> l(mu_);
  stopping_ = true;
  fg.swap(foreground_);
  bg.swap(background_);
  work_cv_.notify_all();
  for (auto& job : fg) {
    job->finished = true;
    job->status = Status::Aborted("source " + inner_->Name() + " was closed");
    job->cv.notify_all();
  }
  l.unlock();
  for (auto& job : bg) job->done(Status::Aborted("source " + inner_->Name() + " was closed"));
  l.lock();
  exit_cv_.wait(l, [&] { return live_ == left_behind_; });
}

}  // namespace clonefs
