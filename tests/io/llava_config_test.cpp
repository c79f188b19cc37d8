// config.json read the way transformers 5 reads it (hired/io/llava_config.hpp, docs/CONFIG.md):
// each field's default, precedence and alias as transformers' configuration classes define
// them (the values below were checked against transformers 5.23 itself), the presets (the
// llava-hf checkpoints' own field sets), and one test per refusal.
#include "hired/io/llava_config.hpp"

#include "support/expect_error.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace {

using hired::io::Architecture;
using hired::io::LlavaNextConfig;
using hired_test::expect_error;
using json = nlohmann::json;

/// A small llava_next config.json; `edit` changes it before it is read.
json small(const std::string& model_type = "llava_next") {
  return {{"model_type", model_type},
          {"image_token_index", 60},
          {"vision_config",
           {{"hidden_size", 8}, {"intermediate_size", 16}, {"num_hidden_layers", 4},
            {"num_attention_heads", 2}, {"image_size", 28}, {"patch_size", 7}}},
          {"text_config",
           {{"model_type", "llama"}, {"vocab_size", 64}, {"hidden_size", 16},
            {"intermediate_size", 32}, {"num_hidden_layers", 2}, {"num_attention_heads", 2}}},
          {"image_grid_pinpoints", {{28, 56}, {56, 28}}}};
}

LlavaNextConfig read(json j) {
  if (j["model_type"] == "llava") j.erase("image_grid_pinpoints");
  return LlavaNextConfig::from_json(j, "cfg.json");
}

// --- presets: the hub checkpoints' field sets --------------------------------------------------

TEST(LlavaConfig, PresetsAreTheHubCheckpointsShapes) {
  const LlavaNextConfig v7 = LlavaNextConfig::preset("llava-next-7b");
  EXPECT_EQ(v7.architecture, Architecture::llava_next);
  EXPECT_EQ(v7.vision.hidden_size, 1024);
  EXPECT_EQ(v7.vision.num_patches(), 576);
  EXPECT_EQ(v7.feature_layer_index(), 22);
  EXPECT_EQ(v7.text.num_key_value_heads, 32);
  EXPECT_EQ(v7.text.head_dim, 128);
  EXPECT_EQ(v7.text.vocab_size, 32064);
  EXPECT_FALSE(v7.text.tie_word_embeddings);

  const LlavaNextConfig v15 = LlavaNextConfig::preset("llava-1.5-7b");
  EXPECT_EQ(v15.architecture, Architecture::llava);
  EXPECT_FALSE(v15.has_image_newline());

  const LlavaNextConfig mistral = LlavaNextConfig::preset("llava-next-mistral-7b");
  EXPECT_EQ(mistral.text.model_type, "mistral");
  EXPECT_EQ(mistral.text.num_key_value_heads, 8);
  EXPECT_EQ(mistral.text.rope_theta, 1e6);
  EXPECT_TRUE(mistral.text.sliding_layers.empty());  // "sliding_window": null

  const LlavaNextConfig yi = LlavaNextConfig::preset("llava-next-34b");
  EXPECT_EQ(yi.image_token_id, 64000);
  EXPECT_EQ(yi.text.vocab_size, 64064);
  EXPECT_EQ(yi.text.eos_token_ids, std::vector<std::int64_t>{7});
  EXPECT_EQ(yi.text.head_dim, 128);  // 7168 / 56
  EXPECT_EQ(yi.text.num_key_value_heads, 8);
  EXPECT_EQ(yi.text.rope_theta, 5e6);

  for (const char* name : {"llava-next-72b", "llava-next-110b"}) {
    const LlavaNextConfig qwen = LlavaNextConfig::preset(name);
    EXPECT_EQ(qwen.text.model_type, "qwen2");
    EXPECT_EQ(qwen.image_token_id, 151646);  // inside the 152064 rows, below other ids
    EXPECT_EQ(qwen.text.vocab_size, 152064);
    EXPECT_TRUE(qwen.text.qkv_bias);
    EXPECT_FALSE(qwen.text.o_bias);
    EXPECT_TRUE(qwen.text.sliding_layers.empty());  // use_sliding_window false
    EXPECT_EQ(qwen.text.bos_token_id, 151643);
    EXPECT_EQ(qwen.text.rms_norm_eps, 1e-6);
  }
  EXPECT_EQ(LlavaNextConfig::preset("llava-next-110b").text.num_key_value_heads, 8);

  const LlavaNextConfig mini = LlavaNextConfig::preset("mini");
  EXPECT_EQ(mini.vision.num_patches(), 576);
  EXPECT_EQ(mini.text.hidden_size, 256);
  EXPECT_EQ(LlavaNextConfig::preset_names().size(), 8u);
  expect_error([] { LlavaNextConfig::preset("huge"); }, {"unknown preset 'huge'", "llava-next-34b"});
}

