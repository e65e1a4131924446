// Small checked accessors for tokenizer.json: every problem becomes Error("<file>: ...").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/util/error.h"

namespace lowbit::tokjson {

using json = nlohmann::json;

// j[key] when present and not null, else nullptr.
inline const json* find(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

inline std::string get_string(const json& j, const char* key, const std::string& where,
                              const std::string& dflt = "") {
  const json* v = find(j, key);
  if (!v) return dflt;
  if (!v->is_string()) fail(where, "'{}' is not a string", key);
  return v->get<std::string>();
}

inline bool get_bool(const json& j, const char* key, const std::string& where, bool dflt) {
  const json* v = find(j, key);
  if (!v) return dflt;
  if (!v->is_boolean()) fail(where, "'{}' is not a boolean", key);
  return v->get<bool>();
}

inline long long get_int(const json& j, const char* key, const std::string& where, long long dflt) {
  const json* v = find(j, key);
  if (!v) return dflt;
  if (!v->is_number_integer()) fail(where, "'{}' is not an integer", key);
  return v->get<long long>();
}

inline const json& get_array(const json& j, const char* key, const std::string& where) {
  const json* v = find(j, key);
  if (!v || !v->is_array()) fail(where, "'{}' is missing or not a list", key);
  return *v;
}

// The "type" of a component object.
inline std::string type_of(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "component is not an object");
  return get_string(j, "type", where);
}

}  // namespace lowbit::tokjson
