#include "cli/runtime_args.h"

#include "lowbit/kernels/cpu_dispatch.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/util/error.h"

namespace lowbit::cli {

void add_runtime_options(CLI::App* sub, RuntimeArgs* a) {
  sub->add_flag("--no-mmap", a->no_mmap,
                "copy fp32 weights into huge-page memory instead of mapping the file (faster)");
  sub->add_flag("--dequantize", a->dequantize,
                "reference path: dequantize quantized weights to fp32 at load instead of "
                "running them on the quantized kernels");
  sub->add_option("--fp-weights", a->fp_weights,
                  "unquantized linear weights (incl. lm_head) in memory: f32 or bf16")
      ->capture_default_str();
  sub->add_option("--act", a->act,
                  "activations of the quantized kernels: auto (int8 for integer weights), "
                  "f32 or int8")
      ->capture_default_str();
  sub->add_option("--kv-cache", a->kv, "KV cache element type: f32, f16 or bf16")
      ->capture_default_str();
  sub->add_option("--isa", a->isa,
                  "cap the kernels' instruction set: avx512, avx2 or scalar (default: best)");
}

RuntimeOptions apply_runtime_args(const RuntimeArgs& a) {
  if (a.fp_weights != "f32" && a.fp_weights != "bf16") {
    fail("--fp-weights", "expected f32 or bf16, got '{}'", a.fp_weights);
  }
  kernels::set_act_mode(kernels::parse_act_mode("--act", a.act));
  if (!a.isa.empty()) {
    const kernels::Isa isa = kernels::parse_isa("--isa", a.isa);
    if (!kernels::isa_available(isa)) {
      fail("--isa", "{} kernels are not available on this CPU", a.isa);
    }
    kernels::set_isa(isa);
  }
  transformer_options(a);  // validates --kv-cache before any loading
  RuntimeOptions rt;
  rt.use_mmap = !a.no_mmap;
  rt.repack = !a.dequantize;
  rt.bf16_linears = a.fp_weights == "bf16";
  return rt;
}

TransformerOptions transformer_options(const RuntimeArgs& a, const std::string& model) {
  TransformerOptions t;
  t.name = model;
  t.kv = parse_kv_type("--kv-cache", a.kv);
  return t;
}

}  // namespace lowbit::cli
