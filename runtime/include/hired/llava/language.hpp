// The language model of LLaVA-Next: a Llama-family decoder (Llama / Vicuna, Mistral) with
// RMSNorm, RoPE, grouped-query attention, a SiLU-gated MLP and a KV cache, and greedy decoding
// of a padded batch. Plain structs of ATen tensors; weights come from hired::llava::Weights.
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
  /// mlp.{gate,up,down}_proj, input_layernorm, post_attention_layernorm}, norm) and
  /// `language_model.lm_head.weight` (the embeddings when tie_word_embeddings).
  LanguageModel(const TextConfig& config, Weights& weights);

  /// [B, L] int64 token ids -> [B, L, D] embeddings. Throws hired::Error for ids outside the
  /// vocabulary.
  at::Tensor embed(const at::Tensor& ids) const;

  /// An empty cache for `batch` sequences of up to `capacity` positions.
  KvCache make_cache(std::int64_t batch, std::int64_t capacity) const;

  /// Runs `embeds` [B, L, D] at `positions` [B, L] (int64, RoPE positions) after what `cache`
  /// holds, appends their keys and values to it, and returns the last position's logits
  /// [B, V] in float32. `key_valid` [B, cache.length + L] (bool) marks the keys that may be
  /// attended to (false: padding); attention is causal on top of it.
  at::Tensor forward(const at::Tensor& embeds, const at::Tensor& positions,
                     const at::Tensor& key_valid, KvCache& cache) const;

  const TextConfig& config() const { return config_; }
  const WeightOptions& options() const { return options_; }

 private:
  struct Layer {
    at::Tensor input_norm, q, k, v, o, post_norm, gate, up, down;
  };
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;

  TextConfig config_;
  WeightOptions options_;
  at::Tensor embed_tokens_, norm_, lm_head_, inv_freq_;
  std::vector<Layer> layers_;
};

struct GenerationOptions {
  std::int64_t max_new_tokens = 15;
  bool stop_at_eos = true;  // a row stops after generating config().eos_token_id
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
