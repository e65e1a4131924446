// UTF-8 helpers for the tokenizers: decoding/encoding code points, repairing invalid input,
// Unicode whitespace and lowercase, and GPT-2's byte <-> printable-character map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::utf8 {

// Length in bytes of the (valid) UTF-8 sequence starting with lead byte `c` (1 for stray bytes).
inline size_t char_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i] of a valid UTF-8 string; sets *len to its byte length.
uint32_t decode(std::string_view s, size_t i, size_t* len);
// Appends the UTF-8 encoding of code point cp.
void append(std::string& out, uint32_t cp);
// Returns s with every invalid UTF-8 sequence replaced by U+FFFD, one per maximal subpart (the
// WHATWG / JavaScript TextDecoder rule, so the result equals what Node reads from the file).
std::string sanitize(std::string_view s);
// True when s is valid UTF-8.
bool valid(std::string_view s);
// Rust's char::is_whitespace (Unicode White_Space).
bool is_whitespace(uint32_t cp);
// Rust's char::is_alphanumeric approximation (letters and numbers, via PCRE2-free tables of
// the C library); used for the added-token single_word rule.
bool is_alnum(uint32_t cp);
// Unicode lowercase of a string, code point by code point (Rust's char::to_lowercase).
std::string lowercase(std::string_view s);

// GPT-2 byte-level alphabet: byte -> code point of its printable stand-in, and back (-1 when the
// code point is not a stand-in).
uint32_t byte_to_char(uint8_t b);
int char_to_byte(uint32_t cp);

}  // namespace lowbit::utf8
