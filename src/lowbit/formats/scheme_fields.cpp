#include "lowbit/formats/scheme_fields.h"

#include "lowbit/io/json_int.h"
#include "lowbit/io/json_read.h"
#include "lowbit/util/error.h"

namespace lowbit {

using json = nlohmann::json;

QuantScheme apply_scheme_fields(const std::string& where, QuantScheme s, const json& f) {
  if (!f.is_object()) fail(where, "scheme fields must be a JSON object");
  try {
    bool bits_given = false;
    int bits = 0;
    for (const auto& [key, v] : f.items()) {
      if (key == "match" || key == "skip") continue;
      if (key == "weight_type") {
        apply_weight_type(where, v.get<std::string>(), &s);
      } else if (key == "bits") {
        bits_given = true;
        bits = json_to_int(where, v, "bits");
      } else if (key == "group_size") {
        s.group_size = json_to_int(where, v, "group_size");
      } else if (key == "sym") {
        s.sym = v.get<bool>();
      } else if (key == "int4_clip") {
        s.int4_clip = v.get<bool>();
      } else if (key == "scale_dtype") {
        s.scale_type = parse_scale_type(where, v.get<std::string>());
      } else {
        fail(where,
             "unknown key '{}' (expected match, skip, weight_type, bits, group_size, sym, "
             "int4_clip, scale_dtype)",
             key);
      }
    }
    if (bits_given) {
      if (f.contains("weight_type") && bits != s.bits) {
        fail(where, "bits {} contradicts weight_type {}", bits, f["weight_type"].dump());
      }
      if (!f.contains("weight_type")) s.type = WeightType::kInt;
      s.bits = bits;
    }
  } catch (const json::exception& e) {
    fail(where, "bad value: {}", json_error_text(e));
  }
  validate_scheme(where, s);
  return s;
}

}  // namespace lowbit
