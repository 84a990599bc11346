#include "base/cancel.h"

#include <gtest/gtest.h>

namespace clonefs {
namespace {

TEST(CancelTokenTest, CancelCancels) {
  CancelToken t;
  EXPECT_FALSE(t.cancelled());
  t.Cancel();
  EXPECT_TRUE(t.cancelled());
}

TEST(CancelTokenTest, InterruptWithoutACheckCancels) {
  CancelToken t;
  t.Interrupt();
  EXPECT_TRUE(t.cancelled());
}

TEST(CancelTokenTest, InterruptCancelsOnlyOnceTheRequesterIsAbandoned) {
  int calls = 0;
  bool dying = false;
  CancelToken t([&] {
    ++calls;
    return dying;
  });
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(calls, 0) << "no check before an interrupt";
  t.Interrupt();
  EXPECT_FALSE(t.cancelled()) << "a signal the requester handles";
  EXPECT_FALSE(t.cancelled());
  dying = true;  // killed later: the kernel sends no second INTERRUPT
  EXPECT_TRUE(t.cancelled());
  const int seen = calls;
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(calls, seen) << "once cancelled, it stays so without asking again";
}

TEST(CancelTokenTest, CancelOverridesTheCheck) {
  CancelToken t([] { return false; });
  t.Interrupt();
  EXPECT_FALSE(t.cancelled());
  t.Cancel();
  EXPECT_TRUE(t.cancelled());
}

}  // namespace
}  // namespace clonefs
