#include "lowbit/tokenizer/unicode_norm.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lowbit/tokenizer/unicode.h"

namespace lowbit::utf8 {

namespace {

struct CccRange {
  uint32_t first, last, ccc;
};
struct Decomp {
  uint32_t cp, a, b;  // b == 0: singleton
};
struct Comp {
  uint32_t a, b, cp;
};

#include "lowbit/tokenizer/unicode_norm_tables.inc"

constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint32_t ccc(uint32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::upper_bound(std::begin(kCccRanges), std::end(kCccRanges), cp,
                             [](uint32_t c, const CccRange& r) { return c < r.first; });
  if (it == std::begin(kCccRanges)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0) {
    auto it = std::lower_bound(std::begin(kDecomp), std::end(kDecomp), cp,
                               [](const Decomp& d, uint32_t c) { return d.cp < c; });
    if (it != std::end(kDecomp) && it->cp == cp) {
      decompose(it->a, out);
      if (it->b) decompose(it->b, out);
      return;
    }
  }
  out.push_back(cp);
}

uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  auto it = std::lower_bound(
      std::begin(kComp), std::end(kComp), std::pair(a, b),
      [](const Comp& c, std::pair<uint32_t, uint32_t> k) { return std::pair(c.a, c.b) < k; });
  if (it != std::end(kComp) && it->a == a && it->b == b) return it->cp;
  return 0;
}

std::vector<uint32_t> nfd_points(std::string_view s) {
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n;
    decompose(decode(s, i, &n), cps);
    i += n;
  }
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (ccc(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && ccc(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](uint32_t x, uint32_t y) { return ccc(x) < ccc(y); });
    i = j;
  }
  return cps;
}

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::string encode(const std::vector<uint32_t>& cps) {
  std::string out;
  for (uint32_t cp : cps) append(out, cp);
  return out;
}

}  // namespace

std::string nfd(std::string_view s) {
  if (is_ascii(s)) return std::string(s);
  return encode(nfd_points(s));
}

std::string nfc(std::string_view s) {
  if (is_ascii(s)) return std::string(s);
  std::vector<uint32_t> cps = nfd_points(s);
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  size_t starter = static_cast<size_t>(-1);
  uint32_t last_ccc = 0;
  for (uint32_t cp : cps) {
    uint32_t c = ccc(cp);
    if (starter != static_cast<size_t>(-1)) {
      bool blocked = !out.empty() && out.size() - 1 != starter && (last_ccc == 0 || last_ccc >= c);
      if (!blocked) {
        if (uint32_t composed = compose(out[starter], cp)) {
          out[starter] = composed;
          continue;
        }
      }
    }
    if (c == 0) {
      starter = out.size();
      last_ccc = 0;
    } else {
      last_ccc = c;
    }
    out.push_back(cp);
  }
  return encode(out);
}

}  // namespace lowbit::utf8
