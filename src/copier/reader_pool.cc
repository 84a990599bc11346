#include "copier/reader_pool.h"

#include <algorithm>
#include <utility>

namespace clonefs {

ReaderPool::ReaderPool(Device* source, uint32_t threads) : source_(source) {
  for (uint32_t i = 0; i < std::max<uint32_t>(threads, 1); ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

ReaderPool::~ReaderPool() { Stop(); }

void ReaderPool::Submit(uint64_t off, void* buf, size_t len, Device::ReadDone done, Gate gate) {
  Job job{off, buf, len, std::move(done), std::move(gate)};
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!stop_) {
      jobs_.push_back(std::move(job));
      cv_.notify_one();
      return;
    }
  }
  job.done(Run(job));
}

Status ReaderPool::Run(const Job& job) {
  if (job.gate) {
    Status g = job.gate();
    if (!g.ok()) return g;
  }
  return source_->Read(job.off, job.buf, job.len);
}

void ReaderPool::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void ReaderPool::Loop() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job.done(Run(job));
  }
}

}  // namespace clonefs
