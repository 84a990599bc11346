#include "sources/nbdkit_child.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>

#include "sources/source_spec.h"

extern char** environ;

namespace clonefs {
namespace {

constexpr size_t kRecentLines = 8;
constexpr size_t kMaxLineBytes = 1000;

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

// Strips `prefix` from the front of *s if it is there.
void Strip(std::string* s, const std::string& prefix) {
  if (s->rfind(prefix, 0) == 0) s->erase(0, prefix.size());
}

// Removes a plugin's prefix, "NAME: " or "NAME[N]: " (NAME of letters,
// digits, '_' and '-'), from the start of `l`.
void StripPluginPrefix(std::string* l) {
  size_t i = 0;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
  while (i < l->size() && word((*l)[i])) ++i;
  if (i == 0) return;
  if (i < l->size() && (*l)[i] == '[') {
    size_t j = i + 1;
    while (j < l->size() && std::isdigit(static_cast<unsigned char>((*l)[j]))) ++j;
    if (j == i + 1 || j >= l->size() || (*l)[j] != ']') return;
    i = j + 1;
  }
  if (l->compare(i, 2, ": ") != 0) return;
  l->erase(0, i + 2);
}

// The three digits after "returned error: " in curl's message, or "".
std::string HttpStatus(const std::string& said) {
  static const std::string kKey = "returned error: ";
  for (size_t at = said.find(kKey); at != std::string::npos; at = said.find(kKey, at + 1)) {
    const size_t d = at + kKey.size();
    if (d + 3 <= said.size() && std::isdigit(static_cast<unsigned char>(said[d])) &&
        std::isdigit(static_cast<unsigned char>(said[d + 1])) &&
        std::isdigit(static_cast<unsigned char>(said[d + 2]))) {
      return said.substr(d, 3);
    }
  }
  return "";
}

}  // namespace

NbdkitChild::~NbdkitChild() { Kill(); }

Result<std::unique_ptr<NbdkitChild>> NbdkitChild::Start(const std::vector<std::string>& argv,
                                                        const std::string& password, int* sock) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status::FromErrno(errno, "socketpair for nbdkit");
  }
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) {
    Status s = Status::FromErrno(errno, "pipe for nbdkit's standard error");
    ::close(sv[0]);
    ::close(sv[1]);
    return s;
  }
  int pw[2] = {-1, -1};
  if (!password.empty()) {
    // A pipe holds 64 KiB; a password is far smaller, so this never blocks.
    if (::pipe2(pw, O_CLOEXEC) != 0 ||
        ::write(pw[1], password.data(), password.size()) != static_cast<ssize_t>(password.size())) {
      Status s = Status::FromErrno(errno, "pipe for nbdkit's password");
      for (int fd : {sv[0], sv[1], err[0], err[1], pw[0], pw[1]}) {
        if (fd >= 0) ::close(fd);
      }
      return s;
    }
    CloseFd(&pw[1]);
  }
  std::vector<char*> a;
  for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // 0, 1 and 2 are open (the daemon points them at /dev/null), so every new
  // descriptor is above 2 and the order of these dup2s cannot clobber one.
  posix_spawn_file_actions_adddup2(&fa, sv[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, sv[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
  if (pw[0] >= 0) posix_spawn_file_actions_adddup2(&fa, pw[0], kNbdkitPasswordFd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The I/O thread may block signals and the daemon ignores SIGPIPE; nbdkit
  // starts with neither.
  sigset_t none, pipe_only;
  sigemptyset(&none);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe_only);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  auto child = std::unique_ptr<NbdkitChild>(new NbdkitChild);
  const int rc = posix_spawnp(&child->pid_, a[0], &fa, &attr, a.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(sv[1]);
  ::close(err[1]);
  CloseFd(&pw[0]);
  if (rc != 0) {
    child->pid_ = -1;
    ::close(sv[0]);
    ::close(err[0]);
    return Status::FromErrno(rc, "cannot start " + argv[0]);
  }
  child->err_ = err[0];
  ::fcntl(child->err_, F_SETFL, ::fcntl(child->err_, F_GETFL) | O_NONBLOCK);
  *sock = sv[0];
  return child;
}

std::vector<std::string> NbdkitChild::ReadLines() {
  std::vector<std::string> lines;
  bool eof = false;
  while (err_ >= 0) {
    char buf[4096];
    const ssize_t n = ::read(err_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = n == 0 || errno != EAGAIN;
      break;
    }
    partial_.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = partial_.find('\n')) != std::string::npos) {
      lines.push_back(partial_.substr(0, std::min(nl, kMaxLineBytes)));
      partial_.erase(0, nl + 1);
    }
    if (partial_.size() > kMaxLineBytes) {  // a line without end: cut it
      lines.push_back(partial_.substr(0, kMaxLineBytes));
      partial_.clear();
    }
  }
  if (eof) {
    if (!partial_.empty()) lines.push_back(partial_);
    partial_.clear();
    CloseFd(&err_);
  }
  for (const std::string& l : lines) {
    recent_.push_back(l);
    if (recent_.size() > kRecentLines) recent_.pop_front();
  }
  return lines;
}

void NbdkitChild::Kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  CloseFd(&err_);
}

