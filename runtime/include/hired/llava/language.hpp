// The language model of LLaVA: a Llama-family decoder (Llama: Vicuna, Yi; Mistral; Qwen2) with
// RMSNorm, RoPE, grouped-query attention, optional projection biases, sliding-window layers, a
// SiLU-gated MLP and a KV cache, and greedy decoding of a padded batch. Plain structs of ATen
// tensors; weights come from hired::llava::Weights.
#pragma once

#include "hired/llava/config.hpp"
#include "hired/llava/weights.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>
#include <vector>

namespace hired::llava {

/// Keys and values of every layer for a batch, preallocated for `capacity` positions.
struct KvCache {
  std::vector<at::Tensor> keys, values;  // per layer [B, kv_heads, capacity, head_dim]
  std::int64_t length = 0;               // positions filled
};

class LanguageModel {
 public:
  /// Takes `language_model.model.*` (embed_tokens, layers.i.{self_attn.{q,k,v,o}_proj,
  /// mlp.{gate,up,down}_proj, input_layernorm, post_attention_layernorm}, norm; the biases the
  /// config names) and `language_model.lm_head.weight`. With tie_word_embeddings lm_head is the
  /// embedding matrix, unless the checkpoint holds its own lm_head (transformers then keeps it:
  /// it ties only equal tensors) or holds lm_head but no embeddings (transformers ties the other
  /// way round).
  LanguageModel(const TextConfig& config, Weights& weights);

  /// [B, L] int64 token ids -> [B, L, D] embeddings. Throws hired::Error for ids outside the
  /// vocabulary.
  at::Tensor embed(const at::Tensor& ids) const;

  /// An empty cache for `batch` sequences of up to `capacity` positions.
  KvCache make_cache(std::int64_t batch, std::int64_t capacity) const;

  /// Runs `embeds` [B, L, D] at `positions` [B, L] (int64, RoPE positions) after what `cache`
  /// holds, appends their keys and values to it, and returns the last position's logits
  /// [B, V] in float32. `key_valid` [B, cache.length + L] (bool) marks the keys that may be
  /// attended to (false: padding); attention is causal on top of it, and a sliding-window
  /// layer's query sees only the last sliding_window cache positions up to itself. Valid keys
  /// must be contiguous per row after its padding (as generate_greedy lays rows out), so the
  /// window counts a row's own positions.
  at::Tensor forward(const at::Tensor& embeds, const at::Tensor& positions,
                     const at::Tensor& key_valid, KvCache& cache) const;

  const TextConfig& config() const { return config_; }
  const WeightOptions& options() const { return options_; }

 private:
  struct Layer {
    at::Tensor input_norm, post_norm;
    at::Tensor q, k, v, o, gate, up, down;                               // weights
    at::Tensor q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;  // undefined: none
  };
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;

  TextConfig config_;
  WeightOptions options_;
  at::Tensor embed_tokens_, norm_, lm_head_, inv_freq_;
  std::vector<Layer> layers_;
};

struct GenerationOptions {
  std::int64_t max_new_tokens = 15;
  bool stop_at_eos = true;  // a row stops after generating one of config().eos_token_ids
};

struct Generation {
  std::vector<std::vector<std::int64_t>> tokens;  // per row, EOS included when it stopped a row
  at::Tensor prefill_logits;                      // [B, V] float32, at each prompt's last position
  double prefill_seconds = 0;                     // until the first token of every row is known
  double total_seconds = 0;
};

/// Greedy decoding of a batch of prompts given as embeddings: `embeds` [B, L_max, D] holds row
/// b's `lengths[b]` positions first (anything after is ignored). Rows are run left-padded,
/// with their own positions and a key mask, so each row's result equals running it alone.
/// Throws hired::Error for a bad shape, dtype, device, length or token budget (prompt + new
/// tokens beyond max_position_embeddings).
Generation generate_greedy(const LanguageModel& model, const at::Tensor& embeds,
                           std::span<const std::int64_t> lengths, const GenerationOptions& options);

}  // namespace hired::llava
