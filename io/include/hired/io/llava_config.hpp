// LLaVA-Next model configuration: the fields of a Hugging Face llava-hf `config.json` that the
// runtime needs, with transformers' defaults for the ones a checkpoint leaves out, and the
// built-in presets. Torch-free.
#pragma once

#include "hired/error.hpp"
#include "hired/io/file.hpp"
#include "hired/geometry.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace hired::io {

/// CLIP vision tower (CLIPVisionConfig; defaults are transformers').
struct VisionConfig {
  std::int64_t hidden_size = 768;
  std::int64_t intermediate_size = 3072;
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t image_size = 224;
  std::int64_t patch_size = 32;
  std::int64_t num_channels = 3;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";

  std::int64_t head_dim() const { return hidden_size / num_attention_heads; }
  std::int64_t grid_side() const { return image_size / patch_size; }
  std::int64_t num_patches() const { return grid_side() * grid_side(); }
};

/// Llama-family decoder (LlamaConfig / MistralConfig; defaults follow `model_type`).
struct TextConfig {
  std::string model_type = "llama";
  std::int64_t vocab_size = 32000;
  std::int64_t hidden_size = 4096;
  std::int64_t intermediate_size = 11008;
  std::int64_t num_hidden_layers = 32;
  std::int64_t num_attention_heads = 32;
  std::int64_t num_key_value_heads = 32;
  std::int64_t head_dim = 128;
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::string hidden_act = "silu";
  std::int64_t bos_token_id = 1;
  std::int64_t eos_token_id = 2;
  std::int64_t pad_token_id = 0;  // used only to fill padded positions of a batch
  bool tie_word_embeddings = false;
};

struct LlavaNextConfig {
  VisionConfig vision;
  TextConfig text;
  std::int64_t image_token_id = 32000;
  std::int64_t vision_feature_layer = -2;  // hidden_states index: -2 = output of layer L-2
  std::string vision_feature_select_strategy = "default";  // "default" drops CLS, "full" keeps it
  std::string projector_hidden_act = "gelu";
  bool multimodal_projector_bias = true;
  std::vector<Size2> image_grid_pinpoints{llava_v16_grid_pinpoints.begin(),
                                          llava_v16_grid_pinpoints.end()};

  /// 0-based index of the encoder layer whose output feeds the projector (22 for CLIP-L).
  std::int64_t feature_layer_index() const {
    return vision_feature_layer < 0 ? vision.num_hidden_layers + vision_feature_layer
                                    : vision_feature_layer - 1;
  }
  /// Encoder layers that must run: 0..feature_layer_index().
  std::int64_t vision_layers_run() const { return feature_layer_index() + 1; }

  /// Throws hired::Error naming the field for anything the runtime cannot run.
  void validate() const;

  static LlavaNextConfig from_json(const nlohmann::json& j, std::string_view origin = "config.json");
  static LlavaNextConfig load(const std::filesystem::path& config_json);
  /// "mini" (CPU-sized, real token geometry and Vicuna ids) or "llava-next-7b".
  static LlavaNextConfig preset(std::string_view name);
  nlohmann::json to_json() const;
};

// ---------------------------------------------------------------------------------------------

namespace config_detail {

template <typename T>
void read(const nlohmann::json& j, const char* key, T& out, std::string_view where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field '{}' has the wrong type ({})", where, key, it->dump());
  }
}

inline void positive(std::int64_t v, const char* key, std::string_view where) {
  check(v > 0, "{}: field '{}' must be positive, got {}", where, key, v);
}

}  // namespace config_detail

