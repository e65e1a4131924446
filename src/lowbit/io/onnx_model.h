// ONNX model files (onnx.proto, read on the protobuf wire format: io/protobuf_wire.h says why not
// through a protobuf library): the graph's nodes and initializers read and validated, and the same
// file written back with some nodes and initializers replaced, every other byte kept as it was.
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

struct OnnxEdit;

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
  friend std::string edited_onnx(const OnnxModel& m, const OnnxEdit& e);
  void parse(bool allow_external);
  void read_initializer(std::string_view msg, bool allow_external);
  std::string path_, bytes_;
  int64_t ir_version_ = 0;
  std::vector<OnnxOpset> opsets_;
  std::vector<OnnxNode> nodes_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::set<std::string> all_initializers_;  // names of every initializer, listed or not
  size_t graph_begin_ = 0, graph_end_ = 0;  // the graph field (tag included) within bytes_
  std::map<std::string, std::shared_ptr<MappedFile>> external_;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> owned_;
};

// A change to a model's graph; everything it does not name is written back byte for byte.
struct OnnxEdit {
  // node index -> the serialized NodeProtos written in its place (in order; empty = removed).
  std::map<int, std::vector<std::string>> nodes;
  std::set<std::string> drop_initializers;                  // also dropped from the graph's inputs
  std::map<std::string, std::string> replace_initializers;  // name -> serialized TensorProto
  std::vector<std::string> add_initializers;                // serialized TensorProtos
  std::vector<OnnxOpset> add_opsets;                        // imported unless the domain already is
};

// The model's bytes with `e` applied (the graph re-emitted last in the ModelProto).
std::string edited_onnx(const OnnxModel& m, const OnnxEdit& e);

// A serialized NodeProto with int attributes.
std::string onnx_node_bytes(const std::string& name, const std::string& op_type,
                            const std::string& domain, const std::vector<std::string>& inputs,
                            const std::vector<std::string>& outputs,
                            const std::vector<std::pair<std::string, int64_t>>& int_attributes);
// A serialized TensorProto holding `nbytes` of `data` as raw_data.
std::string onnx_tensor_bytes(const std::string& name, DType dtype,
                              const std::vector<int64_t>& dims, const void* data, size_t nbytes);

// The DType of an ONNX TensorProto data type; false for the types lowbit does not read.
bool onnx_dtype(int onnx_type, DType* out);
// The ONNX data type of a DType (0 = UNDEFINED for those ONNX lacks).
int onnx_type_of(DType t);

}  // namespace lowbit