// --- defaults ----------------------------------------------------------------------------------

TEST(LlavaConfig, AbsentSubConfigsTakeTransformersDefaults) {
  // LlavaNextConfig gives an absent vision_config CLIP-L/336, an absent text_config LlamaConfig()
  // (whose 32000 rows do not hold the default image token 32000: its embedding lookup fails in
  // transformers, so hired refuses it).
  expect_error([] { LlavaNextConfig::from_json({{"model_type", "llava_next"}}); },
               {"image_token_index 32000", "[0, 32000)"});
  const LlavaNextConfig c =
      LlavaNextConfig::from_json({{"model_type", "llava_next"}, {"image_token_index", 31999}});
  EXPECT_EQ(c.vision.hidden_size, 1024);
  EXPECT_EQ(c.vision.image_size, 336);
  EXPECT_EQ(c.vision.patch_size, 14);
  EXPECT_EQ(c.vision.num_hidden_layers, 24);
  EXPECT_EQ(c.text.hidden_size, 4096);
  EXPECT_EQ(c.text.vocab_size, 32000);
  EXPECT_EQ(c.vision_feature_layers, std::vector<std::int64_t>{-2});
  // A vision_config object falls back to CLIPVisionConfig's own defaults instead.
  json j = {{"model_type", "llava_next"}, {"image_token_index", 1},
            {"vision_config", {{"image_size", 336}, {"patch_size", 14}}}};
  EXPECT_EQ(LlavaNextConfig::from_json(j).vision.hidden_size, 768);
}

TEST(LlavaConfig, TextDefaultsFollowTheModelType) {
  json j = small();
  j["text_config"] = {{"model_type", "qwen2"}, {"hidden_size", 64}, {"num_attention_heads", 32},
                      {"num_hidden_layers", 2}};
  j["image_token_index"] = 151646;
  const LlavaNextConfig q = read(j);
  EXPECT_EQ(q.text.vocab_size, 151936);
  EXPECT_EQ(q.text.num_key_value_heads, 32);  // Qwen2Config's default is 32, not None
  EXPECT_FALSE(q.text.bos_token_id.has_value());
  EXPECT_TRUE(q.text.eos_token_ids.empty());
  EXPECT_EQ(q.text.max_position_embeddings, 32768);

  j = small();
  j["text_config"] = {{"model_type", "mistral"}, {"hidden_size", 16}, {"num_attention_heads", 2},
                      {"num_key_value_heads", 1}, {"num_hidden_layers", 2}, {"vocab_size", 64}};
  const LlavaNextConfig m = read(j);
  EXPECT_EQ(m.text.intermediate_size, 14336);
  EXPECT_EQ(m.text.sliding_window, 4096);  // MistralConfig's default when the key is absent
  EXPECT_EQ(m.text.sliding_layers, std::vector<bool>(2, true));
  EXPECT_EQ(m.text.max_position_embeddings, 4096 * 32);

  const LlavaNextConfig l = read(small());
  EXPECT_EQ(l.text.num_key_value_heads, 2);  // LlamaConfig: None -> num_attention_heads
  EXPECT_EQ(l.text.head_dim, 8);
  EXPECT_EQ(l.text.bos_token_id, 1);
  EXPECT_EQ(l.text.eos_token_ids, std::vector<std::int64_t>{2});
  EXPECT_EQ(l.text.rope_theta, 10000.0);
  EXPECT_EQ(l.text.rms_norm_eps, 1e-6);
}

