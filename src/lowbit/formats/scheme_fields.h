// A quantization scheme written as JSON fields: the keys of a recipe rule and of a checkpoint's
// per-module overrides ("weight_type", "bits", "group_size", "sym", "int4_clip", "scale_dtype").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/formats/scheme.h"

namespace lowbit {

// Applies the scheme fields of the JSON object `f` over `s` ("match" and "skip", a recipe rule's
// other keys, are ignored). Throws Error("<where>: ...") on unknown keys, wrong value types or an
// invalid result.
QuantScheme apply_scheme_fields(const std::string& where, QuantScheme s, const nlohmann::json& f);

}  // namespace lowbit
