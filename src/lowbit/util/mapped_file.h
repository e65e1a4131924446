// A read-only memory-mapped file. Loaders borrow pointers into it instead of copying.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lowbit {

class MappedFile {
 public:
  // Maps the whole file read-only. Throws Error("<path>: ...") when it cannot be opened.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  // Wraps bytes already in memory (tests, fuzzing); `path` names them in error messages.
  static std::shared_ptr<MappedFile> from_memory(const std::string& path,
                                                 std::vector<uint8_t> bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool is_mapped() const { return mapped_; }  // false for from_memory
  // Drops the process's pages of [p, p + n) (whole pages only; MADV_DONTNEED): they leave the
  // resident set and are read again from the page cache if touched. No-op for from_memory.
  void release(const void* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::vector<uint8_t> owned_;  // from_memory only
};

}  // namespace lowbit
