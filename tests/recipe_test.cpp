// Quantization recipes: glob matching of module names, the scheme each module gets (defaults,
// later rules win, skips, partial overrides), CLI override specs and recipe files, and the
// report of rules that matched nothing.
#include "lowbit/quant/recipe.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/util/error.h"
#include "test_util.h"

namespace lowbit {
namespace {

using json = nlohmann::json;
using test::error_of;
using test::TempDir;

QuantScheme int4_g128() {
  QuantScheme s;
  s.type = WeightType::kInt;
  s.bits = 4;
  s.group_size = 128;
  s.sym = false;
  s.scale_type = ScaleType::kF16;
  return s;
}

RecipeRule rule(const std::string& pattern, json fields, bool skip = false) {
  RecipeRule r;
  r.pattern = pattern;
  r.skip = skip;
  r.fields = std::move(fields);
  return r;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// --- glob_match -------------------------------------------------------------------------------

TEST(RecipeGlob, WholeNameShellGlobs) {
  EXPECT_TRUE(glob_match("lm_head", "lm_head"));
  EXPECT_FALSE(glob_match("lm_head", "lm_head2"));
  EXPECT_FALSE(glob_match("lm_hea", "lm_head"));  // the whole name must match
  EXPECT_FALSE(glob_match("head", "lm_head"));
  // `*` crosses dots.
  EXPECT_TRUE(glob_match("*.mlp.down_proj", "model.layers.3.mlp.down_proj"));
  EXPECT_TRUE(glob_match("*down_proj", "model.layers.31.mlp.down_proj"));
  EXPECT_FALSE(glob_match("*.mlp.down_proj", "model.layers.3.mlp.up_proj"));
  EXPECT_TRUE(glob_match("model.layers.1.*", "model.layers.1.self_attn.q_proj"));
  EXPECT_FALSE(glob_match("model.layers.1.*", "model.layers.10.self_attn.q_proj"));
  EXPECT_TRUE(glob_match("model.layers.1*", "model.layers.10.self_attn.q_proj"));
  EXPECT_TRUE(glob_match("*", "model.embed_tokens"));
  // `?` is one character, [..] a character class.
  EXPECT_TRUE(glob_match("model.layers.?.mlp.gate_proj", "model.layers.7.mlp.gate_proj"));
  EXPECT_FALSE(glob_match("model.layers.?.mlp.gate_proj", "model.layers.17.mlp.gate_proj"));
  EXPECT_TRUE(glob_match("model.layers.[0-2].*", "model.layers.2.mlp.up_proj"));
  EXPECT_FALSE(glob_match("model.layers.[0-2].*", "model.layers.3.mlp.up_proj"));
  EXPECT_TRUE(glob_match("*.self_attn.[qkv]_proj", "model.layers.0.self_attn.k_proj"));
  EXPECT_FALSE(glob_match("*.self_attn.[qkv]_proj", "model.layers.0.self_attn.o_proj"));
  // Case-sensitive.
  EXPECT_FALSE(glob_match("LM_HEAD", "lm_head"));
}

// --- Recipe::scheme_for ---------------------------------------------------------------------

TEST(RecipeSchemeFor, DefaultsKeepLmHeadAndEmbeddingsInFloatingPoint) {
  Recipe r{int4_g128(), {}};
  EXPECT_FALSE(r.scheme_for("lm_head").has_value());
  EXPECT_FALSE(r.scheme_for("model.embed_tokens").has_value());
  const auto s = r.scheme_for("model.layers.0.self_attn.q_proj");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(scheme_name(*s), "int4 g128 asym f16-scales");
  // Names that merely contain "lm_head" are ordinary linears.
  EXPECT_TRUE(r.scheme_for("model.lm_head_proj").has_value());
}

TEST(RecipeSchemeFor, RuleNamingLmHeadQuantizesIt) {
  Recipe r{int4_g128(), {rule("lm_head", {{"bits", 8}, {"group_size", -1}})}};
  const auto s = r.scheme_for("lm_head");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->bits, 8);
  EXPECT_EQ(s->group_size, -1);
  EXPECT_EQ(s->type, WeightType::kInt);
  EXPECT_FALSE(s->sym);  // from the default
  // An empty rule (no fields) on the embeddings gives them the default scheme.
  Recipe e{int4_g128(), {rule("model.embed_tokens", json::object())}};
  const auto se = e.scheme_for("model.embed_tokens");
  ASSERT_TRUE(se.has_value());
  EXPECT_EQ(scheme_name(*se), scheme_name(int4_g128()));
}

TEST(RecipeSchemeFor, LaterRulesWin) {
  Recipe r{int4_g128(),
           {rule("*.mlp.*", {{"bits", 8}}), rule("*.mlp.down_proj", {{"bits", 3}}),
            rule("*.mlp.gate_proj", {{"group_size", 32}})}};
  EXPECT_EQ(r.scheme_for("model.layers.0.mlp.down_proj")->bits, 3);
  EXPECT_EQ(r.scheme_for("model.layers.0.mlp.up_proj")->bits, 8);
  // Both rules apply in order: bits from the first, group size from the second.
  const auto g = r.scheme_for("model.layers.0.mlp.gate_proj");
  EXPECT_EQ(g->bits, 8);
  EXPECT_EQ(g->group_size, 32);
  EXPECT_EQ(r.scheme_for("model.layers.0.self_attn.o_proj")->bits, 4);

  // The reverse order: the general rule comes last and overrides the specific one.
  Recipe rev{int4_g128(), {rule("*.mlp.down_proj", {{"bits", 3}}), rule("*.mlp.*", {{"bits", 8}})}};
  EXPECT_EQ(rev.scheme_for("model.layers.0.mlp.down_proj")->bits, 8);
}

TEST(RecipeSchemeFor, SkipAndLaterUnskip) {
  Recipe r{int4_g128(),
           {rule("model.layers.0.*", json::object(), /*skip=*/true),
            rule("model.layers.0.mlp.down_proj", {{"bits", 8}})}};
  EXPECT_FALSE(r.scheme_for("model.layers.0.self_attn.q_proj").has_value());
  EXPECT_TRUE(r.scheme_for("model.layers.1.self_attn.q_proj").has_value());
  // A later non-skip rule brings a skipped module back, over the default scheme.
  const auto d = r.scheme_for("model.layers.0.mlp.down_proj");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->bits, 8);
  EXPECT_EQ(d->group_size, 128);
  // A skip after an override wins.
  Recipe r2{int4_g128(),
            {rule("*.down_proj", {{"bits", 8}}), rule("*", json::object(), /*skip=*/true)}};
  EXPECT_FALSE(r2.scheme_for("model.layers.0.mlp.down_proj").has_value());
}

TEST(RecipeSchemeFor, PartialOverridesKeepTheRestOfTheDefault) {
  QuantScheme base = int4_g128();
  base.sym = true;
  base.int4_clip = true;
  base.scale_type = ScaleType::kBF16;
  Recipe r{
      base,
      {rule("a", {{"group_size", 64}}), rule("b", {{"scale_dtype", "f32"}}),
       rule("c", {{"weight_type", "nf4"}}), rule("d", {{"sym", false}, {"int4_clip", false}})}};
  const auto a = r.scheme_for("a");
  EXPECT_EQ(a->group_size, 64);
  EXPECT_EQ(a->bits, 4);
  EXPECT_TRUE(a->sym);
  EXPECT_TRUE(a->int4_clip);
  EXPECT_EQ(a->scale_type, ScaleType::kBF16);
  const auto b = r.scheme_for("b");
  EXPECT_EQ(b->scale_type, ScaleType::kF32);
  EXPECT_EQ(b->group_size, 128);
  const auto c = r.scheme_for("c");
  EXPECT_EQ(c->type, WeightType::kNF4);
  EXPECT_EQ(c->bits, 4);
  EXPECT_EQ(c->group_size, 128);
  EXPECT_EQ(c->scale_type, ScaleType::kBF16);
  const auto d = r.scheme_for("d");
  EXPECT_FALSE(d->sym);
  EXPECT_FALSE(d->int4_clip);
  EXPECT_EQ(d->type, WeightType::kInt);
}

TEST(RecipeSchemeFor, BitsWithoutWeightTypeGiveIntegers) {
  QuantScheme base = int4_g128();
  base.type = WeightType::kNF4;
  Recipe r{base,
           {rule("x", {{"bits", 8}}), rule("y", {{"weight_type", "fp8_e4m3"}}),
            rule("z", {{"weight_type", "int3"}, {"bits", 3}})}};
  const auto x = r.scheme_for("x");
  EXPECT_EQ(x->type, WeightType::kInt);
  EXPECT_EQ(x->bits, 8);
  const auto y = r.scheme_for("y");
  EXPECT_EQ(y->type, WeightType::kFP8E4M3);
  EXPECT_EQ(y->bits, 8);
  const auto z = r.scheme_for("z");
  EXPECT_EQ(z->type, WeightType::kInt);
  EXPECT_EQ(z->bits, 3);
  // The default itself stays nf4.
  EXPECT_EQ(r.scheme_for("w")->type, WeightType::kNF4);
}

TEST(RecipeSchemeFor, InvalidRuleResultThrowsNamingTheRule) {
  Recipe r{int4_g128(), {rule("*.o_proj", {{"bits", 5}})}};
  const std::string e = error_of([&] { r.scheme_for("model.layers.0.self_attn.o_proj"); });
  EXPECT_NE(e.find("*.o_proj"), std::string::npos) << e;
  EXPECT_NE(e.find("5"), std::string::npos) << e;
  // weight_type and bits that disagree.
  Recipe r2{int4_g128(), {rule("x", {{"weight_type", "nf4"}, {"bits", 8}})}};
  EXPECT_NE(error_of([&] { r2.scheme_for("x"); }).find("contradicts"), std::string::npos);
}

// --- apply_scheme_fields ------------------------------------------------------------------------

TEST(RecipeFields, RejectsUnknownKeysAndBadValues) {
  const QuantScheme b = int4_g128();
  EXPECT_NE(error_of([&] {
              apply_scheme_fields("w", b, {{"bitz", 4}});
            }).find("bitz"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              apply_scheme_fields("w", b, {{"bits", "four"}});
            }).find("w: "),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              apply_scheme_fields("w", b, {{"sym", 1}});
            }).find("bad value"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              apply_scheme_fields("w", b, {{"group_size", 0}});
            }).find("group size"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              apply_scheme_fields("w", b, {{"weight_type", "int5"}});
            }).find("int5"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              apply_scheme_fields("w", b, {{"scale_dtype", "f64"}});
            }).find("f64"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_scheme_fields("w", b, json::array()); }).find("object"),
            std::string::npos);
  // int4_clip needs sym.
  EXPECT_NE(error_of([&] { apply_scheme_fields("w", b, {{"int4_clip", true}}); }), "(no error)");
  const QuantScheme ok = apply_scheme_fields("w", b, {{"int4_clip", true}, {"sym", true}});
  EXPECT_TRUE(ok.int4_clip);
  EXPECT_TRUE(ok.sym);
}

