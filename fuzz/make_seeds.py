#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets added with it (config, llama2c, llama2c_tokenizer,
recipe, lambada, safetensors_dir, json_read, ggml_blocks, matmul_nbits, gguf, and the AWQ seeds of
quantized_checkpoint) into fuzz/corpus/<name>/. Deterministic; every seed is
far below libFuzzer's -max_len (64 KiB). Regression seeds (regress_*) are reproducers of fixed bugs
and are not written by this script.

Three more seeds come from ../shared (tok512.bin of stories260K, tok105.model of babyllama-105, the
first LAMBADA lines). Files of
../shared are never copied into the repository: scripts/fuzz.sh adds them to each run's temporary
corpus with

    python3 fuzz/make_seeds.py --shared ../shared --shared-only OUT_DIR

and `python3 fuzz/make_seeds.py` (no arguments) rewrites the committed seeds.
"""
import argparse
import json
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def put(name, seed, data):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 65536, (name, seed, len(data))
    with open(os.path.join(d, seed), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# config.json


def configs():
    base = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 172,
        "num_hidden_layers": 5,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 8,
        "vocab_size": 512,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    put("config", "llama_stories260k.json", json.dumps(base, indent=2))
    qwen = dict(base, architectures=["Qwen2ForCausalLM"], eos_token_id=[151643, 151645],
                tie_word_embeddings=None)
    del qwen["head_dim"]
    put("config", "qwen2_eos_list.json", json.dumps(qwen))
    llama3 = dict(base, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 8192},
                  rope_theta=500000.0)
    put("config", "llama3_rope.json", json.dumps(llama3))
    quant = dict(base, architectures=["MistralForCausalLM"], attention_bias=True,
                 quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 128})
    put("config", "mistral_gptq.json", json.dumps(quant))
    put("config", "bad_arch.json", json.dumps(dict(base, architectures=["T5ForConditionalGeneration"])))
    # One config per other family, in its own keys (small dims).
    families = {
        "gpt2.json": {"architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_head": 4, "n_layer": 2,
                      "n_positions": 128, "vocab_size": 256, "activation_function": "gelu_new"},
        "opt_postnorm.json": {"architectures": ["OPTForCausalLM"], "hidden_size": 64, "ffn_dim": 256,
                              "num_hidden_layers": 2, "num_attention_heads": 4,
                              "max_position_embeddings": 128, "vocab_size": 256,
                              "do_layer_norm_before": False, "word_embed_proj_dim": 32},
        "bloom.json": {"architectures": ["BloomForCausalLM"], "hidden_size": 64, "n_head": 4,
                       "n_layer": 2, "vocab_size": 256},
        "falcon40b.json": {"architectures": ["FalconForCausalLM"], "hidden_size": 64,
                           "num_attention_heads": 8, "num_kv_heads": 2, "num_hidden_layers": 2,
                           "new_decoder_architecture": True, "vocab_size": 256},
        "rw.json": {"architectures": ["RWForCausalLM"], "hidden_size": 64, "n_head": 4,
                    "n_layer": 2, "multi_query": True, "parallel_attn": True, "vocab_size": 256},
        "gptneox.json": {"architectures": ["GPTNeoXForCausalLM"], "hidden_size": 64,
                         "intermediate_size": 256, "num_attention_heads": 4,
                         "num_hidden_layers": 2, "max_position_embeddings": 128,
                         "rotary_pct": 0.25, "vocab_size": 256, "hidden_act": "gelu_fast"},
        "gptj.json": {"architectures": ["GPTJForCausalLM"], "n_embd": 64, "n_head": 4, "n_layer": 2,
                      "n_positions": 128, "rotary_dim": 8, "vocab_size": 256},
        "phi.json": {"architectures": ["PhiForCausalLM"], "hidden_size": 64,
                     "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2,
                     "max_position_embeddings": 128, "partial_rotary_factor": 0.5,
                     "vocab_size": 256},
        "baichuan13b.json": {"architectures": ["BaichuanForCausalLM"], "hidden_size": 64,
                             "intermediate_size": 172, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "vocab_size": 125696,
                             "model_max_length": 128},
        "chatglm3.json": {"architectures": ["ChatGLMModel"], "hidden_size": 64,
                          "ffn_hidden_size": 172, "num_layers": 2, "num_attention_heads": 8,
                          "kv_channels": 8, "multi_query_attention": True,
                          "multi_query_group_num": 2, "padded_vocab_size": 256, "seq_length": 128,
                          "add_qkv_bias": True, "rope_ratio": 50},
    }
    for name, cfg in families.items():
        put("config", name, json.dumps(cfg))
    missing = dict(base)
    del missing["hidden_size"]
    put("config", "bad_missing_field.json", json.dumps(missing))
    put("config", "bad_int_type.json", json.dumps(dict(base, num_attention_heads=8.5)))
    put("config", "bad_heads.json", json.dumps(dict(base, num_key_value_heads=3)))
    put("config", "bad_rope_untyped.json", json.dumps(dict(base, rope_scaling={"factor": 2.0})))
    put("config", "bad_eos_range.json", json.dumps(dict(base, eos_token_id=[4294967297, 2])))
    put("config", "truncated.json", json.dumps(base)[:150])


# ---------------------------------------------------------------------------------------------
# llama2.c checkpoint: 7 int32 header fields, then fp32 arrays (vocab < 0: untied classifier).


def llama2c(dim, hidden, layers, heads, kv_heads, vocab, seq, value=None):
    head = dim // heads
    kv = kv_heads * head
    v = abs(vocab)
    floats = (v * dim + layers * dim + layers * dim * dim + 2 * layers * kv * dim +
              layers * dim * dim + layers * dim + 3 * layers * hidden * dim + dim + seq * head +
              (0 if vocab > 0 else v * dim))
    vals = [((i * 37) % 17 - 8) / 16.0 for i in range(floats)]
    if value is not None:
        vals[value[0]] = value[1]
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq) + struct.pack(
        "<%df" % floats, *vals)


def llama2c_seeds():
    put("llama2c", "tiny_tied.bin", llama2c(8, 16, 1, 2, 1, 16, 4))
    put("llama2c", "tiny_untied.bin", llama2c(4, 8, 2, 2, 2, -8, 2))
    put("llama2c", "minimal.bin", llama2c(2, 1, 1, 1, 1, 1, 1))
    put("llama2c", "gqa.bin", llama2c(16, 16, 1, 4, 2, 12, 3))
    good = llama2c(8, 16, 1, 2, 1, 16, 4)
    put("llama2c", "bad_truncated.bin", good[:-4])
    put("llama2c", "bad_appended.bin", good + b"\0\0\0\0")
    put("llama2c", "bad_header_only.bin", good[:28])
    put("llama2c", "bad_odd_head.bin", struct.pack("<7i", 6, 4, 1, 2, 1, 4, 2) + b"\0" * 400)
    put("llama2c", "bad_nan.bin", llama2c(8, 16, 1, 2, 1, 16, 4, value=(5, float("nan"))))


# ---------------------------------------------------------------------------------------------
# llama2.c tokenizer.bin: int32 max_token_length, then per token f32 score, int32 length, bytes.


def tokbin(pieces):
    pieces = [p.encode() for p in pieces]
    out = struct.pack("<i", max(1, max(len(p) for p in pieces)))
    for i, p in enumerate(pieces):
        out += struct.pack("<fi", -float(i), len(p)) + p
    return out


def shared_seeds(shared):
    """The seeds cut from ../shared (written only into a run's temporary corpus)."""
    tok512 = os.path.join(shared, "models", "stories260K", "tok512.bin")
    if os.path.exists(tok512):
        with open(tok512, "rb") as f:
            put("llama2c_tokenizer", "stories260k_tok512.bin", f.read())
    tok105 = os.path.join(shared, "models", "babyllama-105", "tok105.model")
    if os.path.exists(tok105):
        with open(tok105, "rb") as f:
            put("sentencepiece", "babyllama105_tok105.model", f.read())
    path = os.path.join(shared, "data", "lambada", "lambada_test.jsonl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")[:3]
        put("lambada", "lambada_test_head.jsonl", b"\n".join(lines) + b"\n")


def tokenizer_seeds():
    specials = ["<unk>", "<s>", "</s>"]
    byte_pieces = ["<0x%02X>" % b for b in range(256)]
    words = ["\u2581", " ", "e", "l", "o", "he", "ll", "hell", "hello", " w", "or", "ld", " world",
             "\u2581x", "12", "3"]
    put("llama2c_tokenizer", "byte_fallback.bin", tokbin(specials + byte_pieces + words))
    put("llama2c_tokenizer", "no_bytes.bin", tokbin(specials + [" ", "a", "b", "ab", " a", ""]))
    put("llama2c_tokenizer", "three.bin", tokbin(specials))
    good = tokbin(specials + [" ", "a", "b", "ab"])
    put("llama2c_tokenizer", "bad_truncated.bin", good[:-1])
    put("llama2c_tokenizer", "bad_max_len.bin", struct.pack("<i", 0) + good[4:])
    put("llama2c_tokenizer", "bad_length.bin",
        struct.pack("<i", 8) + struct.pack("<fi", 0.0, -1) + good[4:])
    put("llama2c_tokenizer", "bad_two_tokens.bin", tokbin(["<unk>", "<s>"]))


# ---------------------------------------------------------------------------------------------
# Recipe JSON (docs/QUANTIZE.md).


def recipe_seeds():
    put("recipe", "doc_example.json", json.dumps({
        "default": {"weight_type": "int4", "group_size": 128, "sym": False, "scale_dtype": "f16"},
        "rules": [{"match": "*.mlp.down_proj", "bits": 8},
                  {"match": "model.layers.0.*", "skip": True}]}, indent=1))
    put("recipe", "nf4_lm_head.json", json.dumps({
        "default": {"weight_type": "nf4", "group_size": 64},
        "rules": [{"match": "lm_head", "weight_type": "fp8_e4m3", "scale_dtype": "f32"},
                  {"match": "*.embed_tokens", "skip": False, "group_size": -1}]}))
    put("recipe", "sym_clip.json", json.dumps({
        "default": {"bits": 3, "sym": True, "int4_clip": True},
        "rules": [{"match": "*q_proj", "weight_type": "fp4"}, {"match": "*", "bits": 2}]}))
    put("recipe", "empty.json", "{}")
    put("recipe", "bad_unknown_key.json", json.dumps({"rules": [{"match": "*", "bitz": 8}]}))
    put("recipe", "bad_contradiction.json",
        json.dumps({"rules": [{"match": "*", "bits": 8, "weight_type": "int4"}]}))
    put("recipe", "bad_rules_type.json", json.dumps({"rules": {"match": "*"}}))
    put("recipe", "bad_group_size.json", json.dumps({"default": {"group_size": 0}}))
    put("recipe", "bad_clip_asym.json",
        json.dumps({"default": {"sym": False}, "rules": [{"match": "*", "int4_clip": True}]}))


# ---------------------------------------------------------------------------------------------
# LAMBADA jsonl.


def lambada_seeds():
    put("lambada", "small.jsonl",
        '{"text": "the cat sat on the mat"}\n\n  \r\n{"text": "one"}\r\n{"text": "a b"}')
    put("lambada", "unicode.jsonl", json.dumps({"text": "caf\u00e9 \u2581na\u00efve  end "}) + "\n")
    put("lambada", "bad_not_object.jsonl", '{"text": "a b"}\n["text"]\n')
    put("lambada", "bad_text_type.jsonl", '{"text": 3}\n')
    put("lambada", "bad_json.jsonl", '{"text": "a b"\n')
    put("lambada", "bad_no_space.jsonl", '{"text": "word"}\n')
    put("lambada", "empty.jsonl", "\n \n")


# ---------------------------------------------------------------------------------------------
# Sharded safetensors folder (fuzz/safetensors_dir_fuzz.cpp): index JSON, NUL, then files
# "<name>\n<bytes>" separated by "\n--next-file--\n".

SEP = b"\n--next-file--\n"


def safetensors(tensors, pad=True):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def folder(index, files):
    idx = b"" if index is None else json.dumps(index).encode()
    return idx + b"\0" + SEP.join(name.encode() + b"\n" + body for name, body in files)


def safetensors_dir_seeds():
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    a = ("a", "F32", [2], struct.pack("<2f", 1.0, 2.0))
    b = ("b", "BF16", [1, 3], b"\x80\x3f\x00\x40\x40\x40")
    c = ("c", "F16", [0], b"")
    index = {"metadata": {"total_size": 14}, "weight_map": {"a": s1, "b": s2, "c": s2}}
    shards = [(s1, safetensors([a])), (s2, safetensors([b, c]))]
    put("safetensors_dir", "sharded.bin", folder(index, shards))
    put("safetensors_dir", "single.bin", folder(None, [("model.safetensors", safetensors([a, b]))]))
    put("safetensors_dir", "single_and_index.bin",
        folder({"weight_map": {"a": "model.safetensors"}},
               [("model.safetensors", safetensors([a, b]))]))
    put("safetensors_dir", "bad_missing_shard.bin", folder(index, shards[:1]))
    put("safetensors_dir", "bad_absent_tensor.bin",
        folder({"weight_map": {"a": s1, "z": s1}}, shards))
    put("safetensors_dir", "bad_shard_name.bin",
        folder({"weight_map": {"a": "../" + s1}}, shards))
    put("safetensors_dir", "bad_weight_map.bin", folder({"weight_map": [s1]}, shards))
    put("safetensors_dir", "bad_empty_map.bin", folder({"weight_map": {}}, shards))
    put("safetensors_dir", "bad_index_json.bin", b'{"weight_map": {"a": "' + b"\0" +
        SEP.join([s1.encode() + b"\n" + safetensors([a])]))
    put("safetensors_dir", "bad_shard_bytes.bin",
        folder({"weight_map": {"a": s1}}, [(s1, safetensors([a])[:-3])]))
    put("safetensors_dir", "empty_folder.bin", b"")


# ---------------------------------------------------------------------------------------------
# Quantized checkpoints (quantization_config JSON, NUL, safetensors): the AWQ GEMM layout.

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_words(codes, rows, cols):
    """codes[r][c] (4-bit) -> int32 words [rows, cols/8], AutoAWQ's interleaved nibble order."""
    out = []
    for r in range(rows):
        for j in range(cols // 8):
            w = 0
            for i in range(8):
                w |= codes[r][8 * j + AWQ_ORDER[i]] << (4 * i)
            out.append(w)
    return struct.pack("<%dI" % len(out), *out)


def awq_module(prefix, n_in, n_out, group, zero):
    codes = [[(r * 7 + c * 3) % 16 for c in range(n_out)] for r in range(n_in)]
    groups = n_in // group
    zeros = [[zero] * n_out for _ in range(groups)]
    scales = struct.pack("<%de" % (groups * n_out), *[0.01 * (1 + c % 5) for c in range(groups * n_out)])
    return [(prefix + ".qweight", "I32", [n_in, n_out // 8], awq_words(codes, n_in, n_out)),
            (prefix + ".qzeros", "I32", [groups, n_out // 8], awq_words(zeros, groups, n_out)),
            (prefix + ".scales", "F16", [groups, n_out], scales)]


def quantized_checkpoint_seeds():
    # As AutoAWQ publishes: transformers' keys, one module kept in floating point.
    qc = {"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": True,
          "version": "gemm", "modules_to_not_convert": ["mlp.down_proj"]}
    tensors = awq_module("model.layers.0.self_attn.q_proj", 64, 16, 32, 5)
    tensors.append(("model.layers.0.mlp.down_proj.weight", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)))
    put("quantized_checkpoint", "awq_gemm_int4",
        json.dumps(qc).encode() + b"\0" + safetensors(tensors))
    # As lowbit writes it (--format awq): a symmetric module (zeros 8) named in lowbit_modules,
    # AutoAWQ's own key names, per-channel.
    qc = {"quant_method": "awq", "w_bit": 4, "q_group_size": -1, "version": "GEMM",
          "lowbit_modules": {"l": {"layout": "awq", "weight_type": "int4", "group_size": -1,
                                   "sym": True, "int4_clip": False, "scale_dtype": "f16"}}}
    put("quantized_checkpoint", "awq_lowbit_modules_sym",
        json.dumps(qc).encode() + b"\0" + safetensors(awq_module("l", 32, 8, 32, 8)))


# ---------------------------------------------------------------------------------------------
# Bounded JSON reading.


def json_read_seeds():
    put("json_read", "object.json", json.dumps({"a": [1, 2.5, -3, True, None, "x"], "b": {}}))
    put("json_read", "strings.json", json.dumps(["[[[", "\\\"{", "]}", "\u00e9\n"]))
    put("json_read", "depth3.json", "[[[]]]")
    put("json_read", "depth4.json", '{"a":[{"b":[]}]}')
    put("json_read", "depth64.json", "[" * 64 + "]" * 64)
    put("json_read", "depth65.json", "[" * 65 + "]" * 65)
    put("json_read", "deep_truncated.json", "{\"a\":" * 70)
    put("json_read", "scalar.json", "  -12.5e3 ")
    put("json_read", "bad_close_first.json", "]]]][[[[")
    put("json_read", "bad_trailing.json", "[1] [")
    put("json_read", "bad_escape.json", '["a\\')


# ---------------------------------------------------------------------------------------------
# ONNX models (protobuf wire format written by hand: no onnx package needed).


def pb_varint(v):
    v &= (1 << 64) - 1
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_varint((field << 3) | 2) + pb_varint(len(data)) + data


def onnx_tensor(name, dtype, dims, raw=None, floats=None, int64s=None):
    t = b"".join(pb_int(1, d) for d in dims) + pb_int(2, dtype) + pb_bytes(8, name)
    if raw is not None:
        t += pb_bytes(9, raw)
    if floats is not None:
        t += pb_bytes(4, struct.pack("<%df" % len(floats), *floats))
    if int64s is not None:
        t += pb_bytes(7, b"".join(pb_varint(v) for v in int64s))
    return t


def onnx_node(name, op, inputs, outputs, ints=(), domain=""):
    n = b"".join(pb_bytes(1, i) for i in inputs) + b"".join(pb_bytes(2, o) for o in outputs)
    n += pb_bytes(3, name) + pb_bytes(4, op)
    for k, v in ints:
        n += pb_bytes(5, pb_bytes(1, k) + pb_int(3, v) + pb_int(20, 2))
    if domain:
        n += pb_bytes(7, domain)
    return n


def onnx_model(nodes, tensors, opsets=(("", 13),)):
    g = b"".join(pb_bytes(1, n) for n in nodes) + pb_bytes(2, "g")
    g += b"".join(pb_bytes(5, t) for t in tensors)
    g += pb_bytes(11, pb_bytes(1, "x")) + pb_bytes(12, pb_bytes(1, "y"))
    m = pb_int(1, 7) + pb_bytes(2, "lowbit-seeds")
    m += b"".join(pb_bytes(8, (pb_bytes(1, d) if d else b"") + pb_int(2, v)) for d, v in opsets)
    return m + pb_bytes(7, g)


def onnx_seeds():
    w = struct.pack("<32f", *[0.25 * (i % 7) - 0.5 for i in range(32)])  # [4, 8]
    norm = onnx_tensor("model.norm.weight", 1, [4], floats=[1.0, 0.5, 2.0, 1.5])
    shape = onnx_tensor("onnx::Reshape_7", 7, [2], int64s=[-1, 4])
    matmul = onnx_node("/model/layers.0/self_attn/q_proj/MatMul", "MatMul",
                       ["x", "onnx::MatMul_5"], ["y"])
    good = onnx_model([matmul], [onnx_tensor("onnx::MatMul_5", 1, [4, 8], raw=w), norm, shape])
    put("onnx", "matmul_anonymous.onnx", good)
    gemm = onnx_node("/transformer/h.0/attn/c_attn/Gemm", "Gemm",
                     ["x", "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias"],
                     ["y"], ints=[("transB", 1)])
    put("onnx", "gemm_named.onnx", onnx_model([gemm], [
        onnx_tensor("transformer.h.0.attn.c_attn.weight", 1, [8, 4], raw=w),
        onnx_tensor("transformer.h.0.attn.c_attn.bias", 10, [8], raw=b"\0\x3c" * 8)]))
    # MatMulNBits: K = 16, N = 2, 4 bits, block 16 (one block per row), asymmetric.
    nbits = onnx_node("/model/layers.0/mlp/down_proj/MatMul", "MatMulNBits",
                      ["a", "down_Q4", "down_scales", "down_zero_points"], ["y"],
                      ints=[("K", 16), ("N", 2), ("bits", 4), ("block_size", 16)],
                      domain="com.microsoft")
    gather = onnx_node("/model/layers.0/mlp/down_proj/MatMul_act_order", "Gather",
                       ["x", "down_perm"], ["a"], ints=[("axis", -1)])
    tensors = [onnx_tensor("down_Q4", 2, [2, 1, 8], raw=bytes(range(16))),
               onnx_tensor("down_scales", 1, [2], floats=[0.5, 0.125]),
               onnx_tensor("down_zero_points", 2, [2], raw=b"\x08\x07")]
    put("onnx", "matmul_nbits.onnx",
        onnx_model([nbits], tensors, opsets=(("", 13), ("com.microsoft", 1))))
    perm = onnx_tensor("down_perm", 7, [16], int64s=[(i * 5) % 16 for i in range(16)])
    put("onnx", "matmul_nbits_act_order.onnx",
        onnx_model([gather, nbits], tensors + [perm], opsets=(("", 13), ("com.microsoft", 1))))
    put("onnx", "bad_truncated.onnx", good[:-9])
    put("onnx", "bad_wrong_size.onnx", onnx_model([matmul], [onnx_tensor("onnx::MatMul_5", 1, [4, 9], raw=w)]))
    put("onnx", "bad_twice.onnx", onnx_model([matmul], [norm, norm]))
    ext = onnx_tensor("model.norm.weight", 1, [4]) + pb_bytes(13, pb_bytes(1, "location") + pb_bytes(2, "../x"))
    put("onnx", "bad_external.onnx", onnx_model([], [ext + pb_int(14, 1)]))
    put("onnx", "bad_nbits_attrs.onnx", onnx_model([onnx_node(
        "/m/l/MatMul", "MatMulNBits", ["a", "down_Q4", "down_scales"], ["y"],
        ints=[("K", 16), ("N", 3), ("bits", 4), ("block_size", 16)], domain="com.microsoft")], tensors))


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# GGUF files (gguf_fuzz): tiny llama models with f32, f16, q4_0 and q8_0 tensors and "llama" /
# "gpt2" vocabularies, and broken variants.

GGUF_SCALAR = {4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}


def gguf_value(t, v):
    if t == 8:
        b = v.encode()
        return struct.pack("<Q", len(b)) + b
    if t == 9:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gguf_value(et, x) for x in items)
    return struct.pack(GGUF_SCALAR[t], v)


def gguf_file(kv, tensors, align=32):
    """kv: [(key, type, value)]; tensors: [(name, ne, ggml type, data bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, t, v in kv:
        out += gguf_value(8, k) + struct.pack("<I", t) + gguf_value(t, v)
    offset, data = 0, b""
    for name, ne, t, b in tensors:
        out += gguf_value(8, name) + struct.pack("<I", len(ne))
        out += b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", t, offset)
        pad = (-len(b)) % align
        data += b + b"\0" * pad
        offset += len(b) + pad
    out += b"\0" * ((-len(out)) % align)
    return out + data


def gguf_tensor_bytes(n, t, seed):
    if t == 0:
        return b"".join(struct.pack("<f", ((i * 7 + seed) % 13) * 0.01 - 0.05) for i in range(n))
    if t == 1:
        return b"".join(struct.pack("<e", ((i * 5 + seed) % 11) * 0.01 - 0.05) for i in range(n))
    if t == 2:  # q4_0: f16 scale + 16 bytes of nibbles per 32 values
        return b"".join(struct.pack("<e", 0.01) + bytes((j * 37 + seed) % 256 for j in range(16))
                        for _ in range(n // 32))
    if t == 8:  # q8_0: f16 scale + 32 int8
        return b"".join(struct.pack("<e", 0.002) + bytes((j * 11 + seed) % 256 for j in range(32))
                        for _ in range(n // 32))
    raise ValueError(t)


def gguf_model(dim=8, hidden=16, vocab=16, matrix_type=0, vocab_kind="llama", tied=True, drop=()):
    kv = [("general.architecture", 8, "llama"),
          ("llama.embedding_length", 4, dim), ("llama.feed_forward_length", 4, hidden),
          ("llama.block_count", 4, 1), ("llama.attention.head_count", 4, 2),
          ("llama.attention.head_count_kv", 4, 1), ("llama.context_length", 4, 32),
          ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5), ("llama.rope.freq_base", 6, 1e4)]
    if vocab_kind == "llama":
        toks = ["<unk>", "<s>", "</s>"] + ["\u2581a", "b", "c", "ab", "\u2581ab"] + \
               ["<0x%02X>" % i for i in range(vocab - 8)]
        kv += [("tokenizer.ggml.model", 8, "llama"), ("tokenizer.ggml.tokens", 9, (8, toks)),
               ("tokenizer.ggml.scores", 9, (6, [-float(i) for i in range(vocab)])),
               ("tokenizer.ggml.token_type", 9, (5, [2, 3, 3] + [1] * 5 + [6] * (vocab - 8))),
               ("tokenizer.ggml.bos_token_id", 4, 1), ("tokenizer.ggml.add_bos_token", 7, True)]
    else:
        toks = ["a", "b", "\u0120", "\u0120a", "ab", "<|endoftext|>"] + \
               ["c%d" % i for i in range(vocab - 6)]
        kv += [("tokenizer.ggml.model", 8, "gpt2"), ("tokenizer.ggml.pre", 8, "gpt-2"),
               ("tokenizer.ggml.tokens", 9, (8, toks)),
               ("tokenizer.ggml.token_type", 9, (5, [1] * 5 + [3] + [1] * (vocab - 6))),
               ("tokenizer.ggml.merges", 9, (8, ["\u0120 a", "a b"])),
               ("tokenizer.ggml.eos_token_id", 4, 5)]
    kv = [e for e in kv if e[0] not in drop]
    kvd = dim // 2
    shapes = [("token_embd.weight", [dim, vocab], True), ("output_norm.weight", [dim], False),
              ("blk.0.attn_norm.weight", [dim], False), ("blk.0.attn_q.weight", [dim, dim], True),
              ("blk.0.attn_k.weight", [dim, kvd], True), ("blk.0.attn_v.weight", [dim, kvd], True),
              ("blk.0.attn_output.weight", [dim, dim], True),
              ("blk.0.ffn_norm.weight", [dim], False),
              ("blk.0.ffn_gate.weight", [dim, hidden], True),
              ("blk.0.ffn_up.weight", [dim, hidden], True),
              ("blk.0.ffn_down.weight", [hidden, dim], True)]
    if not tied:
        shapes.append(("output.weight", [dim, vocab], True))
    tensors = []
    for i, (name, ne, matrix) in enumerate(shapes):
        if name in drop:
            continue
        t = matrix_type if matrix and ne[0] % 32 == 0 else 0
        n = 1
        for d in ne:
            n *= d
        tensors.append((name, ne, t, gguf_tensor_bytes(n, t, i)))
    return gguf_file(kv, tensors)


def gguf_seeds():
    put("gguf", "tiny_f32.gguf", gguf_model())
    put("gguf", "tiny_f16_untied.gguf", gguf_model(matrix_type=1, tied=False))
    put("gguf", "q4_0.gguf", gguf_model(dim=32, hidden=32, matrix_type=2))
    put("gguf", "q8_0_gpt2.gguf", gguf_model(dim=32, hidden=64, matrix_type=8, vocab_kind="gpt2"))
    good = gguf_model()
    put("gguf", "bad_truncated.gguf", good[:-7])
    put("gguf", "bad_header_only.gguf", good[:40])
    put("gguf", "bad_missing_tensor.gguf", gguf_model(drop=("blk.0.attn_k.weight",)))
    put("gguf", "bad_missing_key.gguf", gguf_model(drop=("llama.block_count",)))
    put("gguf", "bad_no_vocab.gguf", gguf_model(drop=("tokenizer.ggml.tokens",)))
# ggml blocks (type index, flags, whole blocks)

GGML_TYPES = [  # (name, values per block, bytes per block, offsets of fp16 fields)
    ("f32", 1, 4, []), ("f16", 1, 2, [0]), ("bf16", 1, 2, []), ("q4_0", 32, 18, [0]),
    ("q4_1", 32, 20, [0, 2]), ("q5_0", 32, 22, [0]), ("q5_1", 32, 24, [0, 2]),
    ("q8_0", 32, 34, [0]), ("q4_k", 256, 144, [0, 2]), ("q5_k", 256, 176, [0, 2]),
    ("q6_k", 256, 210, [208]), ("iq4_nl", 32, 18, [0]),
]


def ggml_blocks_seeds():
    for index, (name, values, size, halves) in enumerate(GGML_TYPES):
        nblocks = max(2, 64 // values)
        blocks = bytearray()
        for b in range(nblocks):
            block = bytearray((b * 37 + i * 11 + 5) & 0xFF for i in range(size))
            for at in halves:
                block[at:at + 2] = struct.pack("<H", 0x2E66 if b % 2 else 0xBC00)  # 0.1, -1.0
            blocks += block
        put("ggml_blocks", name, bytes([index, 0]) + bytes(blocks))
        put("ggml_blocks", name + "_importance", bytes([index, 1]) + bytes(blocks))
    # A q4_k block whose scale fields are inf and NaN (decoded values non-finite).
    inf_block = bytearray(144)
    inf_block[0:4] = struct.pack("<HH", 0x7C00, 0x7E00)
    inf_block[4:16] = b"\xff" * 12
    put("ggml_blocks", "q4_k_inf_nan", bytes([8, 1]) + bytes(inf_block))
# MatMulNBits tensors (fuzz/matmul_nbits_fuzz.cpp): bits u8, block_size u32, K u16, N u16, byte
# counts u16 of B, scales, zero_points, g_idx, perm, then those bytes.


def matmul_nbits(bits, block, K, N, zp=False, g_idx=None, perm=None):
    kb = (K + block - 1) // block
    B = bytes((i * 37 + 11) & 0xFF for i in range(N * kb * block * bits // 8))
    scales = b"".join(struct.pack("<f", 0.01 * (1 + i % 7)) for i in range(N * kb))
    zps = bytes((i * 5 + 3) & 0xFF for i in range(N * ((kb * bits + 7) // 8))) if zp else b""
    gi = b"".join(struct.pack("<i", g) for g in g_idx) if g_idx else b""
    pm = b"".join(struct.pack("<q", p) for p in perm) if perm else b""
    head = struct.pack("<BIHH", bits, block, K, N)
    head += struct.pack("<HHHHH", len(B), len(scales), len(zps), len(gi), len(pm))
    return head + B + scales + zps + gi + pm


def matmul_nbits_seeds():
    put("matmul_nbits", "int4_g32_sym", matmul_nbits(4, 32, 64, 3))
    put("matmul_nbits", "int4_g32_zp_ragged", matmul_nbits(4, 32, 40, 2, zp=True))
    put("matmul_nbits", "int8_g16_zp", matmul_nbits(8, 16, 48, 2, zp=True))
    put("matmul_nbits", "int2_g64", matmul_nbits(2, 64, 64, 4, zp=True))
    put("matmul_nbits", "int4_perm", matmul_nbits(4, 16, 32, 2, perm=[(i * 7) % 32 for i in range(32)]))
    put("matmul_nbits", "int4_g_idx", matmul_nbits(4, 16, 32, 2, zp=True, g_idx=[i % 2 for i in range(32)]))
    put("matmul_nbits", "bad_block", matmul_nbits(4, 24, 48, 2))


def main():
    global CORPUS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", help="the shared data folder (for --shared-only)")
    ap.add_argument("--shared-only", metavar="OUT_DIR",
                    help="write only the seeds cut from --shared, into OUT_DIR/<target>/")
    args = ap.parse_args()
    if args.shared_only:
        CORPUS = args.shared_only
        if args.shared and os.path.isdir(args.shared):
            shared_seeds(args.shared)
        return
    configs()
    llama2c_seeds()
    tokenizer_seeds()
    recipe_seeds()
    lambada_seeds()
    safetensors_dir_seeds()
    quantized_checkpoint_seeds()
    json_read_seeds()
    onnx_seeds()
    gguf_seeds()
    ggml_blocks_seeds()
    matmul_nbits_seeds()


if __name__ == "__main__":
    main()