TEST(LlavaConfig, NullMeansNoneWhereTransformersAllowsIt) {
  json j = small();
  j["text_config"]["num_key_value_heads"] = nullptr;
  j["text_config"]["head_dim"] = nullptr;
  j["text_config"]["eos_token_id"] = nullptr;
  j["text_config"]["bos_token_id"] = nullptr;
  const LlavaNextConfig c = read(j);
  EXPECT_EQ(c.text.num_key_value_heads, 2);
  EXPECT_EQ(c.text.head_dim, 8);
  EXPECT_TRUE(c.text.eos_token_ids.empty());
  EXPECT_FALSE(c.text.bos_token_id.has_value());
  j["text_config"]["head_dim"] = 4;  // explicit head_dim wins over hidden / heads
  j["text_config"]["eos_token_id"] = json::array({2, 5});
  EXPECT_EQ(read(j).text.head_dim, 4);
  EXPECT_EQ(read(j).text.eos_token_ids, (std::vector<std::int64_t>{2, 5}));
}

// --- tie_word_embeddings -----------------------------------------------------------------------

/// What transformers 5.23 does (LlavaNextConfig / LlavaConfig built from each combination,
/// lm_head compared with embed_tokens): LLaVA-NeXT ties by the top level alone (absent = false);
/// LLaVA-1.5 also ties when text_config says true.
TEST(LlavaConfig, TiePrecedenceIsTransformers) {
  struct Case {
    const char* model_type;
    std::optional<bool> top, text;
    bool tied;
  };
  const std::vector<Case> cases{
      {"llava_next", {}, {}, false},        {"llava_next", {}, true, false},
      {"llava_next", false, true, false},   {"llava_next", true, false, true},
      {"llava_next", true, {}, true},       {"llava", {}, true, true},
      {"llava", false, true, true},         {"llava", true, false, true},
      {"llava", false, false, false},       {"llava", {}, {}, false}};
  for (const Case& c : cases) {
    json j = small(c.model_type);
    if (c.top) j["tie_word_embeddings"] = *c.top;
    if (c.text) j["text_config"]["tie_word_embeddings"] = *c.text;
    SCOPED_TRACE(j.dump());
    EXPECT_EQ(read(j).text.tie_word_embeddings, c.tied);
  }
}

// --- RoPE --------------------------------------------------------------------------------------

TEST(LlavaConfig, RopeThetaFromTheDictThenTheFieldThenTheDefault) {
  json j = small();
  j["text_config"]["rope_theta"] = 5e6;
  EXPECT_EQ(read(j).text.rope_theta, 5e6);
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}};
  EXPECT_EQ(read(j).text.rope_theta, 1e6);
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}};
  EXPECT_EQ(read(j).text.rope_theta, 5e6);
  // A truthy rope_scaling replaces rope_parameters; "type" is the older name of "rope_type".
  j["text_config"]["rope_scaling"] = {{"type", "default"}, {"rope_theta", 2e5}};
  EXPECT_EQ(read(j).text.rope_theta, 2e5);
  j["text_config"]["rope_scaling"] = json::object();  // empty: falsy, rope_parameters stands
  EXPECT_EQ(read(j).text.rope_theta, 5e6);
  j["text_config"]["rope_scaling"] = nullptr;
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}, {"partial_rotary_factor", 1.0}};
  EXPECT_EQ(read(j).text.rope_theta, 5e6);
}