// --- parse_override ---------------------------------------------------------------------------

TEST(RecipeOverride, ValidSpecs) {
  RecipeRule r = parse_override("*.mlp.down_proj:bits=8,group_size=-1");
  EXPECT_EQ(r.pattern, "*.mlp.down_proj");
  EXPECT_FALSE(r.skip);
  EXPECT_EQ(r.fields, (json{{"bits", 8}, {"group_size", -1}}));

  r = parse_override("model.layers.0.*:fp");
  EXPECT_EQ(r.pattern, "model.layers.0.*");
  EXPECT_TRUE(r.skip);
  EXPECT_TRUE(r.fields.is_object());
  EXPECT_TRUE(r.fields.empty());
  EXPECT_TRUE(parse_override("lm_head:skip").skip);

  r = parse_override("x:weight_type=nf4,scale_dtype=bf16,sym=true");
  EXPECT_EQ(r.fields, (json{{"weight_type", "nf4"}, {"scale_dtype", "bf16"}, {"sym", true}}));
  r = parse_override("x:sym=true,int4_clip=true");
  EXPECT_EQ(r.fields, (json{{"sym", true}, {"int4_clip", true}}));

  // The parsed rule works in a recipe.
  Recipe rec{int4_g128(), {parse_override("*.down_proj:bits=8,group_size=-1")}};
  const auto s = rec.scheme_for("model.layers.2.mlp.down_proj");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(scheme_name(*s), "int8 per-channel asym f16-scales");
}

