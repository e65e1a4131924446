// Evaluation results as a readable text block (stdout) and as JSON (--json FILE).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/eval/kld.h"
#include "lowbit/eval/lambada.h"
#include "lowbit/eval/perplexity.h"

namespace lowbit {

nlohmann::json plan_json(const WindowPlan& plan);
nlohmann::json to_json(const PplResult& r);
nlohmann::json to_json(const KldResult& r);
nlohmann::json to_json(const LambadaResult& r);

std::string format_plan(const WindowPlan& plan);
std::string format_result(const PplResult& r);
std::string format_result(const KldResult& r);
std::string format_result(const LambadaResult& r);

// Writes j (pretty, with a final newline) atomically (util/file.h write_file_atomic).
void write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace lowbit