inline void LlavaNextConfig::validate() const {
  using config_detail::positive;
  const auto& v = vision;
  positive(v.hidden_size, "vision_config.hidden_size", "config");
  positive(v.intermediate_size, "vision_config.intermediate_size", "config");
  positive(v.num_hidden_layers, "vision_config.num_hidden_layers", "config");
  positive(v.num_attention_heads, "vision_config.num_attention_heads", "config");
  positive(v.patch_size, "vision_config.patch_size", "config");
  check(v.num_channels == 3, "config: vision_config.num_channels must be 3, got {}", v.num_channels);
  check(v.hidden_size % v.num_attention_heads == 0,
        "config: vision_config.hidden_size {} is not a multiple of num_attention_heads {}",
        v.hidden_size, v.num_attention_heads);
  check(v.image_size > 0 && v.image_size % v.patch_size == 0,
        "config: vision_config.image_size {} is not a positive multiple of patch_size {}",
        v.image_size, v.patch_size);
  check(v.hidden_act == "quick_gelu" || v.hidden_act == "gelu",
        "config: vision_config.hidden_act '{}' is not supported (quick_gelu, gelu)", v.hidden_act);
  const auto& t = text;
  positive(t.vocab_size, "text_config.vocab_size", "config");
  positive(t.hidden_size, "text_config.hidden_size", "config");
  positive(t.intermediate_size, "text_config.intermediate_size", "config");
  positive(t.num_hidden_layers, "text_config.num_hidden_layers", "config");
  positive(t.num_attention_heads, "text_config.num_attention_heads", "config");
  positive(t.num_key_value_heads, "text_config.num_key_value_heads", "config");
  positive(t.head_dim, "text_config.head_dim", "config");
  check(t.head_dim % 2 == 0, "config: text_config.head_dim must be even for RoPE, got {}", t.head_dim);
  check(t.num_attention_heads % t.num_key_value_heads == 0,
        "config: text_config.num_attention_heads {} is not a multiple of num_key_value_heads {}",
        t.num_attention_heads, t.num_key_value_heads);
  check(t.hidden_act == "silu", "config: text_config.hidden_act '{}' is not supported (silu)",
        t.hidden_act);
  check(t.rope_theta > 0, "config: text_config rope_theta must be positive, got {}", t.rope_theta);
  check(image_token_id >= 0 && image_token_id < t.vocab_size,
        "config: image_token_index {} is outside the vocabulary [0, {})", image_token_id,
        t.vocab_size);
  check(vision_feature_layer != 0 && vision_feature_layer >= -v.num_hidden_layers &&
            vision_feature_layer <= v.num_hidden_layers,
        "config: vision_feature_layer {} is outside [-{}, {}] or 0 (the embeddings)",
        vision_feature_layer, v.num_hidden_layers, v.num_hidden_layers);
  check(vision_feature_select_strategy == "default" || vision_feature_select_strategy == "full",
        "config: vision_feature_select_strategy '{}' is not 'default' or 'full'",
        vision_feature_select_strategy);
  check(projector_hidden_act == "gelu",
        "config: projector_hidden_act '{}' is not supported (gelu)", projector_hidden_act);
  check(!image_grid_pinpoints.empty(), "config: image_grid_pinpoints is empty");
  for (const auto& p : image_grid_pinpoints)
    check(p.height > 0 && p.width > 0 && p.height % v.image_size == 0 && p.width % v.image_size == 0,
          "config: image_grid_pinpoints entry [{}, {}] is not a positive multiple of {}", p.height,
          p.width, v.image_size);
}

