#include "base/test_hooks.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace clonefs {
namespace {

std::atomic<bool> g_installed{false};
std::mutex g_mu;                                // guards g_hook
std::shared_ptr<TestKillHook> g_hook;           // GUARDED_BY(g_mu)

}  // namespace

void SetTestKillHookForTesting(TestKillHook hook) {
  std::lock_guard<std::mutex> l(g_mu);
  g_hook = hook ? std::make_shared<TestKillHook>(std::move(hook)) : nullptr;
  g_installed.store(g_hook != nullptr);
}

bool TestKillHookInstalled() { return g_installed.load(std::memory_order_relaxed); }

bool TestKillPoint(std::string_view point) {
  if (!g_installed.load(std::memory_order_relaxed)) return false;
  std::shared_ptr<TestKillHook> h;
  {
    std::lock_guard<std::mutex> l(g_mu);
    h = g_hook;
  }
  return h && (*h)(point);
}

}  // namespace clonefs
