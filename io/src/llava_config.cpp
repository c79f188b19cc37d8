// config.json as transformers 5 reads it (hired/io/llava_config.hpp). One reader per JSON
// object (the model, text_config, vision_config) consumes the keys it implements or knows to be
// harmless and refuses whatever is left by name. docs/CONFIG.md is the table of every key:
// where transformers reads it, and what hired does with it.
#include "hired/io/llava_config.hpp"

#include "hired/error.hpp"
#include "hired/io/file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <set>
#include <span>

namespace hired::io {
namespace {

using json = nlohmann::json;
using Keys = std::span<const std::string_view>;

// Keys accepted with any value at every level: nothing in transformers' forward pass of these
// models reads them (docs/CONFIG.md, "Harmless keys").
// Names, versions, the dtype to load in (hired computes in --dtype), output switches, the
// attention backend (each computes the same attention), initialisation and dropout (inactive
// at inference), classification labels.
constexpr std::array<std::string_view, 21> kBookkeeping{
    "_name_or_path", "name_or_path", "transformers_version", "_commit_hash", "torch_dtype",
    "dtype", "output_hidden_states", "output_attentions", "return_dict", "use_cache",
    "attn_implementation", "_attn_implementation", "_attn_implementation_internal",
    "initializer_range", "initializer_factor", "attention_dropout", "dropout", "id2label",
    "label2id", "num_labels", "problem_type"};
// Generation settings: transformers drops them from the model config when it reads one
// (GenerationConfig._get_default_generation_params); hired decodes greedily.
constexpr std::array<std::string_view, 33> kGeneration{
    "assistant_confidence_threshold", "assistant_lookbehind", "bad_words_ids",
    "begin_suppress_tokens", "diversity_penalty", "do_sample", "early_stopping",
    "encoder_no_repeat_ngram_size", "encoder_repetition_penalty", "epsilon_cutoff", "eta_cutoff",
    "exponential_decay_length_penalty", "forced_bos_token_id", "forced_eos_token_id",
    "length_penalty", "max_length", "min_length", "no_repeat_ngram_size", "num_assistant_tokens",
    "num_assistant_tokens_schedule", "num_beam_groups", "num_beams", "num_return_sequences",
    "output_scores", "remove_invalid_values", "repetition_penalty", "return_dict_in_generate",
    "suppress_tokens", "target_lookbehind", "temperature", "top_k", "top_p", "typical_p"};
// Fields transformers 4 wrote into every config; no transformers-5 code of these models reads
// them.
constexpr std::array<std::string_view, 16> kLegacy{
    "add_cross_attention", "chunk_size_feed_forward", "cross_attention_hidden_size",
    "decoder_start_token_id", "finetuning_task", "is_decoder", "is_encoder_decoder", "prefix",
    "pruned_heads", "sep_token_id", "task_specific_params", "tf_legacy_loss",
    "tie_encoder_decoder", "tokenizer_class", "torchscript", "use_bfloat16"};

// Per level: the model's top level keeps the processor's bookkeeping (image_seq_length,
// ignore_index, the legacy top-level vocab_size and pad_token_id, use_image_newline_parameter);
// sub-configs keep their model's architectures list and token ids nothing computes with.
constexpr std::array<std::string_view, 5> kTopLevel{
    "ignore_index", "image_seq_length", "use_image_newline_parameter", "vocab_size", "pad_token_id"};
constexpr std::array<std::string_view, 2> kText{"architectures", "pad_token_id"};
constexpr std::array<std::string_view, 6> kVision{
    "architectures", "projection_dim", "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id"};

/// One JSON object of a config, read key by key. Every key must be consumed: read by one of
/// the typed readers (implemented) or declared harmless; finish() refuses the rest by name.
class Fields {
 public:
  /// `origin` names the file, `prefix` the object ("", "text_config.", "vision_config.").
  Fields(const json& object, std::string_view origin, std::string prefix)
      : object_(object), origin_(origin), prefix_(std::move(prefix)) {
    check(object.is_object(), "{}: {} is not a JSON object", origin_, where());
  }

