#include "lowbit/util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "lowbit/util/error.h"
#include "lowbit/util/memory.h"
#include "lowbit/util/signals.h"

namespace lowbit {

namespace {

const char* kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a plain file";
}

}  // namespace

int write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

std::string errno_text(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

PathKind path_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) return PathKind::kMissing;
    fail(path, "{}", errno_text(e));
  }
  if (S_ISREG(st.st_mode)) return PathKind::kFile;
  if (S_ISDIR(st.st_mode)) return PathKind::kDir;
  return PathKind::kOther;
}

int open_regular(const std::string& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) fail(path, "no such file");
    if (e == ENXIO) fail(path, "not a regular file (a FIFO or socket)");
    fail(path, "cannot open: {}", errno_text(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail(path, "cannot stat: {}", errno_text(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail(path, "is a directory, expected a file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file ({})", kind_of(st.st_mode));
  }
  // Reads of a regular file never block; clear the flag so nothing downstream sees EAGAIN.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

std::string read_file(const std::string& path, uint64_t max_bytes, const char* what) {
  uint64_t size = 0;
  const int fd = open_regular(path, &size);
  if (size > max_bytes) {
    ::close(fd);
    fail(path, "{} is larger than the {} lowbit accepts for a {}", format_bytes(size),
         format_bytes(max_bytes), what);
  }
  try {
    require_memory(path, fmt::format("reading this {}", what), size);
  } catch (...) {
    ::close(fd);
    throw;
  }
  std::string out(static_cast<size_t>(size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      fail(path, "read error: {}", errno_text(e));
    }
    if (n == 0) break;  // shrank while reading
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

void copy_file(const std::string& from, const std::string& to) {
  uint64_t size = 0;
  const int in = open_regular(from, &size);
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    const int e = errno;
    ::close(in);
    fail(to, "cannot create: {}", errno_text(e));
  }
  std::vector<char> buf(size_t{1} << 20);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(in);
      ::close(out);
      fail(from, "read error: {}", errno_text(e));
    }
    if (n == 0) break;
    if (const int e = write_all(out, buf.data(), static_cast<size_t>(n)); e != 0) {
      ::close(in);
      ::close(out);
      fail(to, "write error: {}", errno_text(e));
    }
  }
  ::close(in);
  if (::close(out) != 0) fail(to, "write error: {}", errno_text(errno));
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const PathKind kind = path_kind(path);
  if (kind == PathKind::kDir) fail(path, "is a directory, cannot write a file there");
  struct stat lst {};
  const bool link = ::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode);
  if (kind == PathKind::kOther || link) {
    // A device, FIFO or symlink the user named on purpose (/dev/stdout, latest.json -> run.json):
    // written in place through the name, never replaced by a new regular file.
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CLOEXEC | (link ? O_CREAT | O_TRUNC : 0), 0644);
    if (fd < 0) fail(path, "cannot open for writing: {}", errno_text(errno));
    int err = write_all(fd, content.data(), content.size());
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err != 0) fail(path, "cannot write: {}", errno_text(err));
    return;
  }
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  const int guard = signals::register_temp(tmp);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;
    signals::unregister_temp(guard);
    fail(path, "cannot create {}: {}", tmp, errno_text(e));
  }
  int err = write_all(fd, content.data(), content.size());
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) ::unlink(tmp.c_str());
  signals::unregister_temp(guard);
  if (err != 0) fail(path, "cannot write: {}", errno_text(err));
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  const PathKind kind = path_kind(path);
  if (kind == PathKind::kDir) fail(path, "is a directory, cannot write a file there");
  struct stat lst {};
  if (kind == PathKind::kOther || (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode))) {
    fail(path, "not a regular file; give a file name to write");
  }
  tmp_ = fmt::format("{}.tmp.{}", path, ::getpid());
  guard_ = signals::register_temp(tmp_);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int e = errno;
    signals::unregister_temp(guard_);
    fail(path, "cannot create {}: {}", tmp_, errno_text(e));
  }
}

AtomicFile::~AtomicFile() {
  if (done_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_.c_str());
  signals::unregister_temp(guard_);
}

void AtomicFile::write(const void* data, size_t n) {
  if (const int err = write_all(fd_, data, n); err != 0) {
    fail(path_, "cannot write: {}", errno_text(err));
  }
  written_ += n;
}

void AtomicFile::commit() {
  int err = ::fsync(fd_) != 0 ? errno : 0;
  if (::close(fd_) != 0 && err == 0) err = errno;
  fd_ = -1;
  if (err == 0 && ::rename(tmp_.c_str(), path_.c_str()) != 0) err = errno;
  if (err != 0) fail(path_, "cannot write: {}", errno_text(err));
  done_ = true;
  signals::unregister_temp(guard_);
}

}  // namespace lowbit