TEST(RecipeOverride, InvalidSpecs) {
  auto err = [](const std::string& spec) { return error_of([&] { parse_override(spec); }); };
  // Missing colon / empty pattern / empty body.
  EXPECT_NE(err("*.mlp.down_proj").find("expected PATTERN"), std::string::npos);
  EXPECT_NE(err(":bits=8").find("expected PATTERN"), std::string::npos);
  EXPECT_NE(err("x:").find("expected PATTERN"), std::string::npos);
  // Every error names the spec.
  EXPECT_NE(err("*.mlp.down_proj").find("--override '*.mlp.down_proj'"), std::string::npos);
  // Unknown key.
  EXPECT_NE(err("x:bitz=8").find("unknown key 'bitz'"), std::string::npos);
  // Non-integer bits / group size.
  EXPECT_NE(err("x:bits=eight").find("bits must be an integer"), std::string::npos);
  EXPECT_NE(err("x:bits=4x").find("bits must be an integer"), std::string::npos);
  EXPECT_NE(err("x:bits=").find("bits must be an integer"), std::string::npos);
  EXPECT_NE(err("x:group_size=1.5").find("group_size must be an integer"), std::string::npos);
  // Invalid values.
  EXPECT_NE(err("x:bits=5").find("not 5"), std::string::npos);
  EXPECT_NE(err("x:group_size=0").find("group size 0"), std::string::npos);
  EXPECT_NE(err("x:weight_type=int5").find("int5"), std::string::npos);
  EXPECT_NE(err("x:scale_dtype=f64").find("f64"), std::string::npos);
  EXPECT_NE(err("x:sym=yes").find("sym must be true or false"), std::string::npos);
  // Not key=value.
  EXPECT_NE(err("x:bits").find("not key=value"), std::string::npos);
  EXPECT_NE(err("x:bits=8,,group_size=32").find("not key=value"), std::string::npos);
  EXPECT_NE(err("x:=8").find("not key=value"), std::string::npos);
}