  /// The key's value, consumed; nullptr when it is absent or null.
  const json* take(std::string_view key) {
    consumed_.emplace(key);
    const auto it = object_.find(std::string(key));
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  bool contains(std::string_view key) const { return object_.contains(std::string(key)); }

  void integer(std::string_view key, std::int64_t& out) {
    if (const json* v = take(key)) out = as_integer(*v, key);
  }
  /// transformers' `int | None` fields: absent keeps `out` (the class default), null is None.
  void nullable_integer(std::string_view key, std::optional<std::int64_t>& out) {
    consumed_.emplace(key);
    const auto it = object_.find(std::string(key));
    if (it != object_.end()) out = it->is_null() ? std::nullopt : std::optional(as_integer(*it, key));
  }
  void number(std::string_view key, double& out) {
    if (const json* v = take(key)) {
      check(v->is_number(), "{}: {} must be a number, got {}", origin_, name(key), v->dump());
      out = v->get<double>();
    }
  }
  void boolean(std::string_view key, bool& out) {
    if (const json* v = take(key)) {
      check(v->is_boolean(), "{}: {} must be true or false, got {}", origin_, name(key), v->dump());
      out = v->get<bool>();
    }
  }
  void text(std::string_view key, std::string& out) {
    if (const json* v = take(key)) {
      check(v->is_string(), "{}: {} must be a string, got {}", origin_, name(key), v->dump());
      out = v->get<std::string>();
    }
  }
  std::int64_t as_integer(const json& v, std::string_view key) const {
    // An unsigned beyond int64 would wrap to a negative number.
    check(v.is_number_integer() &&
              (!v.is_number_unsigned() ||
               v.get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<std::int64_t>::max())),
          "{}: {} must be an integer within int64, got {}", origin_, name(key), v.dump());
    return v.get<std::int64_t>();
  }

  void harmless(Keys keys) {
    for (const std::string_view key : keys) consumed_.emplace(key);
  }

  /// Refuses every key no reader consumed.
  void finish() const {
    std::vector<std::string> unknown;
    for (const auto& [key, value] : object_.items())
      if (!consumed_.contains(key)) unknown.push_back(name(key));
    check(unknown.empty(),
          "{}: {}: {} hired does not know; transformers may compute with {}, so hired refuses "
          "the checkpoint rather than ignore {} (docs/CONFIG.md lists the keys hired reads)",
          origin_, fmt::join(unknown, ", "), unknown.size() == 1 ? "a key" : "keys",
          unknown.size() == 1 ? "it" : "them", unknown.size() == 1 ? "it" : "them");
  }

  /// "text_config.hidden_size" for messages.
  std::string name(std::string_view key) const { return prefix_ + std::string(key); }
  std::string where() const {
    return prefix_.empty() ? std::string("the config") : prefix_.substr(0, prefix_.size() - 1);
  }
  const std::string& origin() const { return origin_; }

