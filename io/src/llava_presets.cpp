// The built-in shapes (LlavaNextConfig::preset): the llava-hf checkpoints' config.json
// documents, with the fields their hub files carry (transformers 4's diff against the
// defaults), read by the same from_json as a checkpoint; and "mini", Vicuna's field set at
// CPU-friendly widths with LLaVA-NeXT's real token geometry.
#include "hired/io/llava_config.hpp"

#include "hired/error.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <utility>

namespace hired::io {
namespace {

// CLIP ViT-L/14 at 336 px, as every llava-hf checkpoint's vision_config writes it.
constexpr std::string_view kClipL = R"({
  "hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
  "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
  "patch_size": 14, "projection_dim": 768, "vocab_size": 32000})";

constexpr std::string_view kV16Pinpoints = "[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]";

// Qwen1.5-72B-Chat's text_config in llava-next-72b-hf; 110b's differs in three keys.
constexpr std::string_view kQwen72b = R"({"_name_or_path": "Qwen/Qwen1.5-72B-Chat",
    "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151645,
    "hidden_size": 8192, "intermediate_size": 24576, "max_position_embeddings": 32768,
    "max_window_layers": 70, "model_type": "qwen2", "num_attention_heads": 64,
    "num_hidden_layers": 80, "num_key_value_heads": 64, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 32768, "torch_dtype": "bfloat16",
    "use_sliding_window": false, "vocab_size": 152064})";

struct Preset {
  std::string_view name;
  std::string_view model_type;     // llava or llava_next
  std::string_view architecture;   // the transformers class
  std::string_view image_token;    // image_token_index
  std::string_view text_config;
  std::string_view vision_config;  // kClipL unless CPU-sized
  std::string_view text_patch = "{}";  // merged into text_config (JSON merge patch)
};

constexpr std::array<Preset, 8> kPresets{{
    // Real token geometry (336 px, 14 px patches, 576 tokens per partition) and Vicuna's ids;
    // narrow and shallow so a 600x600 image runs end to end in seconds on a CPU.
    {"mini", "llava_next", "LlavaNextForConditionalGeneration", "32000",
     R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 688,
         "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 4,
         "num_hidden_layers": 4, "num_key_value_heads": 4, "pad_token_id": 0,
         "rms_norm_eps": 1e-05, "vocab_size": 32064})",
     R"({"hidden_size": 128, "image_size": 336, "intermediate_size": 512,
         "model_type": "clip_vision_model", "num_attention_heads": 4, "num_hidden_layers": 4,
         "patch_size": 14})"},
    {"llava-1.5-7b", "llava", "LlavaForConditionalGeneration", "32000",
     R"({"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
         "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
         "torch_dtype": "float16", "vocab_size": 32064})",
     kClipL},
    {"llava-next-7b", "llava_next", "LlavaNextForConditionalGeneration", "32000",
     R"({"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
         "max_position_embeddings": 4096, "model_type": "llama", "pad_token_id": 0,
         "rms_norm_eps": 1e-05, "torch_dtype": "float16", "vocab_size": 32064})",
     kClipL},
    {"llava-next-vicuna-13b", "llava_next", "LlavaNextForConditionalGeneration", "32000",
     R"({"_name_or_path": "lmsys/vicuna-13b-v1.5", "architectures": ["LlamaForCausalLM"],
         "hidden_size": 5120, "intermediate_size": 13824, "max_position_embeddings": 4096,
         "model_type": "llama", "num_attention_heads": 40, "num_hidden_layers": 40,
         "num_key_value_heads": 40, "pad_token_id": 0, "rms_norm_eps": 1e-05,
         "torch_dtype": "float16", "vocab_size": 32064})",
     kClipL},
    {"llava-next-mistral-7b", "llava_next", "LlavaNextForConditionalGeneration", "32000",
     R"({"_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",
         "architectures": ["MistralForCausalLM"], "intermediate_size": 14336,
         "max_position_embeddings": 32768, "model_type": "mistral", "num_key_value_heads": 8,
         "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": null,
         "torch_dtype": "bfloat16", "vocab_size": 32064})",
     kClipL},
    {"llava-next-34b", "llava_next", "LlavaNextForConditionalGeneration", "64000",
     R"({"_name_or_path": "NousResearch/Nous-Hermes-2-Yi-34B",
         "architectures": ["LlamaForCausalLM"], "eos_token_id": 7, "hidden_size": 7168,
         "intermediate_size": 20480, "max_position_embeddings": 4096, "model_type": "llama",
         "num_attention_heads": 56, "num_hidden_layers": 60, "num_key_value_heads": 8,
         "pad_token_id": 0, "rms_norm_eps": 1e-05, "rope_theta": 5000000.0,
         "torch_dtype": "bfloat16", "use_cache": false, "vocab_size": 64064})",
     kClipL},
    {"llava-next-72b", "llava_next", "LlavaNextForConditionalGeneration", "151646", kQwen72b, kClipL},
    {"llava-next-110b", "llava_next", "LlavaNextForConditionalGeneration", "151646", kQwen72b, kClipL,
     R"({"_name_or_path": "Qwen/Qwen1.5-110B-Chat", "intermediate_size": 49152,
         "num_key_value_heads": 8})"},
}};

/// The preset's config.json: the top level every llava-hf checkpoint of its architecture has.
nlohmann::json document(const Preset& p) {
  nlohmann::json text = nlohmann::json::parse(p.text_config);
  text.merge_patch(nlohmann::json::parse(p.text_patch));
  nlohmann::json j = {
      {"architectures", {p.architecture}},
      {"image_token_index", nlohmann::json::parse(p.image_token)},
      {"model_type", p.model_type},
      {"projector_hidden_act", "gelu"},
      {"text_config", text},
      {"torch_dtype", "float16"},
      {"vision_config", nlohmann::json::parse(p.vision_config)},
      {"vision_feature_layer", -2},
      {"vision_feature_select_strategy", "default"},
      {"ignore_index", -100},
      {"image_seq_length", 576},
  };
  if (p.model_type == "llava_next") {
    j["image_grid_pinpoints"] = nlohmann::json::parse(kV16Pinpoints);
    j["use_image_newline_parameter"] = true;
  }
  return j;
}

}  // namespace

LlavaNextConfig LlavaNextConfig::preset(std::string_view name) {
  for (const Preset& p : kPresets)
    if (p.name == name) return from_json(document(p), fmt::format("preset '{}'", name));
  fail("unknown preset '{}' ({})", name, fmt::join(preset_names(), ", "));
}

std::vector<std::string_view> LlavaNextConfig::preset_names() {
  std::vector<std::string_view> names;
  for (const Preset& p : kPresets) names.push_back(p.name);
  return names;
}

}  // namespace hired::io
