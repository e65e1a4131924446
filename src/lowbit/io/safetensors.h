// safetensors reading (memory-mapped, validated) and writing (temp file + rename).
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the data buffer; offsets are relative to the buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/io/dtype.h"
#include "lowbit/util/file.h"
#include "lowbit/util/mapped_file.h"

namespace lowbit {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and validates the file: header length, JSON, dtypes, shapes vs byte ranges, ranges inside
  // the file and not overlapping. Throws Error("<path>: <problem>").
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // The same validation over bytes in memory (tests, fuzzing); `name` appears in errors.
  static std::shared_ptr<SafetensorsFile> from_memory(const std::string& name,
                                                      std::vector<uint8_t> bytes);
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }
  std::shared_ptr<MappedFile> mapped() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  static std::shared_ptr<SafetensorsFile> parse(std::shared_ptr<MappedFile> file);
};

// All tensors of a model folder: model.safetensors, or the shards listed by
// model.safetensors.index.json.
class TensorStore {
 public:
  static TensorStore open_dir(const std::string& dir);
  // A store over tensors held elsewhere (an ONNX graph's initializers under their checkpoint
  // names): `where` names it in errors (in place of the folder), `owner` keeps the bytes alive.
  static TensorStore from_tensors(const std::string& where, std::vector<TensorInfo> tensors,
                                  std::shared_ptr<const void> owner);
  const TensorInfo* find(const std::string& name) const;
  // Throws Error("<dir>: missing tensor <name>") when absent.
  const TensorInfo& get(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  // What keeps from_tensors' bytes alive (null for a folder of safetensors files).
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<std::vector<TensorInfo>> own_tensors_;
  std::map<std::string, const TensorInfo*> by_name_;
};

// A tensor to write: bytes already in `dtype` layout.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes a safetensors file to `<path>.tmp.<pid>` and renames it over `path` when complete.
// Throws Error("<path>: ...") on I/O errors (disk full, unwritable); no partial file remains.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A tensor's name, type and shape, declared before its bytes are streamed.
struct TensorDecl {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t nbytes() const;  // numel * dtype_size; throws on overflow
};

// Streams a safetensors file whose tensors do not fit in memory: the header is written from the
// declarations, then the bytes of all tensors in declaration order through any number of write()
// calls, then commit() fsyncs and renames `<path>.tmp.<pid>` over `path`. Destroying a writer that
// was not committed (an exception on the way) removes the temp file. Throws Error("<path>: ...").
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorDecl> decls,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void write(const void* bytes, size_t n);
  void commit();
  size_t total_bytes() const { return header_bytes_ + data_bytes_; }  // final file size
  const std::string& path() const { return path_; }

 private:
  void write_raw(const void* bytes, size_t n);
  std::string path_, tmp_path_;
  int fd_ = -1;
  size_t header_bytes_ = 0, data_bytes_ = 0, written_ = 0;
  int signal_guard_ = 0;  // util/signals.h: the temp file goes if a signal stops the process
  bool committed_ = false;
};

// Writes the tensors of a model as Hugging Face does: a single model.safetensors when the total
// fits in `max_shard_bytes`, else model-0000k-of-0000n.safetensors shards (tensors kept whole, in
// order) plus model.safetensors.index.json. `produce(i, writer)` must write the bytes of decls[i].
// Returns the file names written (relative to `dir`, which must exist).
using TensorProducer = std::function<void(size_t index, SafetensorsWriter& writer)>;
std::vector<std::string> write_sharded_safetensors(
    const std::string& dir, const std::vector<TensorDecl>& decls, const TensorProducer& produce,
    size_t max_shard_bytes = size_t{5} << 30,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace lowbit