// Regression: parse_override checks keys and value types only; whether the rule makes a valid
// scheme depends on the scheme it is applied to (Recipe::validate_rules).
TEST(RecipeOverride, ClipOverrideIsValidOverASymmetricDefault) {
  QuantScheme sym = int4_g128();
  sym.sym = true;
  // The recipe-file form of the rule is fine over a symmetric default ...
  Recipe file_form{sym, {rule("*.q_proj", {{"int4_clip", true}})}};
  ASSERT_TRUE(file_form.scheme_for("model.layers.0.self_attn.q_proj")->int4_clip);
  // ... and so must be the CLI form.
  RecipeRule r;
  EXPECT_NO_THROW(r = parse_override("*.q_proj:int4_clip=true"));
  EXPECT_EQ(r.fields, (json{{"int4_clip", true}}));
  Recipe cli_form{sym, {r}};
  if (!r.pattern.empty()) {
    const auto s = cli_form.scheme_for("model.layers.0.self_attn.q_proj");
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(s->int4_clip);
    EXPECT_TRUE(s->sym);
  }
}

// --- load_recipe_file -------------------------------------------------------------------------

TEST(RecipeFile, ValidFile) {
  TempDir dir("recipe_ok");
  const std::string path = dir / "recipe.json";
  write_file(path, R"({"default": {"weight_type": "int4", "group_size": 64, "sym": true},
    "rules": [{"match": "*.mlp.down_proj", "bits": 8},
              {"match": "model.layers.0.*", "skip": true},
              {"match": "lm_head", "bits": 8, "group_size": -1},
              {"match": "*.q_proj", "weight_type": "nf4", "scale_dtype": "f32"}]})");
  QuantScheme cli = int4_g128();
  cli.scale_type = ScaleType::kBF16;  // not in the file's default: kept from the CLI's scheme
  const Recipe r = load_recipe_file(path, cli);
  EXPECT_EQ(r.base.group_size, 64);
  EXPECT_TRUE(r.base.sym);
  EXPECT_EQ(r.base.bits, 4);
  EXPECT_EQ(r.base.scale_type, ScaleType::kBF16);
  ASSERT_EQ(r.rules.size(), 4u);
  EXPECT_EQ(r.rules[1].pattern, "model.layers.0.*");
  EXPECT_TRUE(r.rules[1].skip);

  EXPECT_FALSE(r.scheme_for("model.layers.0.mlp.down_proj").has_value());
  const auto down = r.scheme_for("model.layers.1.mlp.down_proj");
  EXPECT_EQ(down->bits, 8);
  EXPECT_EQ(down->group_size, 64);
  EXPECT_TRUE(down->sym);
  const auto head = r.scheme_for("lm_head");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(scheme_name(*head), "int8 per-channel sym bf16-scales");
  const auto q = r.scheme_for("model.layers.1.self_attn.q_proj");
  EXPECT_EQ(scheme_name(*q), "nf4 g64 f32-scales");
  EXPECT_FALSE(r.scheme_for("model.embed_tokens").has_value());

  // A file with rules only keeps the CLI's default.
  write_file(path, R"({"rules": []})");
  const Recipe r2 = load_recipe_file(path, cli);
  EXPECT_EQ(scheme_name(r2.base), scheme_name(cli));
  EXPECT_TRUE(r2.rules.empty());
}

