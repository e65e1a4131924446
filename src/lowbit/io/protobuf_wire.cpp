#include "lowbit/io/protobuf_wire.h"

#include "lowbit/util/error.h"

namespace lowbit::pb {

uint64_t read_varint(std::string_view s, size_t* at, bool* ok) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*at >= s.size()) {
      *ok = false;
      return 0;
    }
    const auto b = static_cast<uint8_t>(s[(*at)++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  *ok = false;  // more than 10 bytes
  return 0;
}

void Reader::bad() const { fail(where_, "{} is not a valid protobuf message", what_); }

uint64_t Reader::varint(size_t* at) const {
  bool ok = true;
  const uint64_t v = read_varint(buf_, at, &ok);
  if (!ok) bad();
  return v;
}

bool Reader::next(Field* f) {
  if (at_ >= buf_.size()) return false;
  f->begin = at_;
  const uint64_t tag = varint(&at_);
  f->number = static_cast<uint32_t>(tag >> 3);
  f->wire = static_cast<int>(tag & 7);
  if (f->number == 0 || (tag >> 3) > 0x1fffffff) bad();
  f->bytes = {};
  f->value = 0;
  switch (f->wire) {
    case kVarint:
      f->value = varint(&at_);
      break;
    case kFixed64:
      if (buf_.size() - at_ < 8) bad();
      for (int i = 0; i < 8; ++i)
        f->value |= static_cast<uint64_t>(static_cast<uint8_t>(buf_[at_ + i])) << (8 * i);
      at_ += 8;
      break;
    case kFixed32:
      if (buf_.size() - at_ < 4) bad();
      for (int i = 0; i < 4; ++i)
        f->value |= static_cast<uint64_t>(static_cast<uint8_t>(buf_[at_ + i])) << (8 * i);
      at_ += 4;
      break;
    case kLen: {
      const uint64_t n = varint(&at_);
      if (n > buf_.size() - at_) bad();
      f->bytes = buf_.substr(at_, static_cast<size_t>(n));
      at_ += static_cast<size_t>(n);
      break;
    }
    default:
      bad();  // groups (3, 4) are not used by onnx.proto
  }
  f->end = at_;
  return true;
}

}  // namespace lowbit::pb