inline LlavaNextConfig LlavaNextConfig::from_json(const nlohmann::json& j, std::string_view origin) {
  using config_detail::read;
  check(j.is_object(), "{}: not a JSON object", origin);
  LlavaNextConfig c;
  read(j, "image_token_index", c.image_token_id, origin);
  read(j, "image_token_id", c.image_token_id, origin);
  if (auto it = j.find("vision_feature_layer"); it != j.end() && it->is_array())
    fail("{}: vision_feature_layer as a list of layers is not supported", origin);
  read(j, "vision_feature_layer", c.vision_feature_layer, origin);
  read(j, "vision_feature_select_strategy", c.vision_feature_select_strategy, origin);
  read(j, "projector_hidden_act", c.projector_hidden_act, origin);
  read(j, "multimodal_projector_bias", c.multimodal_projector_bias, origin);
  if (auto it = j.find("image_grid_pinpoints"); it != j.end() && !it->is_null()) {
    check(it->is_array(), "{}: image_grid_pinpoints is not a list", origin);
    c.image_grid_pinpoints.clear();
    for (const auto& p : *it) {
      check(p.is_array() && p.size() == 2 && p[0].is_number_integer() && p[1].is_number_integer(),
            "{}: image_grid_pinpoints entry {} is not [height, width]", origin, p.dump());
      c.image_grid_pinpoints.push_back({p[0].get<std::int64_t>(), p[1].get<std::int64_t>()});
    }
  }

  if (auto it = j.find("vision_config"); it != j.end() && !it->is_null()) {
    const std::string where = fmt::format("{}: vision_config", origin);
    check(it->is_object(), "{} is not an object", where);
    auto& v = c.vision;
    read(*it, "hidden_size", v.hidden_size, where);
    read(*it, "intermediate_size", v.intermediate_size, where);
    read(*it, "num_hidden_layers", v.num_hidden_layers, where);
    read(*it, "num_attention_heads", v.num_attention_heads, where);
    read(*it, "image_size", v.image_size, where);
    read(*it, "patch_size", v.patch_size, where);
    read(*it, "num_channels", v.num_channels, where);
    read(*it, "layer_norm_eps", v.layer_norm_eps, where);
    read(*it, "hidden_act", v.hidden_act, where);
  }

  auto& t = c.text;
  const nlohmann::json empty = nlohmann::json::object();
  const auto it = j.find("text_config");
  const nlohmann::json& tj = it != j.end() && !it->is_null() ? *it : empty;
  const std::string where = fmt::format("{}: text_config", origin);
  check(tj.is_object(), "{} is not an object", where);
  read(tj, "model_type", t.model_type, where);
  check(t.model_type == "llama" || t.model_type == "mistral",
        "{}: model_type '{}' is not supported (llama, mistral)", where, t.model_type);
  if (t.model_type == "mistral") {  // MistralConfig's defaults
    t.intermediate_size = 14336;
    t.num_key_value_heads = 8;
    t.max_position_embeddings = 4096 * 32;
  }
  read(tj, "vocab_size", t.vocab_size, where);
  read(tj, "hidden_size", t.hidden_size, where);
  read(tj, "intermediate_size", t.intermediate_size, where);
  read(tj, "num_hidden_layers", t.num_hidden_layers, where);
  read(tj, "num_attention_heads", t.num_attention_heads, where);
  if (t.model_type == "llama") t.num_key_value_heads = t.num_attention_heads;
  read(tj, "num_key_value_heads", t.num_key_value_heads, where);
  t.head_dim = t.num_attention_heads > 0 ? t.hidden_size / t.num_attention_heads : 0;
  read(tj, "head_dim", t.head_dim, where);
  read(tj, "max_position_embeddings", t.max_position_embeddings, where);
  read(tj, "rms_norm_eps", t.rms_norm_eps, where);
  read(tj, "rope_theta", t.rope_theta, where);
  if (auto rp = tj.find("rope_parameters"); rp == tj.end() || rp->is_null()) {
    if (auto rs = tj.find("rope_scaling"); rs != tj.end() && !rs->is_null())
      fail("{}: rope_scaling {} is not supported (plain RoPE only)", where, rs->dump());
  } else {
    check(rp->is_object(), "{}: rope_parameters is not an object", where);
    std::string type = "default";
    read(*rp, "rope_type", type, where);
    check(type == "default", "{}: rope_type '{}' is not supported (default only)", where, type);
    read(*rp, "rope_theta", t.rope_theta, where);
  }
  read(tj, "hidden_act", t.hidden_act, where);
  read(tj, "bos_token_id", t.bos_token_id, where);
  read(tj, "eos_token_id", t.eos_token_id, where);
  read(tj, "pad_token_id", t.pad_token_id, where);
  read(j, "tie_word_embeddings", t.tie_word_embeddings, origin);
  read(tj, "tie_word_embeddings", t.tie_word_embeddings, where);
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", origin, e.what());
  }
  return c;
}

