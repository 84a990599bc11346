// HttpValidator's pure parts: which ETags count, the precondition each
// validator gives, and how a change is named.
#include "sources/http_validator.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "sources/test_server.h"

namespace clonefs {
namespace {

TEST(HttpValidatorTest, OnlyAStrongEtagIsKept) {
  EXPECT_EQ(ValidatorFromHeaders("\"6b0d-800\"", "").etag, "\"6b0d-800\"");
  EXPECT_EQ(ValidatorFromHeaders("\"\"", "").etag, "\"\"");  // empty but strong
  // If-Match compares strongly: a weak tag never matches, so it is none.
  EXPECT_EQ(ValidatorFromHeaders("W/\"6b0d-800\"", "").etag, "");
  EXPECT_EQ(ValidatorFromHeaders("6b0d-800", "").etag, "");  // unquoted
  EXPECT_EQ(ValidatorFromHeaders("\"a\"b\"", "").etag, "");  // a quote inside
  EXPECT_EQ(ValidatorFromHeaders("\"", "").etag, "");        // one quote
  EXPECT_TRUE(ValidatorFromHeaders("W/\"x\"", "").empty());
}

TEST(HttpValidatorTest, TheEtagIsPreferredToTheDate) {
  const std::string date = "Mon, 30 Nov 2026 09:41:13 GMT";
  HttpValidator both = ValidatorFromHeaders("\"abc\"", date);
  EXPECT_EQ(both.Precondition(), "If-Match: \"abc\"");
  EXPECT_EQ(both.Describe(), "ETag \"abc\"");
  HttpValidator dated = ValidatorFromHeaders("W/\"abc\"", date);
  EXPECT_EQ(dated.Precondition(), "If-Unmodified-Since: " + date);
  EXPECT_EQ(dated.Describe(), "Last-Modified " + date);
  HttpValidator none = ValidatorFromHeaders("", "");
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.Precondition(), "");
  EXPECT_EQ(none.Describe(), "none");
}

TEST(HttpValidatorTest, LastModifiedIsReadAsAnMtime) {
  // 2026-11-30 09:41:13 UTC.
  EXPECT_EQ(ValidatorFromHeaders("", "Mon, 30 Nov 2026 09:41:13 GMT").LastModifiedNs(),
            int64_t{1796031673} * 1'000'000'000);
  EXPECT_EQ(ValidatorFromHeaders("\"a\"", "").LastModifiedNs(), 0);
  EXPECT_EQ(ValidatorFromHeaders("", "yesterday-ish").LastModifiedNs(), 0);
}

TEST(HttpValidatorTest, AChangeOfTheFieldInUseIsNamed) {
  const std::string d1 = "Mon, 30 Nov 2026 09:41:13 GMT";
  const std::string d2 = "Mon, 30 Nov 2026 10:00:00 GMT";
  const HttpValidator a = ValidatorFromHeaders("\"a\"", d1);
  EXPECT_EQ(ValidatorChange(a, a), "");
  // The ETag decides when there was one: a new date alone is no change
  // (If-Match is what the server checks).
  EXPECT_EQ(ValidatorChange(a, ValidatorFromHeaders("\"a\"", d2)), "");
  const std::string replaced = ValidatorChange(a, ValidatorFromHeaders("\"b\"", d1));
  EXPECT_NE(replaced.find("now gives ETag \"b\" for it, not \"a\""), std::string::npos) << replaced;
  EXPECT_NE(replaced.find("was replaced"), std::string::npos) << replaced;
  const std::string gone = ValidatorChange(a, ValidatorFromHeaders("", d1));
  EXPECT_NE(gone.find("no longer gives the ETag \"a\""), std::string::npos) << gone;

  const HttpValidator dated = ValidatorFromHeaders("", d1);
  EXPECT_EQ(ValidatorChange(dated, ValidatorFromHeaders("\"new\"", d1)), "");
  const std::string later = ValidatorChange(dated, ValidatorFromHeaders("", d2));
  EXPECT_NE(later.find("last modified " + d2 + ", not " + d1), std::string::npos) << later;
  EXPECT_NE(ValidatorChange(dated, HttpValidator{}).find("no longer gives its Last-Modified"),
            std::string::npos);
  // Nothing learned at open: nothing to compare.
  EXPECT_EQ(ValidatorChange(HttpValidator{}, a), "");
}

TEST(HttpValidatorTest, OnlyHttpSourcesAreAsked) {
  SourceSpec spec;
  spec.kind = SourceSpec::Kind::kNbd;
  spec.display = "nbd://h/e";
  Result<HttpValidator> v = FetchHttpValidator(spec, 1'000'000'000);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(v.status().IsInvalidArgument()) << v.status().ToString();
}

using testing::SilentServer;

Result<HttpValidator> FetchFromSilent(const SilentServer& server, uint64_t timeout_ns,
                                      const std::atomic<bool>* cancel) {
  Result<SourceSpec> spec =
      ParseSource("http://127.0.0.1:" + std::to_string(server.port()) + "/img");
  if (!spec.ok()) return spec.status();
  return FetchHttpValidator(*spec, timeout_ns, cancel);
}

// The re-check asks on a thread that unmount joins: a server that never
// answers holds it for the timeout at most, and less once it is cancelled.
TEST(HttpValidatorTest, ASilentServerIsGivenUpOnAtTheTimeoutOrWhenCancelled) {
  SilentServer server;
  ASSERT_GT(server.port(), 0);
  auto start = std::chrono::steady_clock::now();
  Result<HttpValidator> v = FetchFromSilent(server, 300'000'000, nullptr);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(v.status().IsIoError()) << v.status().ToString();
  EXPECT_NE(v.status().message().find("cannot ask http://127.0.0.1:"), std::string::npos)
      << v.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));

  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  start = std::chrono::steady_clock::now();
  v = FetchFromSilent(server, 60'000'000'000, &cancel);
  const auto waited = std::chrono::steady_clock::now() - start;
  canceller.join();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), Status::Code::kAborted) << v.status().ToString();
  EXPECT_LT(waited, std::chrono::seconds(5)) << "the cancel was not seen";
}

}  // namespace
}  // namespace clonefs
