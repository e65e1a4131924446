// ONNX model files (onnx.proto, Debian's libonnx protobuf classes): read with every initializer
// validated, written back whole (temp file + rename). A format, below the model: it knows no
// architecture (model/onnx_checkpoint.h maps a graph's tensors onto a family's names).
//
// Reading a file from a stranger: the .onnx is bounded (kMaxOnnxBytes) and must parse as a
// ModelProto; each initializer's bytes come from raw_data, the typed fields (float_data,
// int32_data, int64_data, double_data) or external data. External data locations are relative
// paths that stay inside the model's folder (no absolute path, no "..", no symlink out), and
// offset + length lie inside the file, whose size must hold dims' product × element size exactly.
// Initializers of types lowbit has no DType for (strings, complex, 4-bit) are kept in the graph
// but not listed. Errors: Error("<path>: <problem>").
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.h"
#include "lowbit/util/mapped_file.h"

namespace lowbit {

// A model.onnx larger than this is refused before it is read (protobuf's own limit is 2 GiB;
// larger models keep their weights in external data files).
constexpr uint64_t kMaxOnnxBytes = uint64_t{2} << 30;

class OnnxModel {
 public:
  // Reads and validates `path`; external data is looked up beside it.
  static std::shared_ptr<OnnxModel> open(const std::string& path);
  // The same over bytes in memory (tests, fuzzing): `path` names it in errors and its folder is
  // where external data would be looked up (refused when `allow_external` is false).
  static std::shared_ptr<OnnxModel> from_bytes(const std::string& path, const std::string& bytes,
                                               bool allow_external = true);

  const std::string& path() const { return path_; }
  const onnx::ModelProto& proto() const { return proto_; }
  // The graph's initializers with a lowbit DType (data point into the proto, an external file's
  // mapping or an owned conversion of typed fields; valid while this object lives).
  const std::vector<TensorInfo>& initializers() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  // The opset version the model imports for `domain` ("" = the default ai.onnx), 0 if none.
  int64_t opset(const std::string& domain) const;

 private:
  void index(bool allow_external);
  std::string path_;
  onnx::ModelProto proto_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::vector<std::shared_ptr<MappedFile>> external_;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> owned_;
};

// The DType of an ONNX TensorProto data type; false for the types lowbit does not read.
bool onnx_dtype(int onnx_type, DType* out);
// The ONNX data type of a DType.
int onnx_type_of(DType t);

// Sets `t` to hold `nbytes` of `data` as raw_data with the given type and dims (no external data).
void set_onnx_tensor(onnx::TensorProto* t, const std::string& name, DType dtype,
                     const std::vector<int64_t>& dims, const void* data, size_t nbytes);

// Serializes `model` to `path` (temp file + rename). Models over protobuf's 2 GiB are refused.
void write_onnx(const std::string& path, const onnx::ModelProto& model);

}  // namespace lowbit
