// safetensors reading (validation of every malformed-input case), writing and sharded folders.
#include "lowbit/io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

// A safetensors file from a raw header string and `data_bytes` bytes of data.
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes = 0) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

// Expects parsing to fail with an Error naming the file and containing `what`.
void expect_bad(const std::vector<uint8_t>& bytes, const std::string& what) {
  try {
    SafetensorsFile::from_memory("bad.safetensors", bytes);
    FAIL() << "no error; expected: " << what;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("bad.safetensors: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(Safetensors, ParsesValidFile) {
  auto b = make_file(
      R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"__metadata__":{"k":"v"}})",
      22);
  auto f = SafetensorsFile::from_memory("ok.safetensors", b);
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo* a = f->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::F32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a->numel(), 4);
  EXPECT_EQ(a->nbytes, 16u);
  EXPECT_EQ(f->find("b")->dtype, DType::BF16);
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_EQ(f->metadata().at("k"), "v");
}

TEST(Safetensors, RejectsEveryMalformedInput) {
  const std::string ok_entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  expect_bad({1, 2, 3}, "too small");
  // Header length past the end of the file, and absurd (> 100 MB).
  {
    auto b = make_file("{}");
    b[0] = 200;
    expect_bad(b, "header length");
    b[0] = 0;
    b[4] = 0x10;  // 64 GiB
    expect_bad(b, "header length");
  }
  expect_bad(make_file("{\"a\": "), "not valid JSON");
  expect_bad(make_file("[1,2,3]"), "not an object");
  expect_bad(make_file(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8),
             "unknown dtype F33");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
             "negative or too large");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],)"
                       R"("data_offsets":[0,8]}})",
                       8),
             "negative or too large");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8),
             "integers");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
             "data_offsets");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", 8),
             "data_offsets");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
             "begin 8 > end 0");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
             "past the end");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
             "expected 12");
  expect_bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                       12),
             "overlapping");
  expect_bad(make_file("{\"a\":{" + ok_entry + "},\"a\":{" + ok_entry + "}}", 8),
             "duplicate tensor a");
  expect_bad(make_file(R"({"a":[1,2]})"), "not an object");
  expect_bad(make_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8), "missing dtype");
  expect_bad(make_file(R"({"__metadata__":{"k":1}})"), "not a string");
}

// Found by fuzz/json_read_fuzz (regress_nul_ends_json): nlohmann's lexer stops at a NUL byte as
// if the input ended there, so a header padded with NULs (or anything after one) passed. The
// reference loader refuses it ("trailing characters"): padding must be spaces.
TEST(Safetensors, NulByteInHeaderIsError) {
  const std::string entry = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_bad(make_file(entry + std::string(4, '\0'), 8),
             fmt::format("invalid safetensors header: a NUL byte at offset {} (padding must be "
                         "spaces)",
                         8 + entry.size()));
  expect_bad(make_file(std::string("{}\0{\"b\":1}", 10)), "a NUL byte at offset 10");
  // Space padding is fine.
  EXPECT_EQ(SafetensorsFile::from_memory("ok", make_file(entry + "    ", 8))->tensors().size(), 1u);
}

TEST(Safetensors, OpenReportsPathOfMissingOrBadFile) {
  TempDir dir("open");
  try {
    SafetensorsFile::open(dir / "nope.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.safetensors"), std::string::npos);
  }
  const std::string p = dir / "garbage.safetensors";
  std::ofstream(p) << "this is not a safetensors file at all";
  try {
    SafetensorsFile::open(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.safetensors: "), std::string::npos) << e.what();
  }
}

TEST(Safetensors, WriteReadRoundTripAllFloatTypes) {
  TempDir dir("rt");
  std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, 1e-8f, -7.0f};
  std::vector<uint16_t> bf16, f16;
  for (float v : f32) {
    bf16.push_back(f32_to_bf16(v));
    f16.push_back(f32_to_f16(v));
  }
  const std::string path = dir / "rt.safetensors";
  write_safetensors(path,
                    {{"w.f32", DType::F32, {2, 3}, f32.data(), f32.size() * 4},
                     {"w.bf16", DType::BF16, {6}, bf16.data(), bf16.size() * 2},
                     {"w.f16", DType::F16, {3, 2}, f16.data(), f16.size() * 2},
                     {"empty", DType::F32, {0, 4}, nullptr, 0}},
                    {{"format", "pt"}});
  // Nothing but the final file in the folder (temp renamed away).
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "rt.safetensors");
  }
  EXPECT_EQ(files, 1);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const uint8_t* base = f->mapped()->data();
  uint64_t n = 0;
  std::memcpy(&n, base, 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "data buffer must start 8-byte aligned";
  const TensorInfo* a = f->find("w.f32");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(a->data, f32.data(), 24), 0);
  const TensorInfo* b = f->find("w.bf16");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::BF16);
  EXPECT_EQ(std::memcmp(b->data, bf16.data(), 12), 0);
  const TensorInfo* h = f->find("w.f16");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->dtype, DType::F16);
  EXPECT_EQ(std::memcmp(h->data, f16.data(), 12), 0);
  EXPECT_EQ(f->find("empty")->numel(), 0);
}

