#include "base/result.h"
#include "base/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace clonefs {
namespace {

TEST(StatusTest, OkIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToErrno(), 0);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, FromErrnoMapsCodesAndKeepsErrno) {
  EXPECT_TRUE(Status::FromErrno(ENOSPC, "pwrite x").IsNoSpace());
  EXPECT_TRUE(Status::FromErrno(ENOENT, "open x").IsNotFound());
  EXPECT_TRUE(Status::FromErrno(EIO, "pread x").IsIoError());
  Status s = Status::FromErrno(ENOSPC, "pwrite /d at 4096");
  EXPECT_EQ(s.ToErrno(), ENOSPC);
  EXPECT_NE(s.message().find("pwrite /d at 4096"), std::string::npos);
}

TEST(StatusTest, ToErrnoWithoutCapturedErrno) {
  EXPECT_EQ(Status::NoSpace("x").ToErrno(), ENOSPC);
  EXPECT_EQ(Status::ReadOnly("x").ToErrno(), EIO);
  EXPECT_EQ(Status::Failed("x").ToErrno(), EIO);
  EXPECT_EQ(Status::InvalidArgument("x").ToErrno(), EINVAL);
}

TEST(StatusTest, WithContextPrefixes) {
  Status s = Status::Corruption("bad magic").WithContext("metadata /m");
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_EQ(s.message(), "metadata /m: bad magic");
  EXPECT_TRUE(Status::OK().WithContext("x").ok());
}

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  CLONEFS_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::OK();
}

TEST(ResultTest, ValueAndError) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status s = UseHalf(7, &v);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(v, 4);
}

}  // namespace
}  // namespace clonefs