std::string NbdkitSaid(const std::deque<std::string>& lines) {
  std::vector<std::string> kept;
  for (auto it = lines.rbegin(); it != lines.rend() && kept.size() < 3; ++it) {
    std::string l = *it;
    while (!l.empty() && (l.back() == '\r' || l.back() == ' ')) l.pop_back();
    Strip(&l, "nbdkit: ");
    StripPluginPrefix(&l);
    Strip(&l, "error: ");
    if (!l.empty()) kept.insert(kept.begin(), l);
  }
  std::string out;
  for (const std::string& l : kept) out += (out.empty() ? "" : "; ") + l;
  return out;
}

std::string NbdkitAdvice(const std::string& said) {
  if (const std::string code = HttpStatus(said); !code.empty()) {
    if (code == "404" || code == "410") {
      return "the web server answered HTTP " + code +
             ": it has no file at that URL; check the URL (host, path, spelling)";
    }
    if (code == "401" || code == "403" || code == "407") {
      return "the web server answered HTTP " + code +
             ": access was refused; check the user and password in the URL "
             "(http://USER:PASSWORD@HOST/PATH) and the file's permissions on the server";
    }
    if (code == "412") {
      return "the web server answered HTTP 412 (Precondition Failed): the file under the URL is "
             "no longer the version the clone started from (its ETag or Last-Modified date "
             "changed); mount again to check it against the clone";
    }
    return "the web server answered HTTP " + code + "; check the URL and the server's own log";
  }
  if (said.find("support 'range'") != std::string::npos) {
    return "the web server does not serve byte ranges (HTTP Range requests), which clonefs "
           "needs to read parts of the image; serve the file from a server that does (nginx, "
           "Apache and object stores do) or copy it locally first";
  }
  if (said.find("redirects followed") != std::string::npos ||
      said.find("redirect") != std::string::npos) {
    return "the URL redirects in a loop or too many times; give the URL the redirects end at";
  }
  if (said.find("certificate") != std::string::npos) {
    return "the web server's TLS certificate is not trusted here (self-signed, signed by an "
           "unknown CA, expired, or for another host name); install the CA that signed it in the "
           "system's trust store (Debian: copy it to /usr/local/share/ca-certificates/NAME.crt "
           "and run update-ca-certificates), or serve the file with a certificate that matches "
           "the host name in the URL";
  }
  if (said.find("Couldn't connect") != std::string::npos ||
      said.find("resolve host") != std::string::npos) {
    return "check that the web server is running and the host and port are right";
  }
  return "";
}

}  // namespace clonefs