TEST(RecipeFile, InvalidFilesNameTheFileAndTheProblem) {
  TempDir dir("recipe_bad");
  const std::string path = dir / "recipe.json";
  auto err = [&](const std::string& text) {
    write_file(path, text);
    const std::string e = error_of([&] { load_recipe_file(path, int4_g128()); });
    EXPECT_EQ(e.rfind(path, 0), 0u) << "error does not start with the file: " << e;
    return e;
  };
  EXPECT_NE(err(R"({"rules": [)").find("not valid JSON"), std::string::npos);
  EXPECT_NE(err("").find("not valid JSON"), std::string::npos);
  EXPECT_NE(err("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(err(R"({"default": {}, "rulez": []})").find("unknown key 'rulez'"), std::string::npos);
  EXPECT_NE(err(R"({"rules": {"match": "x"}})").find("'rules' must be an array"),
            std::string::npos);
  // A rule without match (or with a non-string one).
  std::string e = err(R"({"rules": [{"match": "a", "bits": 8}, {"bits": 8}]})");
  EXPECT_NE(e.find("rule 1"), std::string::npos) << e;
  EXPECT_NE(e.find("needs a string 'match'"), std::string::npos) << e;
  EXPECT_NE(err(R"({"rules": [{"match": 3}]})").find("needs a string 'match'"), std::string::npos);
  EXPECT_NE(err(R"({"rules": ["x"]})").find("needs a string 'match'"), std::string::npos);
  // Bad values: in a rule and in the default.
  e = err(R"({"rules": [{"match": "x", "bits": 5}]})");
  EXPECT_NE(e.find("rule 0"), std::string::npos) << e;
  EXPECT_NE(e.find("not 5"), std::string::npos) << e;
  EXPECT_NE(err(R"({"rules": [{"match": "x", "bits": "8"}]})").find("bits must be an integer"),
            std::string::npos);
  EXPECT_NE(err(R"({"rules": [{"match": "x", "skip": "yes"}]})").find("'skip' must be"),
            std::string::npos);
  EXPECT_NE(err(R"({"rules": [{"match": "x", "group": 32}]})").find("unknown key 'group'"),
            std::string::npos);
  e = err(R"({"default": {"weight_type": "int7"}})");
  EXPECT_NE(e.find("default"), std::string::npos) << e;
  EXPECT_NE(e.find("int7"), std::string::npos) << e;
  EXPECT_NE(err(R"({"default": {"group_size": -2}})").find("group size -2"), std::string::npos);
  // A missing file.
  const std::string missing = dir / "missing.json";
  EXPECT_NE(error_of([&] { load_recipe_file(missing, int4_g128()); }).find(missing),
            std::string::npos);
}

TEST(RecipeFile, ParseRecipeReadsTextLikeTheFile) {
  const Recipe r = parse_recipe(
      "mem.json",
      R"({"default": {"group_size": 32}, "rules": [{"match": "*.o_proj", "skip": true}]})",
      int4_g128());
  EXPECT_EQ(r.base.group_size, 32);
  ASSERT_EQ(r.rules.size(), 1u);
  EXPECT_FALSE(r.scheme_for("model.layers.3.self_attn.o_proj").has_value());
  EXPECT_EQ(error_of([] { parse_recipe("mem.json", R"({"rules": 1})", int4_g128()); }),
            "mem.json: 'rules' must be an array");
  EXPECT_EQ(error_of([] { parse_recipe("mem.json", std::string("{}\0", 3), int4_g128()); }),
            "mem.json: not valid JSON (a NUL byte at offset 2)");
}

// --- unmatched --------------------------------------------------------------------------------

TEST(RecipeUnmatched, ListsRulesThatMatchedNothing) {
  Recipe r{int4_g128(),
           {rule("*.mlp.down_proj", {{"bits", 8}}), rule("model.layers.99.*", json::object(), true),
            rule("*.q_proj", {{"bits", 8}}), rule("lm_head", {{"bits", 8}})}};
  // Before any lookup every rule is unmatched.
  EXPECT_EQ(r.unmatched().size(), 4u);
  for (const char* n : {"model.layers.0.mlp.down_proj", "model.layers.0.mlp.up_proj",
                        "model.layers.1.mlp.down_proj", "model.layers.0.self_attn.k_proj"}) {
    r.scheme_for(n);
  }
  EXPECT_EQ(r.unmatched(), (std::vector<std::string>{"model.layers.99.*", "*.q_proj", "lm_head"}));
  r.scheme_for("lm_head");
  EXPECT_EQ(r.unmatched(), (std::vector<std::string>{"model.layers.99.*", "*.q_proj"}));
  EXPECT_EQ(r.rules[0].matches, 2);
}

}  // namespace
}  // namespace lowbit