inline LlavaNextConfig LlavaNextConfig::load(const std::filesystem::path& config_json) {
  return from_json(read_json(config_json, config_json.string()), config_json.string());
}

inline LlavaNextConfig LlavaNextConfig::preset(std::string_view name) {
  LlavaNextConfig c;  // v1.6 grid pinpoints, Vicuna's image token 32000
  c.vision = {.hidden_size = 1024, .intermediate_size = 4096, .num_hidden_layers = 24,
              .num_attention_heads = 16, .image_size = 336, .patch_size = 14};
  c.text = {.vocab_size = 32064, .hidden_size = 4096, .intermediate_size = 11008,
            .num_hidden_layers = 32, .num_attention_heads = 32, .num_key_value_heads = 32,
            .head_dim = 128, .max_position_embeddings = 4096, .rms_norm_eps = 1e-5};
  if (name == "llava-next-7b") return c;  // CLIP-L/336 + Vicuna-7B (llava-v1.6-vicuna-7b-hf)
  if (name == "mini") {
    // Real token geometry (336 px, 14 px patches, 576 tokens per partition) and Vicuna's
    // ids; narrow and shallow so a 600x600 image runs end to end in seconds on a CPU.
    c.vision.hidden_size = 128;
    c.vision.intermediate_size = 512;
    c.vision.num_hidden_layers = 4;
    c.vision.num_attention_heads = 4;
    c.text.hidden_size = 256;
    c.text.intermediate_size = 688;
    c.text.num_hidden_layers = 4;
    c.text.num_attention_heads = 4;
    c.text.num_key_value_heads = 4;
    c.text.head_dim = 64;
    return c;
  }
  fail("unknown preset '{}' (mini, llava-next-7b)", name);
}

inline nlohmann::json LlavaNextConfig::to_json() const {
  nlohmann::json pins = nlohmann::json::array();
  for (const auto& p : image_grid_pinpoints) pins.push_back({p.height, p.width});
  return {
      {"model_type", "llava_next"},
      {"image_token_index", image_token_id},
      {"vision_feature_layer", vision_feature_layer},
      {"vision_feature_select_strategy", vision_feature_select_strategy},
      {"projector_hidden_act", projector_hidden_act},
      {"multimodal_projector_bias", multimodal_projector_bias},
      {"image_grid_pinpoints", pins},
      {"tie_word_embeddings", text.tie_word_embeddings},
      {"vision_config",
       {{"model_type", "clip_vision_model"}, {"hidden_size", vision.hidden_size},
        {"intermediate_size", vision.intermediate_size},
        {"num_hidden_layers", vision.num_hidden_layers},
        {"num_attention_heads", vision.num_attention_heads}, {"image_size", vision.image_size},
        {"patch_size", vision.patch_size}, {"layer_norm_eps", vision.layer_norm_eps},
        {"hidden_act", vision.hidden_act}}},
      {"text_config",
       {{"model_type", text.model_type}, {"vocab_size", text.vocab_size},
        {"hidden_size", text.hidden_size}, {"intermediate_size", text.intermediate_size},
        {"num_hidden_layers", text.num_hidden_layers},
        {"num_attention_heads", text.num_attention_heads},
        {"num_key_value_heads", text.num_key_value_heads}, {"head_dim", text.head_dim},
        {"max_position_embeddings", text.max_position_embeddings},
        {"rms_norm_eps", text.rms_norm_eps}, {"rope_theta", text.rope_theta},
        {"hidden_act", text.hidden_act}, {"bos_token_id", text.bos_token_id},
        {"eos_token_id", text.eos_token_id}, {"pad_token_id", text.pad_token_id}}},
  };
}

}  // namespace hired::io
