// ONNX model files (onnx.proto, read on the protobuf wire format: io/protobuf_wire.h says why not
// through libonnx's classes): the graph's nodes and initializers read and validated, the weights
// left in the file's bytes (export/onnx_edit.h writes an edited copy back with libonnx).
// A format, below the model: it knows no architecture (model/onnx_checkpoint.h maps a graph's
// tensors onto a family's names).
//
// Reading a file from a stranger: the .onnx is bounded (kMaxOnnxBytes) and must parse as a
// ModelProto with one graph; each initializer's bytes come from raw_data, the typed fields
// (float_data, int32_data, int64_data, double_data) or external data. External data locations are
// relative paths that stay inside the model's folder (no absolute path, no "..", no symlink out),
// offset + length lie inside that file, and the byte count must equal the shape's element count ×
// element size. Initializers of types lowbit has no DType for (strings, complex, 4-bit) stay in
// the graph but are not listed. Nodes of subgraphs (If, Loop bodies) are not listed.
// Errors: Error("<path>: <problem>").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.h"
#include "lowbit/util/mapped_file.h"

namespace lowbit {

// A model.onnx larger than this is refused before it is read (protobuf's own limit is 2 GiB;
// larger models keep their weights in external data files).
constexpr uint64_t kMaxOnnxBytes = uint64_t{2} << 30;

struct OnnxAttribute {
  std::string name;
  int type = 0;  // AttributeProto.AttributeType (1 FLOAT, 2 INT, 3 STRING, 7 INTS, ...)
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
};

struct OnnxNode {
  std::string name, op_type, domain;
  std::vector<std::string> inputs, outputs;
  std::vector<OnnxAttribute> attributes;
  const OnnxAttribute* attribute(const std::string& n) const;
  int64_t int_attribute(const std::string& n, int64_t dflt) const;
  float float_attribute(const std::string& n, float dflt) const;
};

struct OnnxOpset {
  std::string domain;  // "" = ai.onnx
  int64_t version = 0;
};

class OnnxModel {
 public:
  // Reads and validates `path`; external data is looked up beside it.
  static std::shared_ptr<OnnxModel> open(const std::string& path);
  // The same over bytes in memory (tests, fuzzing): `path` names it in errors and its folder is
  // where external data would be looked up (refused when `allow_external` is false).
  static std::shared_ptr<OnnxModel> from_bytes(const std::string& path, std::string bytes,
                                               bool allow_external = true);

  const std::string& path() const { return path_; }
  int64_t ir_version() const { return ir_version_; }
  const std::vector<OnnxOpset>& opsets() const { return opsets_; }
  // The opset version imported for `domain` ("" = ai.onnx), 0 if none.
  int64_t opset(const std::string& domain) const;
  const std::vector<OnnxNode>& nodes() const { return nodes_; }
  // The graph's initializers with a lowbit DType (data point into the file's bytes, an external
  // file's mapping or an owned conversion of typed fields; valid while this object lives).
  const std::vector<TensorInfo>& initializers() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::string& bytes() const { return bytes_; }

 private:
  void parse(bool allow_external);
  void read_initializer(std::string_view msg, bool allow_external);
  std::string path_, bytes_;
  int64_t ir_version_ = 0;
  std::vector<OnnxOpset> opsets_;
  std::vector<OnnxNode> nodes_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::set<std::string> all_initializers_;  // names of every initializer, listed or not
  std::map<std::string, std::shared_ptr<MappedFile>> external_;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> owned_;
};

// The DType of an ONNX TensorProto data type; false for the types lowbit does not read.
bool onnx_dtype(int onnx_type, DType* out);
// The ONNX data type of a DType (0 = UNDEFINED for those ONNX lacks).
int onnx_type_of(DType t);

}  // namespace lowbit