 private:
  const json& object_;
  std::string origin_;
  std::string prefix_;
  std::set<std::string, std::less<>> consumed_;
};

/// Every object's harmless keys plus `extra`.
void common_harmless(Fields& f, Keys extra) {
  f.harmless(kBookkeeping);
  f.harmless(kGeneration);
  f.harmless(kLegacy);
  f.harmless(extra);
}

// --- RoPE ------------------------------------------------------------------------------------

/// transformers' convert_rope_params_to_dict + standardize_rope_params: a truthy rope_scaling
/// replaces rope_parameters; rope_theta comes from that dict, else the object's rope_theta, else
/// 10000; the type is "rope_type" (or the older "type"), "default" when missing. Only plain RoPE
/// is implemented; every other type, and any other key of the dict, is refused by name.
void read_rope(Fields& f, TextConfig& t) {
  double theta = 10000.0;
  f.number("rope_theta", theta);
  const json* scaling = f.take("rope_scaling");
  const json* parameters = f.take("rope_parameters");
  const bool scaling_used = scaling != nullptr && !(scaling->is_object() && scaling->empty());
  const json* rope = scaling_used ? scaling : parameters;
  const std::string field = f.name(scaling_used ? "rope_scaling" : "rope_parameters");
  t.rope_theta = theta;
  if (rope == nullptr) return;
  check(rope->is_object(), "{}: {} must be an object, got {}", f.origin(), field, rope->dump());
  std::string type = "default";
  for (const char* key : {"type", "rope_type"}) {
    if (const auto it = rope->find(key); it != rope->end() && !it->is_null()) {
      check(it->is_string(), "{}: {}.{} must be a string, got {}", f.origin(), field, key, it->dump());
      type = it->get<std::string>();
    }
  }
  check(type == "default",
        "{}: {}: rope_type '{}' is not implemented (hired implements plain RoPE, 'default', which "
        "every llava-hf checkpoint uses)",
        f.origin(), field, type);
  for (const auto& [key, value] : rope->items()) {
    if (key == "type" || key == "rope_type") continue;
    if (key == "rope_theta") {
      check(value.is_number(), "{}: {}.rope_theta must be a number, got {}", f.origin(), field,
            value.dump());
      t.rope_theta = value.get<double>();
    } else if (key == "partial_rotary_factor") {
      check(value.is_number() && value.get<double>() == 1.0,
            "{}: {}.partial_rotary_factor {} is not implemented (1.0 only)", f.origin(), field,
            value.dump());
    } else {
      fail("{}: {}.{}: a key hired does not know for rope_type 'default'; refused rather than "
           "ignored",
           f.origin(), field, key);
    }
  }
}

// --- text_config -----------------------------------------------------------------------------

/// Far more decoder layers than any model has (the largest have about 130).
constexpr std::int64_t kMaxTextLayers = 4096;

/// Qwen2Config: the window applies when use_sliding_window is true, to the layers layer_types
/// names "sliding_attention" (by default the layers from max_window_layers on).
void read_qwen2_window(Fields& f, TextConfig& t) {
  bool use_window = false;
  std::optional<std::int64_t> window = 4096;
  std::int64_t max_window_layers = 28;
  f.boolean("use_sliding_window", use_window);
  f.nullable_integer("sliding_window", window);
  f.integer("max_window_layers", max_window_layers);
  if (!use_window) window.reset();
  std::vector<std::string> types;
  if (const json* list = f.take("layer_types")) {
    check(list->is_array() && std::ssize(*list) == t.num_hidden_layers,
          "{}: {} must be a list of {} layer types (num_hidden_layers), got {}", f.origin(),
          f.name("layer_types"), t.num_hidden_layers, list->dump());
    for (const json& type : *list) {
      check(type.is_string() && (type == "full_attention" || type == "sliding_attention"),
            "{}: {}: layer type {} is not implemented (full_attention, sliding_attention)",
            f.origin(), f.name("layer_types"), type.dump());
      types.push_back(type.get<std::string>());
    }
  } else {
    for (std::int64_t i = 0; i < t.num_hidden_layers; ++i)
      types.push_back(window && i >= max_window_layers ? "sliding_attention" : "full_attention");
  }
  const bool any_sliding = std::ranges::count(types, std::string("sliding_attention")) > 0;
  check(!any_sliding || window.has_value(),
        "{}: {} names sliding_attention layers but there is no window (use_sliding_window is "
        "false or sliding_window null); refused rather than guessed",
        f.origin(), f.name("layer_types"));
  if (!any_sliding) return;
  t.sliding_window = *window;
  for (const std::string& type : types) t.sliding_layers.push_back(type == "sliding_attention");
}

/// text_config (an object, or the defaults when absent). `tie` receives the object's own
/// tie_word_embeddings, which only LLaVA-1.5 looks at.
TextConfig read_text(const json* object, std::string_view origin, bool& tie) {
  static const json empty = json::object();
  Fields f(object ? *object : empty, origin, "text_config.");
  TextConfig t;
  f.text("model_type", t.model_type);
  check(t.model_type == "llama" || t.model_type == "mistral" || t.model_type == "qwen2",
        "{}: text_config.model_type '{}' is not implemented (llama, mistral, qwen2)", origin,
        t.model_type);
  // Each class's defaults for what the object leaves out.
  std::optional<std::int64_t> kv_heads, head_dim, bos = 1, eos = 2;
  if (t.model_type == "mistral") {
    t.intermediate_size = 14336;
    kv_heads = 8;
    t.max_position_embeddings = 4096 * 32;
  } else if (t.model_type == "qwen2") {
    t.vocab_size = 151936;
    t.intermediate_size = 22016;
    kv_heads = 32;
    t.max_position_embeddings = 32768;
    bos.reset();
    eos.reset();
  }
  f.integer("vocab_size", t.vocab_size);
  f.integer("hidden_size", t.hidden_size);
  f.integer("intermediate_size", t.intermediate_size);
  f.integer("num_hidden_layers", t.num_hidden_layers);
  // The per-layer settings below are sized by it before validate() runs: a few bytes of config
  // must not ask for terabytes (found by fuzzing).
  check(t.num_hidden_layers <= kMaxTextLayers,
        "{}: text_config.num_hidden_layers {} is more than {} (no model has that many layers)",
        origin, t.num_hidden_layers, kMaxTextLayers);
  f.integer("num_attention_heads", t.num_attention_heads);
  f.nullable_integer("num_key_value_heads", kv_heads);
  t.num_key_value_heads = kv_heads.value_or(t.num_attention_heads);  // None: one per query head
  f.nullable_integer("head_dim", head_dim);
  t.head_dim = head_dim.value_or(t.num_attention_heads > 0 ? t.hidden_size / t.num_attention_heads : 0);
  f.integer("max_position_embeddings", t.max_position_embeddings);
  f.number("rms_norm_eps", t.rms_norm_eps);
  f.text("hidden_act", t.hidden_act);
  read_rope(f, t);
  f.nullable_integer("bos_token_id", bos);
  t.bos_token_id = bos;
  t.eos_token_ids.clear();
  if (const json* v = f.contains("eos_token_id") ? f.take("eos_token_id") : nullptr) {
    // An id or a list of ids.
    for (const json& id : v->is_array() ? *v : json::array({*v}))
      t.eos_token_ids.push_back(f.as_integer(id, "eos_token_id"));
  } else if (!f.contains("eos_token_id") && eos) {
    t.eos_token_ids.push_back(*eos);
  }
  tie = false;
  f.boolean("tie_word_embeddings", tie);

  if (t.model_type == "llama") {
    bool attention_bias = false;
    f.boolean("attention_bias", attention_bias);
    f.boolean("mlp_bias", t.mlp_bias);
    t.qkv_bias = t.o_bias = attention_bias;
    const std::array<std::string_view, 1> unused{"pretraining_tp"};  // transformers 5 ignores it
    f.harmless(unused);
  } else if (t.model_type == "mistral") {
    std::optional<std::int64_t> window = 4096;  // MistralConfig's default
    f.nullable_integer("sliding_window", window);
    if (window) {  // MistralModel masks every layer with the window
      t.sliding_window = *window;
      t.sliding_layers.assign(static_cast<std::size_t>(std::max<std::int64_t>(t.num_hidden_layers, 0)), true);
    }
  } else {
    t.qkv_bias = true;  // Qwen2Attention: q/k/v_proj with bias, o_proj without
    read_qwen2_window(f, t);
  }
  common_harmless(f, kText);
  f.finish();
  return t;
}

// --- vision_config ---------------------------------------------------------------------------

/// vision_config: a CLIPVisionConfig object, or, when absent, the CLIP-L/336 shape that
/// LlavaConfig and LlavaNextConfig give it.
VisionConfig read_vision(const json* object, std::string_view origin) {
  VisionConfig v;
  if (object == nullptr) {
    v.hidden_size = 1024;
    v.intermediate_size = 4096;
    v.num_hidden_layers = 24;
    v.num_attention_heads = 16;
    v.image_size = 336;
    v.patch_size = 14;
    return v;
  }
  Fields f(*object, origin, "vision_config.");
  std::string model_type = "clip_vision_model";
  f.text("model_type", model_type);
  check(model_type == "clip_vision_model",
        "{}: vision_config.model_type '{}' is not implemented (clip_vision_model)", origin,
        model_type);
  f.integer("hidden_size", v.hidden_size);
  f.integer("intermediate_size", v.intermediate_size);
  f.integer("num_hidden_layers", v.num_hidden_layers);
  f.integer("num_attention_heads", v.num_attention_heads);
  f.integer("image_size", v.image_size);
  f.integer("patch_size", v.patch_size);
  f.integer("num_channels", v.num_channels);
  f.number("layer_norm_eps", v.layer_norm_eps);
  f.text("hidden_act", v.hidden_act);
  common_harmless(f, kVision);
  f.finish();
  return v;
}

// --- the model -------------------------------------------------------------------------------

std::string_view class_name(Architecture a) {
  return a == Architecture::llava_next ? "LlavaNextForConditionalGeneration"
                                       : "LlavaForConditionalGeneration";
}

void read_feature_layers(Fields& f, LlavaNextConfig& c) {
  const json* v = f.take("vision_feature_layer");
  if (v == nullptr) return;
  c.vision_feature_layers.clear();
  if (v->is_array()) {
    check(!v->empty(), "{}: vision_feature_layer is an empty list", f.origin());
    for (const json& layer : *v) c.vision_feature_layers.push_back(f.as_integer(layer, "vision_feature_layer"));
  } else {
    c.vision_feature_layers.push_back(f.as_integer(*v, "vision_feature_layer"));
  }
}

void read_pinpoints(Fields& f, LlavaNextConfig& c) {
  const json* v = f.take("image_grid_pinpoints");
  if (v == nullptr) return;
  check(v->is_array(), "{}: image_grid_pinpoints is not a list", f.origin());
  c.image_grid_pinpoints.clear();
  for (const json& p : *v) {
    check(p.is_array() && p.size() == 2 && p[0].is_number_integer() && p[1].is_number_integer(),
          "{}: image_grid_pinpoints entry {} is not [height, width]", f.origin(), p.dump());
    c.image_grid_pinpoints.push_back({p[0].get<std::int64_t>(), p[1].get<std::int64_t>()});
  }
}

LlavaNextConfig read_model(const json& j, std::string_view origin) {
  Fields f(j, origin, "");
  LlavaNextConfig c;
  std::string model_type;
  f.text("model_type", model_type);
  check(model_type == "llava_next" || model_type == "llava",
        "{}: model_type '{}' is not implemented (llava_next: LLaVA-NeXT, llava: LLaVA-1.5)",
        origin, model_type);
  c.architecture = model_type == "llava" ? Architecture::llava : Architecture::llava_next;
  if (const json* list = f.take("architectures")) {
    check(list->is_array(), "{}: architectures must be a list, got {}", origin, list->dump());
    for (const json& name : *list)
      check(name.is_string() && name.get<std::string>() == class_name(c.architecture),
            "{}: architectures entry {} is not {}, the class of model_type '{}'", origin,
            name.dump(), class_name(c.architecture), model_type);
  }
  // attribute_map: image_token_id is another name of image_token_index.
  std::optional<std::int64_t> index, id;
  f.nullable_integer("image_token_index", index);
  f.nullable_integer("image_token_id", id);
  check(!index || !id || *index == *id,
        "{}: image_token_index {} and image_token_id {} disagree (they name one field)", origin,
        index.value_or(0), id.value_or(0));
  c.image_token_id = index.value_or(id.value_or(c.image_token_id));
  read_feature_layers(f, c);
  f.text("vision_feature_select_strategy", c.vision_feature_select_strategy);
  f.text("projector_hidden_act", c.projector_hidden_act);
  f.boolean("multimodal_projector_bias", c.multimodal_projector_bias);
  bool tie = false;
  f.boolean("tie_word_embeddings", tie);
  if (c.architecture == Architecture::llava_next) read_pinpoints(f, c);

  const json* vision = f.take("vision_config");
  const json* text = f.take("text_config");
  common_harmless(f, kTopLevel);
  f.finish();
  c.vision = read_vision(vision, origin);
  bool text_tie = false;
  c.text = read_text(text, origin, text_tie);
  // transformers ties lm_head by the model's own tie_word_embeddings; LlavaConfig (not
  // LlavaNextConfig) also takes the text config's true when the top level is false.
  c.text.tie_word_embeddings = tie || (c.architecture == Architecture::llava && text_tie);
  return c;
}

}  // namespace

std::string_view to_string(Architecture architecture) {
  return architecture == Architecture::llava_next ? "llava_next" : "llava";
}

std::int64_t TextConfig::attention_window(std::int64_t layer) const {
  return layer >= 0 && layer < std::ssize(sliding_layers) && sliding_layers[static_cast<std::size_t>(layer)]
             ? sliding_window
             : 0;
}

std::vector<std::int64_t> LlavaNextConfig::feature_hidden_states() const {
  const std::int64_t states = vision.num_hidden_layers + 1;  // the embeddings, then each layer
  std::vector<std::int64_t> out;
  for (const std::int64_t layer : vision_feature_layers) out.push_back(layer < 0 ? layer + states : layer);
  return out;
}

std::int64_t LlavaNextConfig::vision_layers_run() const {
  const std::vector<std::int64_t> states = feature_hidden_states();
  return states.empty() ? 0 : *std::ranges::max_element(states);
}

std::int64_t LlavaNextConfig::feature_layer_index() const { return vision_layers_run() - 1; }

std::int64_t LlavaNextConfig::projector_input_size() const {
  return vision.hidden_size * std::ssize(vision_feature_layers);
}

void LlavaNextConfig::validate() const {
  const auto positive = [](std::int64_t value, std::string_view field) {
    check(value > 0, "config: {} must be positive, got {}", field, value);
  };
  const VisionConfig& v = vision;
  positive(v.hidden_size, "vision_config.hidden_size");
  positive(v.intermediate_size, "vision_config.intermediate_size");
  positive(v.num_hidden_layers, "vision_config.num_hidden_layers");
  positive(v.num_attention_heads, "vision_config.num_attention_heads");
  positive(v.patch_size, "vision_config.patch_size");
  check(v.num_channels == 3, "config: vision_config.num_channels must be 3, got {}", v.num_channels);
  check(v.hidden_size % v.num_attention_heads == 0,
        "config: vision_config.hidden_size {} is not a multiple of num_attention_heads {}",
        v.hidden_size, v.num_attention_heads);
  // Pixel sides up to 2^24, as for images (hired/geometry.hpp): the patch grid and the anyres
  // geometry stay within int64.
  constexpr std::int64_t max_side = std::int64_t{1} << 24;
  check(v.image_size > 0 && v.image_size <= max_side && v.image_size % v.patch_size == 0,
        "config: vision_config.image_size {} is not a positive multiple of patch_size {} up to "
        "2^24", v.image_size, v.patch_size);
  check(v.hidden_act == "quick_gelu" || v.hidden_act == "gelu",
        "config: vision_config.hidden_act '{}' is not implemented (quick_gelu, gelu)", v.hidden_act);
  check(v.layer_norm_eps > 0, "config: vision_config.layer_norm_eps must be positive, got {}",
        v.layer_norm_eps);

  const TextConfig& t = text;
  check(t.model_type == "llama" || t.model_type == "mistral" || t.model_type == "qwen2",
        "config: text_config.model_type '{}' is not implemented (llama, mistral, qwen2)", t.model_type);
  positive(t.vocab_size, "text_config.vocab_size");
  positive(t.hidden_size, "text_config.hidden_size");
  positive(t.intermediate_size, "text_config.intermediate_size");
  positive(t.num_hidden_layers, "text_config.num_hidden_layers");
  positive(t.num_attention_heads, "text_config.num_attention_heads");
  positive(t.num_key_value_heads, "text_config.num_key_value_heads");
  positive(t.head_dim, "text_config.head_dim");
  positive(t.max_position_embeddings, "text_config.max_position_embeddings");
  // LlamaConfig refuses this shape even with an explicit head_dim; transformers cannot load it.
  check(t.model_type != "llama" || t.hidden_size % t.num_attention_heads == 0,
        "config: text_config.hidden_size {} is not a multiple of num_attention_heads {} "
        "(transformers' LlamaConfig refuses it)",
        t.hidden_size, t.num_attention_heads);
  check(t.head_dim % 2 == 0, "config: text_config.head_dim must be even for RoPE, got {}", t.head_dim);
  check(t.num_attention_heads % t.num_key_value_heads == 0,
        "config: text_config.num_attention_heads {} is not a multiple of num_key_value_heads {}",
        t.num_attention_heads, t.num_key_value_heads);
  check(t.hidden_act == "silu", "config: text_config.hidden_act '{}' is not implemented (silu)",
        t.hidden_act);
  check(t.rope_theta > 0, "config: text_config rope_theta must be positive, got {}", t.rope_theta);
  check(t.rms_norm_eps > 0, "config: text_config.rms_norm_eps must be positive, got {}", t.rms_norm_eps);
  check(t.sliding_layers.empty() || t.sliding_window > 0,
        "config: text_config.sliding_window must be positive, got {}", t.sliding_window);
  check(t.sliding_layers.empty() || std::ssize(t.sliding_layers) == t.num_hidden_layers,
        "config: text_config: {} sliding-window flags for {} layers", t.sliding_layers.size(),
        t.num_hidden_layers);
  for (const std::int64_t id : t.eos_token_ids)
    check(id >= 0 && id < t.vocab_size, "config: text_config.eos_token_id {} is outside the vocabulary [0, {})",
          id, t.vocab_size);

  check(image_token_id >= 0 && image_token_id < t.vocab_size,
        "config: image_token_index {} is outside the vocabulary [0, {})", image_token_id,
        t.vocab_size);
  check(!vision_feature_layers.empty(), "config: vision_feature_layer is an empty list");
  for (const std::int64_t layer : vision_feature_layers)
    check(layer >= -(v.num_hidden_layers + 1) && layer <= v.num_hidden_layers,
          "config: vision_feature_layer {} is outside the vision tower's hidden states [-{}, {}]",
          layer, v.num_hidden_layers + 1, v.num_hidden_layers);
  check(vision_feature_select_strategy == "default" || vision_feature_select_strategy == "full",
        "config: vision_feature_select_strategy '{}' is not 'default' or 'full'",
        vision_feature_select_strategy);
  // LlavaNextModel.pack_image_features lays each tile's tokens out on the patch grid; with the
  // CLS token kept they do not fit it.
  check(architecture == Architecture::llava || vision_feature_select_strategy == "default",
        "config: vision_feature_select_strategy 'full' is not implemented for llava_next (the "
        "anyres packing places patch tokens only; transformers' pack_image_features cannot "
        "place the CLS token either)");
  check(projector_hidden_act == "gelu",
        "config: projector_hidden_act '{}' is not implemented (gelu)", projector_hidden_act);
  if (architecture == Architecture::llava_next) {
    check(!image_grid_pinpoints.empty(), "config: image_grid_pinpoints is empty");
    for (const Size2& p : image_grid_pinpoints)
      check(p.height > 0 && p.width > 0 && p.height <= max_side && p.width <= max_side &&
                p.height % v.image_size == 0 && p.width % v.image_size == 0,
            "config: image_grid_pinpoints entry [{}, {}] is not a positive multiple of {} up to "
            "2^24", p.height, p.width, v.image_size);
  }
}

LlavaNextConfig LlavaNextConfig::from_json(const nlohmann::json& j, std::string_view origin) {
  check(j.is_object(), "{}: not a JSON object", origin);
  LlavaNextConfig c = read_model(j, origin);
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", origin, e.what());
  }
  return c;
}

LlavaNextConfig LlavaNextConfig::load(const std::filesystem::path& config_json) {
  return from_json(read_json(config_json, config_json.string()), config_json.string());
}

}  // namespace hired::io
