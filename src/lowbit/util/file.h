// Files named by the user, read safely: regular files only where a file is expected (a FIFO,
// device or socket is refused before a read could block), errno in plain words, sizes bounded
// before anything is read into memory. Every loader opens its inputs through here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit {

// errno as lower-case words ("no such file or directory").
std::string errno_text(int err);

// Writes all n bytes to `fd` (retrying short writes and EINTR): 0, or the errno that stopped it.
int write_all(int fd, const void* data, size_t n);

enum class PathKind { kMissing, kFile, kDir, kOther };
// What `path` is, following symlinks. A missing path is kMissing; a path that cannot be examined
// (symlink loop, permission denied on a parent, name too long) throws Error("<path>: <problem>").
PathKind path_kind(const std::string& path);
inline bool is_dir(const std::string& path) { return path_kind(path) == PathKind::kDir; }
inline bool is_file(const std::string& path) { return path_kind(path) == PathKind::kFile; }
inline bool path_exists(const std::string& path) { return path_kind(path) != PathKind::kMissing; }

// Opens a regular file read-only and returns its descriptor (the caller closes it) and size. The
// open itself does not block on a FIFO (O_NONBLOCK); anything but a regular file is refused with
// Error("<path>: not a regular file (a FIFO)") and the like.
int open_regular(const std::string& path, uint64_t* size);

// The whole content of a regular file. Throws Error("<path>: ...") when it cannot be read or is
// larger than max_bytes (`what` names the kind of file in that message, e.g. "tokenizer.json").
std::string read_file(const std::string& path, uint64_t max_bytes, const char* what = "file");

// Copies the regular file `from` to `to` (created or replaced). Throws Error naming the file that
// failed: an unreadable or non-regular source, or a write error (disk full, file size limit).
void copy_file(const std::string& from, const std::string& to);

// Writes `content` to `<path>.tmp.<pid>`, fsyncs and renames it over `path`: the file is complete
// or absent (the temp file is removed on any error, and when a signal stops the process). A path
// that names a device, FIFO or symlink (/dev/stdout) is written in place instead, so that the name
// keeps meaning what it meant. Throws Error("<path>: cannot write: ...").
void write_file_atomic(const std::string& path, const std::string& content);

// A large file written in pieces with the same guarantee: the bytes go to `<path>.tmp.<pid>`
// (removed by the destructor, and by a signal, unless commit() ran), commit() fsyncs and renames
// it over `path`. Refuses a path that is a directory, device, FIFO or symlink. Errors throw
// Error("<path>: ...").
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  uint64_t written() const { return written_; }
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1, guard_ = -1;
  uint64_t written_ = 0;
  bool done_ = false;
};

}  // namespace lowbit
