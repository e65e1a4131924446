// libFuzzer target: arbitrary bytes parsed as an ONNX model (io/onnx_model.h, external data not
// allowed), mapped to checkpoint names (model/onnx_checkpoint.h, MatMulNBits nodes unpacked), and
// written back unchanged through edited_onnx (export/onnx_edit.h, libonnx). Only lowbit::Error may
// escape; a valid parse must describe initializers inside the buffer, and a re-emitted model must
// parse to the same graph.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "lowbit/export/onnx_edit.h"
#include "lowbit/io/onnx_model.h"
#include "lowbit/model/onnx_checkpoint.h"
#include "lowbit/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<lowbit::OnnxModel> m;
  try {
    m = lowbit::OnnxModel::from_bytes("fuzz.onnx",
                                      std::string(reinterpret_cast<const char*>(data), size),
                                      /*allow_external=*/false);
  } catch (const lowbit::Error&) {
    return 0;
  }
  volatile uint8_t sink = 0;
  for (const auto& t : m->initializers()) {
    if (static_cast<size_t>(t.numel()) * lowbit::dtype_size(t.dtype) != t.nbytes) std::abort();
    if (t.nbytes == 0) continue;
    sink = sink + t.data[0] + t.data[t.nbytes - 1];  // touch both ends (ASan checks)
    if (m->find(t.name) == nullptr) std::abort();
  }
  try {
    const lowbit::OnnxCheckpoint ck = lowbit::read_onnx_checkpoint(m);
    for (const auto& [name, q] : ck.quantized) q.check(name);
  } catch (const lowbit::Error&) {
  }
  // An empty edit re-emits the same graph. libonnx parses fields the reader skips (value_info,
  // metadata) and may refuse a file the reader took: a one-line Error then, not a crash.
  std::string again;
  try {
    again = lowbit::edited_onnx(*m, {});
  } catch (const lowbit::Error&) {
    return 0;
  }
  std::shared_ptr<lowbit::OnnxModel> m2;
  try {
    m2 = lowbit::OnnxModel::from_bytes("again.onnx", again, false);
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "re-emitted model refused: %s\n", e.what());
    std::abort();
  }
  if (m2->nodes().size() != m->nodes().size() ||
      m2->initializers().size() != m->initializers().size())
    std::abort();
  return 0;
}
