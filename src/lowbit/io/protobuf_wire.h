// Protocol Buffers wire format, read directly: the fields of one message as spans of its bytes
// (nothing is copied). lowbit reads ONNX files from strangers with it (io/onnx_model.h) rather
// than with libonnx's generated classes, which copy every initializer's raw_data into a string of
// their own: a model's weights would be held twice, and the reader checks each field as it goes.
// ONNX files are written with libonnx (export/onnx_graph.h, export/onnx_edit.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::pb {

enum Wire : int { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

struct Field {
  uint32_t number = 0;
  int wire = 0;
  uint64_t value = 0;         // varint, fixed64, fixed32
  std::string_view bytes;     // kLen payload
  size_t begin = 0, end = 0;  // the whole field (tag included) within the message's bytes
};

// Iterates the fields of one message. Malformed bytes (truncated varint or payload, group wire
// types, field number 0) throw Error("<where>: <what> is not a valid protobuf message").
class Reader {
 public:
  Reader(std::string_view bytes, std::string where, const char* what)
      : buf_(bytes), where_(std::move(where)), what_(what) {}
  bool next(Field* f);
  // A kLen field's payload as packed varints / fixed-size values, appended through `put`.
  template <typename F>
  void packed_varints(const Field& f, F&& put) const;
  const std::string& where() const { return where_; }
  [[noreturn]] void bad() const;

 private:
  uint64_t varint(size_t* at) const;
  std::string_view buf_;
  size_t at_ = 0;
  std::string where_;
  const char* what_;
};

uint64_t read_varint(std::string_view s, size_t* at, bool* ok);

template <typename F>
void Reader::packed_varints(const Field& f, F&& put) const {
  if (f.wire == kVarint) {
    put(f.value);
    return;
  }
  if (f.wire != kLen) bad();
  size_t at = 0;
  while (at < f.bytes.size()) {
    bool ok = true;
    const uint64_t v = read_varint(f.bytes, &at, &ok);
    if (!ok) bad();
    put(v);
  }
}

}  // namespace lowbit::pb
