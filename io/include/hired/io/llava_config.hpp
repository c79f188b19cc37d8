// LLaVA model configuration: a Hugging Face llava-hf `config.json` read field by field the way
// transformers 5 reads it, with its defaults for what a checkpoint leaves out, and the built-in
// presets. Every key is either implemented, known to be harmless (nothing in transformers'
// forward pass reads it) or refused by name, so no checkpoint runs with a field hired would
// silently ignore; docs/CONFIG.md lists them all. Torch-free.
#pragma once

#include "hired/geometry.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hired::io {

/// The transformers class of a checkpoint: `model_type` "llava_next"
/// (LlavaNextForConditionalGeneration: anyres partitions, image_newline rows) or "llava"
/// (LlavaForConditionalGeneration, LLaVA-1.5: one partition per image, no image_newline).
enum class Architecture { llava_next, llava };

std::string_view to_string(Architecture architecture);

/// The sizes a transformer stack, the vision tower's or the decoder's, is built from.
struct StackShape {
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;  // the MLP's inner width
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
};

/// CLIP vision tower (CLIPVisionConfig; defaults are transformers').
struct VisionConfig : StackShape {
  VisionConfig() : StackShape{768, 3072, 12, 12} {}

  std::int64_t image_size = 224;
  std::int64_t patch_size = 32;
  std::int64_t num_channels = 3;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // quick_gelu or gelu

  std::int64_t head_dim() const { return hidden_size / num_attention_heads; }
  std::int64_t grid_side() const { return image_size / patch_size; }
  std::int64_t num_patches() const { return grid_side() * grid_side(); }
};

/// The decoder: Llama (Vicuna, Yi), Mistral or Qwen2, as their transformers configs define them
/// (LlamaConfig's defaults).
struct TextConfig : StackShape {
  TextConfig() : StackShape{4096, 11008, 32, 32} {}

  std::string model_type = "llama";  // llama, mistral or qwen2
  std::int64_t vocab_size = 32000;
  std::int64_t num_key_value_heads = 32;
  std::int64_t head_dim = 128;
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;  // plain RoPE ("default"); other rope types are refused
  std::string hidden_act = "silu";
  bool qkv_bias = false;  // biases on q/k/v_proj: llama's attention_bias; always for qwen2
  bool o_bias = false;    // bias on o_proj: llama's attention_bias
  bool mlp_bias = false;  // biases on gate/up/down_proj: llama's mlp_bias
  /// Layers whose queries see only the last `sliding_window` positions (themselves included),
  /// one flag per layer; empty when every layer attends to the whole sequence.
  std::vector<bool> sliding_layers;
  std::int64_t sliding_window = 0;
  std::optional<std::int64_t> bos_token_id = 1;  // the stand-in prompt's first id
  std::vector<std::int64_t> eos_token_ids{2};     // generation stops after any of them
  /// lm_head is the input embedding matrix: the model's tie_word_embeddings as transformers
  /// resolves it for the architecture (see LlavaNextConfig::from_json).
  bool tie_word_embeddings = false;

  /// The window of `layer`'s attention in positions, or 0 for the whole sequence.
  std::int64_t attention_window(std::int64_t layer) const;
};

/// A LLaVA-NeXT or LLaVA-1.5 checkpoint's configuration.
struct LlavaNextConfig {
  Architecture architecture = Architecture::llava_next;
  VisionConfig vision;
  TextConfig text;
  std::int64_t image_token_id = 32000;
  /// The vision tower's hidden_states that feed the projector, concatenated along the width
  /// (transformers' vision_feature_layer, an int or a list): -2 is the output of layer L - 2,
  /// 0 the embeddings, k > 0 the output of layer k - 1.
  std::vector<std::int64_t> vision_feature_layers{-2};
  std::string vision_feature_select_strategy = "default";  // "default" drops CLS, "full" keeps it
  std::string projector_hidden_act = "gelu";
  bool multimodal_projector_bias = true;
  std::vector<Size2> image_grid_pinpoints{llava_v16_grid_pinpoints.begin(),
                                          llava_v16_grid_pinpoints.end()};  // llava_next only

  bool has_image_newline() const { return architecture == Architecture::llava_next; }
  bool keeps_cls() const { return vision_feature_select_strategy == "full"; }
  /// vision_feature_layers as hidden_states indices in [0, L], in config order.
  std::vector<std::int64_t> feature_hidden_states() const;
  /// Encoder layers that must run: 0 .. the deepest feature layer.
  std::int64_t vision_layers_run() const;
  /// HiRED's l_final: the 0-based encoder layer whose output is the deepest feature hidden
  /// state (22 for CLIP-L with -2); -1 when the features are the embeddings alone.
  std::int64_t feature_layer_index() const;
  /// Width of the projector's input: the vision width once per feature layer.
  std::int64_t projector_input_size() const;

  /// Throws hired::Error naming the field for anything the runtime cannot run.
  void validate() const;

  /// Throws hired::Error naming `origin` and the field for a value or key hired does not
  /// implement (docs/CONFIG.md).
  static LlavaNextConfig from_json(const nlohmann::json& j, std::string_view origin = "config.json");
  static LlavaNextConfig load(const std::filesystem::path& config_json);
  /// A built-in shape (preset_names()): the real checkpoints' configurations and the CPU-sized
  /// "mini"; they are config.json documents read by from_json.
  static LlavaNextConfig preset(std::string_view name);
  static std::vector<std::string_view> preset_names();
};

}  // namespace hired::io
