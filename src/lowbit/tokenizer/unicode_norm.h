// Unicode canonical normalization (NFC, NFD) for the NFC/NFD normalizers (CLIP uses NFC).
// Compatibility forms (NFKC/NFKD) are not supported: they would need a much larger table.
#pragma once

#include <string>
#include <string_view>

namespace lowbit::utf8 {

std::string nfd(std::string_view s);
std::string nfc(std::string_view s);

}  // namespace lowbit::utf8