TEST(Safetensors, WriteErrorsLeaveNoFile) {
  TempDir dir("werr");
  float x[2] = {1, 2};
  // Unwritable location.
  const std::string bad = dir / "no/such/dir/x.safetensors";
  try {
    write_safetensors(bad, {{"x", DType::F32, {2}, x, 8}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos);
  }
  // Byte count that does not match the shape.
  EXPECT_THROW(write_safetensors(dir / "y.safetensors", {{"x", DType::F32, {3}, x, 8}}), Error);
  // Streaming writer: too many bytes, too few bytes, abandoned.
  {
    SafetensorsWriter w(dir / "z.safetensors", {{"x", DType::F32, {2}}});
    EXPECT_THROW(w.write(x, 12), Error);
    w.write(x, 4);
    EXPECT_THROW(w.commit(), Error);
  }
  {
    SafetensorsWriter w(dir / "z.safetensors", {{"x", DType::F32, {2}}});
    w.write(x, 8);
  }  // not committed
  EXPECT_TRUE(fs::is_empty(dir.path)) << "temp files must be removed";
  // Duplicate names are refused.
  EXPECT_THROW(
      SafetensorsWriter(dir / "d.safetensors", {{"x", DType::F32, {1}}, {"x", DType::F32, {1}}}),
      Error);
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(Safetensors, StreamingWriterMatchesOneShotWriter) {
  TempDir dir("stream");
  std::vector<float> a(1000), b(37);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = -static_cast<float>(i);
  write_safetensors(dir / "one.safetensors", {{"a", DType::F32, {10, 100}, a.data(), 4000},
                                              {"b", DType::F32, {37}, b.data(), 148}});
  {
    SafetensorsWriter w(dir / "two.safetensors",
                        {{"a", DType::F32, {10, 100}}, {"b", DType::F32, {37}}});
    EXPECT_EQ(w.total_bytes(), fs::file_size(dir / "one.safetensors"));
    w.write(a.data(), 1000);  // arbitrary split points, across tensor boundaries
    w.write(reinterpret_cast<const uint8_t*>(a.data()) + 1000, 3000);
    w.write(b.data(), 148);
    w.commit();
  }
  std::ifstream f1(dir / "one.safetensors", std::ios::binary);
  std::ifstream f2(dir / "two.safetensors", std::ios::binary);
  std::string s1((std::istreambuf_iterator<char>(f1)), {});
  std::string s2((std::istreambuf_iterator<char>(f2)), {});
  EXPECT_EQ(s1, s2);
}

std::vector<TensorDecl> shard_decls() {
  return {{"t0", DType::F32, {64}},
          {"t1", DType::F32, {64}},
          {"t2", DType::F32, {100}},
          {"t3", DType::F32, {8}}};
}

void write_shards(const std::string& dir, size_t max_bytes) {
  write_sharded_safetensors(
      dir, shard_decls(),
      [](size_t i, SafetensorsWriter& w) {
        std::vector<float> v(static_cast<size_t>(shard_decls()[i].shape[0]));
        for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<float>(i * 1000 + j);
        w.write(v.data(), v.size() * 4);
      },
      max_bytes);
}

TEST(Safetensors, ShardedFolderRoundTrip) {
  TempDir dir("shards");
  write_shards(dir.path.string(), 300);  // t0 | t1 | t2,t3? t2 = 400 B alone, t3 next
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "model-00001-of-00004.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "model-00004-of-00004.safetensors"));
  TensorStore s = TensorStore::open_dir(dir.path.string());
  EXPECT_EQ(s.files().size(), 4u);
  EXPECT_EQ(s.names(), (std::vector<std::string>{"t0", "t1", "t2", "t3"}));
  for (int i = 0; i < 4; ++i) {
    const TensorInfo& t = s.get("t" + std::to_string(i));
    const float* v = reinterpret_cast<const float*>(t.data);
    EXPECT_EQ(v[0], static_cast<float>(i * 1000));
    EXPECT_EQ(v[t.numel() - 1], static_cast<float>(i * 1000 + t.numel() - 1));
  }
  EXPECT_THROW(s.get("nope"), Error);

  // Everything fits: a single model.safetensors, no index.
  TempDir one("single");
  write_shards(one.path.string(), 1 << 20);
  EXPECT_TRUE(fs::exists(one / "model.safetensors"));
  EXPECT_FALSE(fs::exists(one / "model.safetensors.index.json"));
  EXPECT_EQ(TensorStore::open_dir(one.path.string()).names().size(), 4u);
}

void expect_store_error(const std::string& dir, const std::string& what) {
  try {
    TensorStore::open_dir(dir);
    FAIL() << "expected " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ShardedFolderErrors) {
  TempDir dir("shard_err");
  expect_store_error(dir.path.string(), "no model.safetensors");
  write_shards(dir.path.string(), 300);
  // Index naming a shard that does not exist.
  fs::remove(dir / "model-00003-of-00004.safetensors");
  expect_store_error(dir.path.string(), "model-00003-of-00004.safetensors");
  // Index listing a tensor its shard lacks.
  write_shards(dir.path.string(), 300);
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"weight_map":{"t0":"model-00001-of-00004.safetensors",)"
      << R"("ghost":"model-00001-of-00004.safetensors"}})";
  expect_store_error(dir.path.string(), "ghost");
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map":{"t0":"../x"}})";
  expect_store_error(dir.path.string(), "invalid shard file name");
  std::ofstream(dir / "model.safetensors.index.json") << "{not json";
  expect_store_error(dir.path.string(), "model.safetensors.index.json");
  // A NUL in a shard name would cut it short at the file system ("model-00001-of-00004...").
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"weight_map":{"t0":"model-00001-of-00004.safetensors\u0000.evil"}})";
  expect_store_error(dir.path.string(),
                     R"(invalid shard file name '"model-00001-of-00004.safetensors\u0000.evil"')");
}

}  // namespace
}  // namespace lowbit
