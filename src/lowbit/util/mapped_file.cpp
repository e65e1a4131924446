#include "lowbit/util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/signals.h"

namespace lowbit {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  uint64_t size = 0;
  const int fd = open_regular(path, &size);
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(path, "cannot mmap: {}", errno_text(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
    signals::register_mapping(p, f->size_, path);
  }
  ::close(fd);
  return f;
}

std::shared_ptr<MappedFile> MappedFile::from_memory(const std::string& path,
                                                    std::vector<uint8_t> bytes) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->owned_ = std::move(bytes);
  f->size_ = f->owned_.size();
  f->data_ = f->owned_.empty() ? nullptr : f->owned_.data();
  return f;
}

void MappedFile::release(const void* p, size_t n) const {
  if (!mapped_ || n == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = std::max(reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(data_));
  const uintptr_t hi =
      std::min(reinterpret_cast<uintptr_t>(p) + n, reinterpret_cast<uintptr_t>(data_) + size_);
  const uintptr_t begin = (lo + page - 1) / page * page;
  const uintptr_t end = hi / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (mapped_ && data_ != nullptr) {
    signals::unregister_mapping(data_);
    munmap(const_cast<uint8_t*>(data_), size_);
  }
}

}  // namespace lowbit