TEST(LlavaConfig, OtherRopeTypesAreRefusedByName) {
  json j = small();
  j["text_config"]["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_error([&] { read(j); }, {"cfg.json", "text_config.rope_scaling", "rope_type 'linear'"});
  j["text_config"]["rope_scaling"] = nullptr;
  j["text_config"]["rope_parameters"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_error([&] { read(j); }, {"text_config.rope_parameters", "'llama3'"});
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}, {"factor", 8.0}};
  expect_error([&] { read(j); }, {"text_config.rope_parameters.factor"});
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}};
  expect_error([&] { read(j); }, {"partial_rotary_factor", "0.5"});
}

// --- sliding windows ---------------------------------------------------------------------------

TEST(LlavaConfig, Qwen2WindowsNeedUseSlidingWindowAndStartAtMaxWindowLayers) {
  json j = small();
  j["text_config"] = {{"model_type", "qwen2"}, {"vocab_size", 64}, {"hidden_size", 16},
                      {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                      {"num_hidden_layers", 4}, {"sliding_window", 8}, {"max_window_layers", 2}};
  EXPECT_TRUE(read(j).text.sliding_layers.empty());  // use_sliding_window defaults to false
  j["text_config"]["use_sliding_window"] = true;
  const LlavaNextConfig c = read(j);
  EXPECT_EQ(c.text.sliding_layers, (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(c.text.attention_window(1), 0);
  EXPECT_EQ(c.text.attention_window(2), 8);
  j["text_config"]["layer_types"] = {"sliding_attention", "full_attention", "full_attention",
                                     "sliding_attention"};
  EXPECT_EQ(read(j).text.sliding_layers, (std::vector<bool>{true, false, false, true}));
  j["text_config"]["layer_types"] = {"full_attention", "chunked_attention", "full_attention",
                                     "full_attention"};
  expect_error([&] { read(j); }, {"text_config.layer_types", "chunked_attention"});
  j["text_config"]["layer_types"] = {"full_attention"};
  expect_error([&] { read(j); }, {"text_config.layer_types", "4 layer types"});
  j["text_config"]["layer_types"] = {"sliding_attention", "full_attention", "full_attention",
                                     "full_attention"};
  j["text_config"]["use_sliding_window"] = false;
  expect_error([&] { read(j); }, {"text_config.layer_types", "no window"});
}

TEST(LlavaConfig, MistralWindowIsAbsentOnlyWhenNull) {
  json j = small();
  j["text_config"] = {{"model_type", "mistral"}, {"vocab_size", 64}, {"hidden_size", 16},
                      {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                      {"num_hidden_layers", 2}, {"sliding_window", nullptr}};
  EXPECT_TRUE(read(j).text.sliding_layers.empty());
  j["text_config"]["sliding_window"] = 8;
  EXPECT_EQ(read(j).text.attention_window(0), 8);
  // layer_types is Qwen2's field: MistralModel masks every layer with its window whatever it
  // says, while its cache would follow it, so hired refuses it.
  j["text_config"]["layer_types"] = {"full_attention", "full_attention"};
  expect_error([&] { read(j); }, {"text_config.layer_types"});
}

TEST(LlavaConfig, LlamaBiasesAndQwen2Biases) {
  json j = small();
  j["text_config"]["attention_bias"] = true;
  EXPECT_TRUE(read(j).text.qkv_bias && read(j).text.o_bias);
  EXPECT_FALSE(read(j).text.mlp_bias);
  j["text_config"]["mlp_bias"] = true;
  EXPECT_TRUE(read(j).text.mlp_bias);
  // A key of another model is not a field of this one: refused, not ignored.
  j["text_config"]["use_sliding_window"] = false;
  expect_error([&] { read(j); }, {"text_config.use_sliding_window"});
  j = small();
  j["text_config"]["model_type"] = "mistral";
  j["text_config"]["attention_bias"] = true;
  expect_error([&] { read(j); }, {"text_config.attention_bias"});
}

// --- the vision side ---------------------------------------------------------------------------

TEST(LlavaConfig, VisionFeatureLayerIsAnIntOrAList) {
  json j = small();
  j["vision_feature_layer"] = json::array({-1, 1});
  const LlavaNextConfig c = read(j);
  EXPECT_EQ(c.feature_hidden_states(), (std::vector<std::int64_t>{4, 1}));
  EXPECT_EQ(c.vision_layers_run(), 4);
  EXPECT_EQ(c.feature_layer_index(), 3);  // HiRED's l_final: the deepest listed layer
  EXPECT_EQ(c.projector_input_size(), 16);
  j["vision_feature_layer"] = 0;  // the embeddings: no layer runs
  EXPECT_EQ(read(j).vision_layers_run(), 0);
  EXPECT_EQ(read(j).feature_layer_index(), -1);
  j["vision_feature_layer"] = -5;  // hidden_states[-5] is the embeddings of a 4-layer tower
  EXPECT_EQ(read(j).feature_hidden_states(), std::vector<std::int64_t>{0});
  j["vision_feature_layer"] = -6;
  expect_error([&] { read(j); }, {"vision_feature_layer -6", "[-5, 4]"});
  j["vision_feature_layer"] = 5;
  expect_error([&] { read(j); }, {"vision_feature_layer 5"});
  j["vision_feature_layer"] = json::array();
  expect_error([&] { read(j); }, {"vision_feature_layer", "empty"});
  j["vision_feature_layer"] = json::array({-2, 1.5});
  expect_error([&] { read(j); }, {"vision_feature_layer", "1.5"});
}

TEST(LlavaConfig, FullStrategyOnlyForLlava15) {
  json j = small("llava");
  j["vision_feature_select_strategy"] = "full";
  EXPECT_TRUE(read(j).keeps_cls());
  j = small();
  j["vision_feature_select_strategy"] = "full";
  expect_error([&] { read(j); }, {"vision_feature_select_strategy 'full'", "llava_next"});
  j["vision_feature_select_strategy"] = "cls";
  expect_error([&] { read(j); }, {"vision_feature_select_strategy 'cls'"});
}

TEST(LlavaConfig, ActivationsOtherThanTheRealOnesAreRefused) {
  json j = small();
  j["vision_config"]["hidden_act"] = "gelu";
  EXPECT_EQ(read(j).vision.hidden_act, "gelu");
  j["vision_config"]["hidden_act"] = "gelu_new";
  expect_error([&] { read(j); }, {"vision_config.hidden_act 'gelu_new'"});
  j = small();
  j["projector_hidden_act"] = "relu";
  expect_error([&] { read(j); }, {"projector_hidden_act 'relu'"});
  j = small();
  j["text_config"]["hidden_act"] = "gelu";
  expect_error([&] { read(j); }, {"text_config.hidden_act 'gelu'"});
}

TEST(LlavaConfig, ProjectorBiasAndImageToken) {
  json j = small();
  j["multimodal_projector_bias"] = false;
  EXPECT_FALSE(read(j).multimodal_projector_bias);
  j["image_token_index"] = 0;  // anywhere in the vocabulary
  EXPECT_EQ(read(j).image_token_id, 0);
  j.erase("image_token_index");
  j["image_token_id"] = 33;  // attribute_map: the same field
  EXPECT_EQ(read(j).image_token_id, 33);
  j["image_token_index"] = 34;
  expect_error([&] { read(j); }, {"image_token_index 34", "image_token_id 33", "disagree"});
  j.erase("image_token_id");
  j["image_token_index"] = 64;
  expect_error([&] { read(j); }, {"image_token_index 64", "[0, 64)"});
}

// --- what is refused ---------------------------------------------------------------------------

TEST(LlavaConfig, UnknownKeysAreRefusedByNameAtEveryLevel) {
  json j = small();
  j["mm_patch_merge_type"] = "flat";
  expect_error([&] { read(j); }, {"cfg.json", "mm_patch_merge_type", "refuses"});
  j = small();
  j["text_config"]["qk_layernorm"] = true;
  j["text_config"]["logit_scale"] = 2.0;
  expect_error([&] { read(j); }, {"text_config.logit_scale, text_config.qk_layernorm", "keys"});
  j = small();
  j["vision_config"]["vision_use_head"] = false;
  expect_error([&] { read(j); }, {"vision_config.vision_use_head"});
  j = small();
  j["text_config"]["quantization_config"] = {{"bits", 4}};
  expect_error([&] { read(j); }, {"text_config.quantization_config"});
}

TEST(LlavaConfig, HarmlessKeysAreAccepted) {
  // What transformers 4 wrote into llava-hf files, and bookkeeping transformers 5 writes.
  json j = small();
  for (const char* key : {"ignore_index", "image_seq_length", "vocab_size", "pad_token_id"}) j[key] = 1;
  j["use_image_newline_parameter"] = true;
  j["torch_dtype"] = "float16";
  j["transformers_version"] = "4.40.0.dev0";
  j["architectures"] = {"LlavaNextForConditionalGeneration"};
  j["text_config"]["_name_or_path"] = "lmsys/vicuna-7b-v1.5";
  j["text_config"]["architectures"] = {"LlamaForCausalLM"};
  j["text_config"]["pretraining_tp"] = 1;
  j["text_config"]["use_cache"] = false;
  j["text_config"]["temperature"] = 0.7;  // a generation setting: transformers drops it
  j["text_config"]["torchscript"] = false;
  j["vision_config"]["projection_dim"] = 768;
  j["vision_config"]["vocab_size"] = 32000;
  j["vision_config"]["dropout"] = 0.0;
  j["vision_config"]["initializer_factor"] = 1.0;
  EXPECT_NO_THROW(read(j));
}

TEST(LlavaConfig, ModelTypesAndArchitecturesAreChecked) {
  json j = small();
  j["model_type"] = "llava_next_video";
  expect_error([&] { read(j); }, {"model_type 'llava_next_video'", "llava_next", "llava"});
  j.erase("model_type");
  expect_error([&] { LlavaNextConfig::from_json(j); }, {"model_type ''"});
  j = small();
  j["architectures"] = {"LlavaForConditionalGeneration"};
  expect_error([&] { read(j); }, {"architectures", "LlavaForConditionalGeneration",
                                  "LlavaNextForConditionalGeneration"});
  j = small();
  j["text_config"]["model_type"] = "gemma";
  expect_error([&] { read(j); }, {"text_config.model_type 'gemma'", "qwen2"});
  j = small();
  j["vision_config"]["model_type"] = "siglip_vision_model";
  expect_error([&] { read(j); }, {"vision_config.model_type 'siglip_vision_model'"});
  j = small("llava");
  j["image_grid_pinpoints"] = {{28, 56}};  // not a field of LlavaConfig
  expect_error([&] { LlavaNextConfig::from_json(j); }, {"image_grid_pinpoints"});
}

TEST(LlavaConfig, WrongTypesAreNamed) {
  const auto with = [](const char* level, const char* key, json value) {
    json j = small();
    (std::string(level).empty() ? j : j[level])[key] = std::move(value);
    return j;
  };
  expect_error([&] { read(with("text_config", "hidden_size", "big")); },
               {"text_config.hidden_size", "integer", "\"big\""});
  expect_error([&] { read(with("text_config", "hidden_size", 16.5)); }, {"text_config.hidden_size", "16.5"});
  expect_error([&] { read(with("text_config", "num_hidden_layers", true)); }, {"text_config.num_hidden_layers"});
  expect_error([&] { read(with("text_config", "rms_norm_eps", "tiny")); }, {"text_config.rms_norm_eps", "number"});
  expect_error([&] { read(with("text_config", "attention_bias", 1)); }, {"text_config.attention_bias", "true or false"});
  expect_error([&] { read(with("vision_config", "hidden_act", 3)); }, {"vision_config.hidden_act", "string"});
  expect_error([&] { read(with("", "text_config", json::array())); }, {"text_config", "not a JSON object"});
  expect_error([&] { read(with("", "image_grid_pinpoints", json::array({json::array({28})}))); },
               {"image_grid_pinpoints", "[28]"});
}

TEST(LlavaConfig, IntegersMustFitInt64) {
  // A float here was once cast to int64 (undefined for 1.75e41, found by fuzzing); an unsigned
  // beyond int64 would wrap to a negative number.
  json j = small();
  j["text_config"]["vocab_size"] = 1.75e41;
  expect_error([&] { read(j); }, {"text_config.vocab_size must be an integer within int64", "1.75e+41"});
  j = small();
  j["image_token_index"] = std::numeric_limits<std::uint64_t>::max();
  expect_error([&] { read(j); }, {"image_token_index must be an integer within int64",
                                  "18446744073709551615"});
}

TEST(LlavaConfig, PixelSizesAreAtMost2To24) {
  // 2^62-pixel tiles of 1-pixel patches: a patch grid of 2^124 tokens overflowed num_patches.
  json j = small();
  j["vision_config"]["image_size"] = std::int64_t{1} << 62;
  j["vision_config"]["patch_size"] = 1;
  j["image_grid_pinpoints"] = {{std::int64_t{1} << 62, std::int64_t{1} << 62}};
  expect_error([&] { read(j); }, {"vision_config.image_size 4611686018427387904", "up to 2^24"});
  j = small();
  j["image_grid_pinpoints"] = {{28, 28 << 20}};  // a multiple of 28, past 2^24
  expect_error([&] { read(j); }, {"image_grid_pinpoints entry [28, 29360128]", "up to 2^24"});
  j = small();
  j["vision_config"]["image_size"] = 1 << 24;
  j["vision_config"]["patch_size"] = 1 << 24;
  j["image_grid_pinpoints"] = {{1 << 24, 1 << 24}};
  EXPECT_EQ(read(j).vision.num_patches(), 1);
}

TEST(LlavaConfig, LayerCountsAreBoundedBeforeAnythingIsSizedByThem) {
  // Mistral's window flags and Qwen2's layer types are one entry per layer: 10^15 layers asked
  // for 125 TB from a 1 KB config.
  for (const char* model_type : {"mistral", "qwen2"}) {
    json j = small();
    j["text_config"]["model_type"] = model_type;
    j["text_config"]["num_key_value_heads"] = j["text_config"]["num_attention_heads"];  // Mistral's default is 8
    j["text_config"]["num_hidden_layers"] = std::int64_t{1'000'000'000'000'000};
    if (std::string(model_type) == "qwen2") j["text_config"]["use_sliding_window"] = true;
    expect_error([&] { read(j); }, {"text_config.num_hidden_layers 1000000000000000 is more than 4096"});
    j["text_config"]["num_hidden_layers"] = 4096;
    EXPECT_EQ(read(j).text.num_hidden_layers, 4096);
  }
}

TEST(LlavaConfig, ShapesTransformersCannotLoadAreRefused) {
  json j = small();
  j["text_config"]["hidden_size"] = 18;  // LlamaConfig: hidden_size % num_attention_heads
  j["text_config"]["num_attention_heads"] = 4;
  j["text_config"]["head_dim"] = 4;
  expect_error([&] { read(j); }, {"text_config.hidden_size 18", "num_attention_heads 4"});
  j = small();
  j["text_config"]["num_key_value_heads"] = 3;
  expect_error([&] { read(j); }, {"num_key_value_heads 3"});
  j = small();
  j["vision_config"]["image_size"] = 30;
  expect_error([&] { read(j); }, {"vision_config.image_size 30", "patch_size 7"});
  j = small();
  j["image_grid_pinpoints"] = {{28, 50}};
  expect_error([&] { read(j); }, {"image_grid_pinpoints entry [28, 50]"});
}

}  // namespace
