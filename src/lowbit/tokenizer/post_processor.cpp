#include "lowbit/tokenizer/post_processor.h"

#include "lowbit/tokenizer/json_util.h"

namespace lowbit {

using namespace tokjson;

namespace {

int pair_id(const json& j, const char* key, const std::string& where) {
  const json* v = find(j, key);
  if (!v || !v->is_array() || v->size() != 2 || !(*v)[1].is_number_integer()) {
    fail(where, "post_processor '{}' must be [token, id]", key);
  }
  long long id = (*v)[1].get<long long>();
  if (id < 0 || id >= (1 << 24)) fail(where, "post_processor '{}' has a bad id", key);
  return static_cast<int>(id);
}

void template_processing(const json& j, const std::string& where, PostProcessor& p) {
  const json* specials = find(j, "special_tokens");
  bool seen_sequence = false;
  for (const json& piece : get_array(j, "single", where)) {
    if (piece.is_object() && piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.is_object() || !piece.contains("SpecialToken") ||
        !piece["SpecialToken"].is_object()) {
      fail(where, "TemplateProcessing piece is neither Sequence nor SpecialToken");
    }
    std::string name = get_string(piece["SpecialToken"], "id", where);
    const json* spec = specials ? find(*specials, name.c_str()) : nullptr;
    if (!spec) fail(where, "TemplateProcessing special token '{}' is not defined", name);
    for (const json& id : get_array(*spec, "ids", where)) {
      if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() >= (1 << 24)) {
        fail(where, "TemplateProcessing special token '{}' has a bad id", name);
      }
      (seen_sequence ? p.suffix : p.prefix).push_back(id.get<int>());
    }
  }
}

void parse_into(const json& j, const std::string& where, PostProcessor& p) {
  std::string type = type_of(j, where);
  if (type == "TemplateProcessing") {
    template_processing(j, where, p);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    p.prefix.push_back(pair_id(j, "cls", where));
    p.suffix.push_back(pair_id(j, "sep", where));
  } else if (type == "ByteLevel") {
    // offsets only
  } else if (type == "Sequence") {
    for (const json& c : get_array(j, "processors", where)) {
      PostProcessor sub;
      parse_into(c, where, sub);
      p.prefix.insert(p.prefix.begin(), sub.prefix.begin(), sub.prefix.end());
      p.suffix.insert(p.suffix.end(), sub.suffix.begin(), sub.suffix.end());
    }
  } else {
    fail(where, "unsupported post_processor {}", type);
  }
}

}  // namespace

PostProcessor parse_post_processor(const json& j, const std::string& where) {
  PostProcessor p;
  if (j.is_null()) return p;
  p.present = true;
  parse_into(j, where, p);
  return p;
}

}  // namespace lowbit
