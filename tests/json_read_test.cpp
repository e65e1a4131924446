// Bounded JSON reading (io/json_read.h): the depth check before parsing and what parse_json
// accepts.
#include "lowbit/io/json_read.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/util/error.h"
#include "test_util.h"

namespace lowbit {
namespace {

using test::error_of;

TEST(JsonRead, DepthIsCountedOutsideStringsOnly) {
  EXPECT_EQ(error_of([] { check_json_depth("x", "[[[]]]", 3); }), "(no error)");
  EXPECT_EQ(error_of([] { check_json_depth("x", "[[[[]]]]", 3); }),
            "x: JSON nested deeper than 3 levels");
  EXPECT_EQ(error_of([] { check_json_depth("x", R"(["[[[[", "\"{{{{"])", 1); }), "(no error)");
  EXPECT_EQ(parse_json("x", std::string(64, '[') + std::string(64, ']')).size(), 1u);
  EXPECT_EQ(error_of([] { parse_json("x", std::string(65, '[') + std::string(65, ']')); }),
            "x: JSON nested deeper than 64 levels");
}

// Found by fuzz/json_read_fuzz (regress_nul_ends_json): nlohmann's lexer takes a NUL byte for the
// end of the input, so "1\0<anything>" parsed as 1 and "{...}\0<junk>" as the object.
TEST(JsonRead, NulByteIsAnErrorNotTheEnd) {
  const std::string regress("1\0\0\0[[[[[[[[]]]]]]]]]]]]", 24);
  EXPECT_EQ(error_of([&] { parse_json("f.json", regress); }),
            "f.json: not valid JSON (a NUL byte at offset 1)");
  EXPECT_EQ(error_of([&] { parse_json<nlohmann::ordered_json>("f.json", regress, 64); }),
            "f.json: not valid JSON (a NUL byte at offset 1)");
  const std::string padded("{\"a\": [1, 2]}\0\0\0\0", 17);
  EXPECT_EQ(error_of([&] { parse_json("f.json", padded); }),
            "f.json: not valid JSON (a NUL byte at offset 13)");
  // In a string a NUL must be escaped; the escape is fine.
  EXPECT_EQ(error_of([] { parse_json("f.json", std::string("[\"a\0b\"]", 7)); }),
            "f.json: not valid JSON (a NUL byte at offset 3)");
  EXPECT_EQ(parse_json("f.json", R"(["a\u0000b"])")[0].get<std::string>(), std::string("a\0b", 3));
}

}  // namespace
}  // namespace lowbit
