// ParseSource and SourceIdentityKey: every SOURCE form, and the errors.
#include "sources/source_spec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>

#include "sources/nbdkit_child.h"
#include "sources/uri_parts.h"

namespace clonefs {
namespace {

using Kind = SourceSpec::Kind;

SourceSpec Parse(const std::string& arg) {
  Result<SourceSpec> r = ParseSource(arg);
  EXPECT_TRUE(r.ok()) << arg << ": " << r.status().ToString();
  return r.ok() ? *r : SourceSpec();
}

Status ParseError(const std::string& arg) {
  Result<SourceSpec> r = ParseSource(arg);
  EXPECT_FALSE(r.ok()) << arg << " parsed";
  return r.ok() ? Status::OK() : r.status();
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(SourceSpecTest, PathsAreFiles) {
  for (std::string arg : {"/srv/images/disk.img", "disk.img", "./nbd:foo", "/dev/sdb",
                          "relative/dir/x.raw", "c:/weird"}) {
    SourceSpec s = Parse(arg);
    EXPECT_EQ(s.kind, Kind::kFile) << arg;
    EXPECT_EQ(s.uri, arg);
    EXPECT_EQ(s.display, arg);
    EXPECT_FALSE(s.IsRemote());
    EXPECT_TRUE(s.nbdkit_argv.empty());
    EXPECT_EQ(SourceIdentityKey(s), "");
  }
}

TEST(SourceSpecTest, EmptyIsInvalid) { EXPECT_TRUE(ParseError("").IsInvalidArgument()); }

TEST(SourceSpecTest, NbdTcp) {
  SourceSpec s = Parse("nbd://backup.example.com:10810/vm%2Fdisk0");
  EXPECT_EQ(s.kind, Kind::kNbd);
  EXPECT_TRUE(s.IsRemote());
  EXPECT_EQ(s.export_name, "vm/disk0");
  EXPECT_EQ(s.uri, "nbd://backup.example.com:10810/vm%2Fdisk0");
  EXPECT_EQ(s.display, s.uri);
  EXPECT_TRUE(s.nbdkit_argv.empty());

  EXPECT_EQ(Parse("nbd://host").export_name, "");
  EXPECT_EQ(Parse("nbd://host/").export_name, "");
  EXPECT_EQ(Parse("NBD://host/e").kind, Kind::kNbd);  // schemes are case-insensitive
  EXPECT_EQ(Parse("nbd://[::1]:10809/e").export_name, "e");
}

TEST(SourceSpecTest, NbdUnix) {
  SourceSpec s = Parse("nbd+unix:///data?socket=/run/nbd.sock");
  EXPECT_EQ(s.kind, Kind::kNbd);
  EXPECT_EQ(s.export_name, "data");
  EXPECT_EQ(Parse("nbd+unix:///?socket=/tmp/s").export_name, "");
}

TEST(SourceSpecTest, NbdErrorsSayWhatIsExpected) {
  for (std::string arg :
       {"nbd://", "nbd:///export", "nbd://host/e?socket=/tmp/s", "nbd+unix:///e",
        "nbd+unix://host/e?socket=/tmp/s", "nbd+unix:///e?socket=", "nbd://host:0/e",
        "nbd://host:99999/e", "nbd://host:12ab/e", "nbd://host/bad%zzescape", "nbd://[::1/e"}) {
    Status st = ParseError(arg);
    EXPECT_TRUE(st.IsInvalidArgument()) << arg << ": " << st.ToString();
  }
  Status st = ParseError("nbd+unix:///e");
  EXPECT_NE(st.message().find("socket=PATH"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("nbd://HOST[:PORT]/EXPORT"), std::string::npos) << st.message();
  EXPECT_NE(ParseError("nbd://host:0/e").message().find("1 to 65535"), std::string::npos);
}

TEST(SourceSpecTest, NbdsNeedsTlsInLibnbd) {
  // Debian's libnbd is built with gnutls; either way the answer is clear.
  for (std::string arg : {"nbds://host/e", "nbds+unix:///e?socket=/tmp/s"}) {
    Result<SourceSpec> r = ParseSource(arg);
    if (r.ok()) {
      EXPECT_EQ(r->kind, Kind::kNbd);
      EXPECT_EQ(r->export_name, "e");
    } else {
      EXPECT_TRUE(r.status().IsNotSupported()) << r.status().ToString();
      EXPECT_NE(r.status().message().find("built without TLS"), std::string::npos);
    }
  }
}

TEST(SourceSpecTest, Http) {
  SourceSpec s = Parse("https://images.example.com/pub/disk.img?sig=abc");
  EXPECT_EQ(s.kind, Kind::kHttp);
  EXPECT_TRUE(s.IsRemote());
  ASSERT_GE(s.nbdkit_argv.size(), 6u);
  EXPECT_EQ(s.nbdkit_argv[0], "nbdkit");
  EXPECT_TRUE(Has(s.nbdkit_argv, "-r"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "-s"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "--exit-with-parent"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "--filter=retry"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "curl"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "url=https://images.example.com/pub/disk.img?sig=abc"));
  EXPECT_EQ(SourceIdentityKey(s), "");
  EXPECT_EQ(Parse("http://127.0.0.1:8080/img").kind, Kind::kHttp);
  EXPECT_TRUE(ParseError("http:///img").IsInvalidArgument());
}

TEST(SourceSpecTest, PasswordIsRedactedInDisplay) {
  SourceSpec s = Parse("https://alice:s3cret@host/disk.img");
  EXPECT_EQ(s.display, "https://alice:***@host/disk.img");
  EXPECT_EQ(s.uri, "https://alice:s3cret@host/disk.img");
  // nbdkit gets the password on a descriptor, never on its command line
  // (which every user can read in the process list).
  EXPECT_TRUE(Has(s.nbdkit_argv, "url=https://host/disk.img"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "user=alice"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "password=-3"));
  EXPECT_EQ(s.nbdkit_password, "s3cret");
  for (const std::string& a : s.nbdkit_argv) EXPECT_EQ(a.find("s3cret"), std::string::npos) << a;
  EXPECT_EQ(Parse("https://a%3Ab:p%40ss@host/d").nbdkit_password, "p@ss");
  EXPECT_EQ(Parse("https://alice@host/d").display, "https://alice@host/d");
  EXPECT_TRUE(Has(Parse("https://alice@host/d").nbdkit_argv, "url=https://alice@host/d"));
  EXPECT_EQ(Parse("https://alice@host/d").nbdkit_password, "");
  // Errors never show the password either.
  Status st = ParseError("ftp://bob:hunter2@host/x");
  EXPECT_EQ(st.message().find("hunter2"), std::string::npos) << st.message();
}

// A signed URL's credentials (query values named as such) are secrets like
// a password: never displayed; the other query values are kept.
TEST(SourceSpecTest, QuerySecretsAreRedactedInDisplay) {
  SourceSpec s = Parse(
      "https://bucket.s3.example.com/disk.img?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
      "X-Amz-Credential=AKIA%2F2026&X-Amz-Security-Token=tok&X-Amz-Signature=abc123#frag");
  EXPECT_EQ(s.display,
            "https://bucket.s3.example.com/disk.img?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
            "X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Signature=***#frag");
  EXPECT_TRUE(Has(s.nbdkit_argv,
                  "url=https://bucket.s3.example.com/disk.img?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                  "X-Amz-Credential=AKIA%2F2026&X-Amz-Security-Token=tok&X-Amz-Signature=abc123"
                  "#frag"))
      << "nbdkit fetches the URL as given";
  EXPECT_EQ(Parse("https://h/d?sv=2024&sig=S%2Bx&se=1").display,
            "https://h/d?sv=2024&sig=***&se=1");
  EXPECT_EQ(Parse("https://u:pw@h/d?access_token=T").display, "https://u:***@h/d?access_token=***");
  EXPECT_EQ(Parse("https://h/d?keyspace=a&sig=").display, "https://h/d?keyspace=a&sig=")
      << "an empty value hides nothing";
  EXPECT_EQ(RedactSource("https://h/d?token=T&x=%zz"), "https://h/d?token=***&x=%zz");
  EXPECT_EQ(Parse("nbd+unix:///e?socket=/run/a.sock").display, "nbd+unix:///e?socket=/run/a.sock");
}

TEST(UriPartsTest, SecretSpans) {
  using Spans = std::vector<std::pair<size_t, size_t>>;
  const std::string u = "s://u:pw@h/p?a=1&Signature=xy&token=z#sig=no";
  EXPECT_EQ(SecretSpans(u), (Spans{{6, 8}, {27, 29}, {36, 37}}));
  EXPECT_EQ(u.substr(6, 2), "pw");
  EXPECT_EQ(u.substr(27, 2), "xy");
  EXPECT_EQ(u.substr(36, 1), "z");
  EXPECT_EQ(SecretSpans("/a/path?token=x"), Spans{});
  EXPECT_EQ(SecretSpans("s://h/p#?token=x"), Spans{}) << "a fragment is no query";
  EXPECT_EQ(SecretSpans("s://u:@h/"), Spans{});
  EXPECT_TRUE(IsSecretQueryKey("X-Goog-Signature"));
  EXPECT_TRUE(IsSecretQueryKey("SIG"));
  EXPECT_TRUE(IsSecretQueryKey("api_key"));
  EXPECT_FALSE(IsSecretQueryKey("socket"));
  EXPECT_FALSE(IsSecretQueryKey("X-Amz-Expires"));
}

// A '%' in a password that is not an escape ("p%zz") used to be named in
// the error: "bad percent-escape '%zz' in 's3cret%zz'".
TEST(SourceSpecTest, ABadEscapeInAPasswordIsNeverShown) {
  for (const char* uri : {"http://u:s3cret%zz@host/x.img", "https://u:s3cret%@host/x.img",
                          "ssh://u:s3cret%4@host/x.img", "nbd://u:s3cret%g0@host/e"}) {
    Status s = ParseError(uri);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_EQ(s.message().find("s3cret"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("bad percent-escape in the password of"), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("u:***@host"), std::string::npos) << s.message();
    EXPECT_EQ(RedactSource(uri).find("s3cret"), std::string::npos) << RedactSource(uri);
  }
}

TEST(SourceSpecTest, RedactSourceHidesPasswordsOnly) {
  EXPECT_EQ(RedactSource("http://u:s3cret@h:8/x.img"), "http://u:***@h:8/x.img");
  EXPECT_EQ(RedactSource("ssh://root:pw@h/srv/x"), "ssh://root:***@h/srv/x");
  EXPECT_EQ(RedactSource("http://u@h/x"), "http://u@h/x");
  EXPECT_EQ(RedactSource("/srv/images/a:b@c.img"), "/srv/images/a:b@c.img");  // a path
  // Unparseable (bad escape, unknown scheme): still no password.
  EXPECT_EQ(RedactSource("http://u:s3%ZZ@h/x").find("s3"), std::string::npos);
  EXPECT_EQ(RedactSource("gopher://u:hunter2@h/x"), "gopher://u:***@h/x");
  // Unparseable (a bad port, a bad escape in the user): no query secret either.
  EXPECT_EQ(RedactSource("https://h:0/d?sig=S3cret"), "https://h:0/d?sig=***");
  EXPECT_EQ(RedactSource("https://u%zz:pw@h/d?token=T0k"), "https://***@h/d?token=***");
}

TEST(SourceSpecTest, NbdkitSaidAndAdvice) {
  std::deque<std::string> lines = {
      "nbdkit: curl[1]: error: problem doing HEAD request to fetch size of URL "
      "[http://h/x.img]: HTTP response code said error: The requested URL returned error: 404"};
  const std::string said = NbdkitSaid(lines);
  EXPECT_EQ(said.rfind("problem doing HEAD request", 0), 0u) << said;
  EXPECT_NE(NbdkitAdvice(said).find("HTTP 404"), std::string::npos);
  EXPECT_NE(NbdkitAdvice("returned error: 403").find("password"), std::string::npos);
  const std::string range =
      NbdkitSaid({"nbdkit: curl: error: server does not support 'range' (byte range) requests"});
  EXPECT_EQ(range, "server does not support 'range' (byte range) requests");
  EXPECT_NE(NbdkitAdvice(range).find("Range requests"), std::string::npos);
  EXPECT_EQ(NbdkitSaid({"", "a", "b", "c", "d", ""}), "b; c; d");
  // An untrusted certificate used to get "check that the server is running
  // and the URI is right", which it is.
  const std::string tls =
      "problem doing HEAD request to fetch size of URL [https://127.0.0.1:38412/a.img]: SSL "
      "peer certificate or SSH remote key was not OK: server certificate verification failed. "
      "CAfile: none CRLfile: none";
  EXPECT_NE(NbdkitAdvice(tls).find("TLS certificate is not trusted"), std::string::npos);
  EXPECT_NE(NbdkitAdvice(tls).find("update-ca-certificates"), std::string::npos);
  EXPECT_EQ(NbdkitAdvice("something else"), "");
}

TEST(SourceSpecTest, Ssh) {
  SourceSpec s = Parse("ssh://root:pw@backup.example.com:2222/srv/disk%20one.img");
  EXPECT_EQ(s.kind, Kind::kSsh);
  EXPECT_EQ(s.display, "ssh://root:***@backup.example.com:2222/srv/disk%20one.img");
  EXPECT_TRUE(Has(s.nbdkit_argv, "ssh"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "host=backup.example.com"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "path=/srv/disk one.img"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "user=root"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "port=2222"));
  EXPECT_TRUE(Has(s.nbdkit_argv, "password=-3"));
  EXPECT_EQ(s.nbdkit_password, "pw");
  EXPECT_TRUE(Has(s.nbdkit_argv, "--filter=retry"));
  EXPECT_EQ(SourceIdentityKey(s), "");

  SourceSpec home = Parse("ssh://host/~/images/d.img");
  EXPECT_TRUE(Has(home.nbdkit_argv, "path=images/d.img"));
  EXPECT_FALSE(Has(home.nbdkit_argv, "user="));

  for (std::string arg :
       {"ssh://host", "ssh://host/", "ssh:///path", "ssh://host/~/", "ssh://host/p?x=1"}) {
    Status st = ParseError(arg);
    EXPECT_TRUE(st.IsInvalidArgument()) << arg;
    EXPECT_NE(st.message().find("ssh://[USER@]HOST[:PORT]/PATH"), std::string::npos) << arg;
  }
}

TEST(SourceSpecTest, UnknownSchemeListsTheSupportedOnes) {
  for (std::string arg : {"ftp://host/x", "nbd+vsock:///e", "file:///tmp/x", "s3://b/k"}) {
    Status st = ParseError(arg);
    EXPECT_TRUE(st.IsInvalidArgument()) << arg;
    for (std::string form :
         {"nbd://", "nbds://", "nbd+unix://", "http://", "https://", "ssh://", "path"}) {
      EXPECT_NE(st.message().find(form), std::string::npos) << arg << ": " << st.message();
    }
  }
}

TEST(SourceSpecTest, IdentityIsTheExportOnlyNeverTheTransport) {
  SourceSpec tcp = Parse("nbd://host-a:10809/disk");
  SourceSpec other = Parse("nbd://host-b:10900/disk");
  SourceSpec unix_sock = Parse("nbd+unix:///disk?socket=/run/a.sock");
  EXPECT_EQ(SourceIdentityKey(tcp), "disk");
  EXPECT_EQ(SourceIdentityKey(tcp), SourceIdentityKey(other));
  EXPECT_EQ(SourceIdentityKey(tcp), SourceIdentityKey(unix_sock));
  EXPECT_NE(SourceIdentityKey(tcp), SourceIdentityKey(Parse("nbd://host-a/disk2")));
  EXPECT_EQ(SourceIdentityKey(Parse("nbd://host-a")), "");
}

// The daemon runs from "/": a relative socket= (or TLS file) would name
// another file there, and the mount failed with "connect: No such file or
// directory" although the socket was right beside the user.
TEST(SourceSpecTest, RelativeQueryPathsBecomeAbsolute) {
  EXPECT_EQ(WithAbsoluteQueryPaths("nbd+unix:///?socket=n.sock", "/srv/x"),
            "nbd+unix:///?socket=/srv/x/n.sock");
  EXPECT_EQ(WithAbsoluteQueryPaths("nbds+unix://alice@/e?socket=../r/n.sock&tls-psk-file=k.psk"
                                   "&tls-certificates=./certs&other=rel",
                                   "/srv/x"),
            "nbds+unix://alice@/e?socket=/srv/r/n.sock&tls-psk-file=/srv/x/k.psk"
            "&tls-certificates=/srv/x/certs&other=rel");
  // Percent-escapes are read, and what the directory holds is escaped.
  EXPECT_EQ(WithAbsoluteQueryPaths("nbd+unix:///?socket=a%20b.sock", "/d&e#f"),
            "nbd+unix:///?socket=/d%26e%23f/a%20b.sock");
  EXPECT_EQ(*PercentDecode("/d%26e%23f/a%20b.sock"), "/d&e#f/a b.sock");
  for (const char* kept : {"nbd+unix:///?socket=/run/n.sock", "nbd://host/e?tls-psk-file=/k",
                           "nbd://host/e", "https://h/x.img?socket=rel", "disk.img",
                           "nbd+unix:///?socket=", "nbd+unix:///#socket=rel"}) {
    EXPECT_EQ(WithAbsoluteQueryPaths(kept, "/srv"), kept);
  }
  // What the daemon connects to is then the same socket.
  SourceSpec spec = Parse(WithAbsoluteQueryPaths("nbd+unix:///disk?socket=n.sock", "/srv"));
  EXPECT_EQ(spec.uri, "nbd+unix:///disk?socket=/srv/n.sock");
  EXPECT_EQ(spec.export_name, "disk");
}

// Scheme names are case-insensitive, but libnbd knows lower case only: it
// refused "NBD+UNIX://..." with "unknown NBD URI scheme".
TEST(SourceSpecTest, NbdSchemesReachLibnbdInLowerCase) {
  SourceSpec spec = Parse("NBD+Unix:///disk?socket=/run/N.sock");
  EXPECT_EQ(spec.kind, Kind::kNbd);
  EXPECT_EQ(spec.uri, "nbd+unix:///disk?socket=/run/N.sock");
  EXPECT_EQ(Parse("NBD://Host/Disk").uri, "nbd://Host/Disk");
}

TEST(UriPartsTest, Splits) {
  Result<UriParts> p = SplitUri("scheme://u%40x:p%3Aw@[fe80::1]:99/a/b?c=d&e=f#g");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->scheme, "scheme");
  EXPECT_EQ(p->user, "u@x");
  EXPECT_TRUE(p->has_password);
  EXPECT_EQ(p->password, "p:w");
  EXPECT_EQ(p->host, "[fe80::1]");
  EXPECT_EQ(p->port, "99");
  EXPECT_EQ(p->path, "/a/b");
  EXPECT_EQ(p->query, "c=d&e=f");
  EXPECT_EQ(p->fragment, "g");
  EXPECT_EQ(p->redacted, "scheme://u%40x:***@[fe80::1]:99/a/b?c=d&e=f#g");
  std::string v;
  EXPECT_TRUE(QueryValue(p->query, "e", &v));
  EXPECT_EQ(v, "f");
  EXPECT_FALSE(QueryValue(p->query, "x", &v));
  EXPECT_FALSE(LooksLikeUri("/abs/path"));
  EXPECT_FALSE(LooksLikeUri("1nbd://x"));
  EXPECT_TRUE(LooksLikeUri("nbd+unix://"));
  EXPECT_FALSE(PercentDecode("%4").ok());
  EXPECT_EQ(*PercentDecode("a%20b"), "a b");
}

}  // namespace
}  // namespace clonefs
