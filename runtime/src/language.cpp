// The Llama-family decoder and greedy decoding (hired/llava/language.hpp). Formulas follow
// transformers' modeling_llama / modeling_mistral / modeling_qwen2: RMSNorm in float32 then
// cast back, RoPE with rotate_half and float32 cos/sin, K/V heads repeated for grouped-query
// attention, the sliding window as masking_utils' sliding_window_overlay (key > query - window).
#include "hired/llava/language.hpp"

#include "hired/error.hpp"
#include "hired/llava/stopwatch.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

namespace hired::llava {
namespace {

at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

/// [B, kv, L, d] -> [B, kv * groups, L, d], each K/V head serving `groups` query heads.
at::Tensor repeat_kv(const at::Tensor& x, std::int64_t groups) {
  if (groups == 1) return x;
  const auto s = x.sizes();
  return x.unsqueeze(2).expand({s[0], s[1], groups, s[2], s[3]}).reshape({s[0], s[1] * groups, s[2], s[3]});
}

}  // namespace

LanguageModel::LanguageModel(const TextConfig& config, Weights& weights)
    : config_(config), options_(weights.options()) {
  const std::int64_t d = config.hidden_size, v = config.vocab_size, inter = config.intermediate_size;
  const std::int64_t q = config.num_attention_heads * config.head_dim;
  const std::int64_t kv = config.num_key_value_heads * config.head_dim;
  const std::string p = "language_model.model.";
  const auto bias = [&](bool present, const std::string& name, std::int64_t size) {
    return present ? weights.take(name, {size}, Init::zeros) : at::Tensor();
  };
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    const std::string a = l + "self_attn.", m = l + "mlp.";
    layers_.push_back({.input_norm = weights.take(l + "input_layernorm.weight", {d}, Init::ones),
                       .post_norm = weights.take(l + "post_attention_layernorm.weight", {d}, Init::ones),
                       .q = weights.take(a + "q_proj.weight", {q, d}),
                       .k = weights.take(a + "k_proj.weight", {kv, d}),
                       .v = weights.take(a + "v_proj.weight", {kv, d}),
                       .o = weights.take(a + "o_proj.weight", {d, q}),
                       .gate = weights.take(m + "gate_proj.weight", {inter, d}),
                       .up = weights.take(m + "up_proj.weight", {inter, d}),
                       .down = weights.take(m + "down_proj.weight", {d, inter}),
                       .q_bias = bias(config.qkv_bias, a + "q_proj.bias", q),
                       .k_bias = bias(config.qkv_bias, a + "k_proj.bias", kv),
                       .v_bias = bias(config.qkv_bias, a + "v_proj.bias", kv),
                       .o_bias = bias(config.o_bias, a + "o_proj.bias", d),
                       .gate_bias = bias(config.mlp_bias, m + "gate_proj.bias", inter),
                       .up_bias = bias(config.mlp_bias, m + "up_proj.bias", inter),
                       .down_bias = bias(config.mlp_bias, m + "down_proj.bias", d)});
  }
  norm_ = weights.take(p + "norm.weight", {d}, Init::ones);
  // transformers ties lm_head to the embeddings only when the config says so, and then only
  // tensors that are equal (a checkpoint holding both, different, keeps both) or missing (the
  // one present serves for both).
  const std::string embed = p + "embed_tokens.weight", head = "language_model.lm_head.weight";
  if (!config.tie_word_embeddings || weights.in_checkpoint(head)) {
    lm_head_ = weights.take(head, {v, d});
    const bool head_only = config.tie_word_embeddings && !weights.in_checkpoint(embed);
    embed_tokens_ = head_only ? lm_head_ : weights.take(embed, {v, d});
  } else {
    embed_tokens_ = weights.take(embed, {v, d});
    lm_head_ = embed_tokens_;
  }
  // inv_freq = 1 / theta^(2i / d) in float32, as transformers computes it.
  const at::Tensor exponents =
      at::arange(0, config.head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(config.head_dim);
  inv_freq_ = (1.0 / at::pow(config.rope_theta, exponents)).to(options_.device);
}

at::Tensor LanguageModel::embed(const at::Tensor& ids) const {
  check(ids.defined() && ids.dim() == 2, "ids: shape {} must be [B, L]",
        ids.defined() ? shape_text(ids.sizes()) : "undefined");
  check(ids.scalar_type() == at::kLong, "ids: dtype must be int64");
  if (ids.numel() > 0) {
    const std::int64_t lo = ids.min().item<std::int64_t>(), hi = ids.max().item<std::int64_t>();
    check(lo >= 0 && hi < config_.vocab_size, "ids: {} is outside the vocabulary [0, {})",
          lo < 0 ? lo : hi, config_.vocab_size);
  }
  return at::embedding(embed_tokens_, ids.to(options_.device));
}

KvCache LanguageModel::make_cache(std::int64_t batch, std::int64_t capacity) const {
  KvCache cache;
  const auto options = at::TensorOptions(options_.dtype).device(options_.device);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    cache.keys.push_back(at::zeros({batch, config_.num_key_value_heads, capacity, config_.head_dim}, options));
    cache.values.push_back(at::zeros_like(cache.keys.back()));
  }
  return cache;
}

at::Tensor LanguageModel::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  const at::Tensor f = x.to(at::kFloat);
  const at::Tensor normed = f * at::rsqrt(f.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor LanguageModel::forward(const at::Tensor& embeds, const at::Tensor& positions,
                                  const at::Tensor& key_valid, KvCache& cache) const {
  const std::int64_t batch = embeds.size(0), len = embeds.size(1), past = cache.length;
  const std::int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  const std::int64_t hd = config_.head_dim, total = past + len;
  check(total <= cache.keys.front().size(2), "cache: {} positions do not fit its capacity {}",
        total, cache.keys.front().size(2));

  // RoPE tables for these positions: [B, 1, L, hd] in float32, cast like transformers does.
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_.view({1, 1, -1});
  const at::Tensor angles = at::cat({freqs, freqs}, -1).unsqueeze(1);
  const at::Tensor cos = angles.cos().to(embeds.scalar_type()), sin = angles.sin().to(embeds.scalar_type());

  // Query i (at cache position past + i) sees key j when j is valid and j <= past + i, and in
  // a sliding-window layer when also j > past + i - window. A padding query sees at least
  // itself, so no softmax row is empty. Without padding, a plain causal prefill (or a decode
  // step that sees everything) needs no mask, which lets SDPA pick its fused kernels.
  const bool padded = !key_valid.all().item<bool>();
  const auto mask_for = [&](std::int64_t window) -> std::optional<at::Tensor> {
    const bool windowed = window > 0 && total > window;
    if (!windowed && !padded && !(past > 0 && len > 1)) return std::nullopt;
    const at::Tensor key_index = at::arange(total, at::TensorOptions(at::kLong).device(embeds.device())).unsqueeze(0);
    const at::Tensor query_index = key_index.slice(1, past).transpose(0, 1);  // [L, 1]
    at::Tensor visible = key_index <= query_index;
    if (windowed) visible = visible & (key_index > query_index - window);
    return ((visible.unsqueeze(0) & key_valid.unsqueeze(1)) | (key_index == query_index).unsqueeze(0)).unsqueeze(1);
  };
  const std::optional<at::Tensor> full_mask = mask_for(0);
  const std::optional<at::Tensor> window_mask =
      config_.sliding_layers.empty() ? std::nullopt : mask_for(config_.sliding_window);

  at::Tensor h = embeds;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    const std::optional<at::Tensor>& mask =
        config_.attention_window(static_cast<std::int64_t>(i)) > 0 ? window_mask : full_mask;
    const bool causal = !mask && past == 0 && len > 1;
    const at::Tensor x = rms_norm(h, layer.input_norm);
    at::Tensor q = at::linear(x, layer.q, layer.q_bias).view({batch, len, heads, hd}).transpose(1, 2);
    at::Tensor k = at::linear(x, layer.k, layer.k_bias).view({batch, len, kv_heads, hd}).transpose(1, 2);
    const at::Tensor v = at::linear(x, layer.v, layer.v_bias).view({batch, len, kv_heads, hd}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    cache.keys[i].slice(2, past, total).copy_(k);
    cache.values[i].slice(2, past, total).copy_(v);
    const at::Tensor keys = repeat_kv(cache.keys[i].slice(2, 0, total), heads / kv_heads);
    const at::Tensor values = repeat_kv(cache.values[i].slice(2, 0, total), heads / kv_heads);
    const at::Tensor attn = at::scaled_dot_product_attention(q, keys, values, mask, 0.0, causal);
    h = h + at::linear(attn.transpose(1, 2).reshape({batch, len, heads * hd}), layer.o, layer.o_bias);
    const at::Tensor y = rms_norm(h, layer.post_norm);
    const at::Tensor gated = at::silu(at::linear(y, layer.gate, layer.gate_bias)) * at::linear(y, layer.up, layer.up_bias);
    h = h + at::linear(gated, layer.down, layer.down_bias);
  }
  cache.length = total;
  const at::Tensor last = rms_norm(h.select(1, len - 1), norm_);
  return at::linear(last, lm_head_).to(at::kFloat);
}

Generation generate_greedy(const LanguageModel& model, const at::Tensor& embeds,
                           std::span<const std::int64_t> lengths, const GenerationOptions& options) {
  const TextConfig& config = model.config();
  check(embeds.defined() && embeds.dim() == 3 && embeds.size(2) == config.hidden_size,
        "embeds: shape {} must be [B, L, {}]", embeds.defined() ? shape_text(embeds.sizes()) : "undefined",
        config.hidden_size);
  check(at::isFloatingType(embeds.scalar_type()), "embeds: dtype must be floating point");
  const std::int64_t batch = embeds.size(0), longest = embeds.size(1);
  check(batch > 0 && longest > 0, "embeds: shape {} is empty", shape_text(embeds.sizes()));
  check(static_cast<std::int64_t>(lengths.size()) == batch, "lengths: {} values for {} rows",
        lengths.size(), batch);
  std::int64_t max_len = 0;
  for (std::size_t b = 0; b < lengths.size(); ++b) {
    check(lengths[b] >= 1 && lengths[b] <= longest, "lengths[{}]: {} is outside [1, {}]", b,
          lengths[b], longest);
    max_len = std::max(max_len, lengths[b]);
  }
  check(options.max_new_tokens >= 1, "max_new_tokens: {} must be at least 1", options.max_new_tokens);
  check(max_len + options.max_new_tokens <= config.max_position_embeddings,
        "max_new_tokens: a {}-token prompt + {} new tokens exceed max_position_embeddings {}",
        max_len, options.max_new_tokens, config.max_position_embeddings);

  const Stopwatch timer;
  const at::Device device = model.options().device;
  const auto long_options = at::TensorOptions(at::kLong).device(device);
  // Left-pad: row b's positions 0..len-1 end at column max_len - 1.
  at::Tensor input = at::zeros({batch, max_len, config.hidden_size},
                               at::TensorOptions(model.options().dtype).device(device));
  std::vector<std::int64_t> pad(lengths.size());
  for (std::int64_t b = 0; b < batch; ++b) {
    pad[b] = max_len - lengths[b];
    input[b].slice(0, pad[b]).copy_(embeds[b].slice(0, 0, lengths[b]));
  }
  const at::Tensor pads = at::tensor(at::ArrayRef<std::int64_t>(pad), at::kLong).to(device);
  const at::Tensor columns = at::arange(max_len, long_options).unsqueeze(0);
  at::Tensor key_valid = columns >= pads.unsqueeze(1);
  at::Tensor positions = (columns - pads.unsqueeze(1)).clamp_min(0);

  KvCache cache = model.make_cache(batch, max_len + options.max_new_tokens);
  Generation out;
  out.tokens.resize(static_cast<std::size_t>(batch));
  std::vector<bool> done(static_cast<std::size_t>(batch), false);
  at::Tensor logits = model.forward(input, positions, key_valid, cache);
  out.prefill_logits = logits;
  for (std::int64_t step = 0; step < options.max_new_tokens; ++step) {
    const at::Tensor next = logits.argmax(-1);
    const at::Tensor host = next.to(at::kCPU);  // synchronises: the tokens are known here
    if (step == 0) out.prefill_seconds = timer.seconds();
    bool all_done = true;
    for (std::int64_t b = 0; b < batch; ++b) {
      if (done[b]) continue;
      const std::int64_t token = host[b].item<std::int64_t>();
      out.tokens[b].push_back(token);
      done[b] = options.stop_at_eos && std::ranges::count(config.eos_token_ids, token) > 0;
      all_done = all_done && done[b];
    }
    if (all_done || step + 1 == options.max_new_tokens) break;
    positions = positions.select(1, -1).unsqueeze(1) + 1;
    key_valid = at::cat({key_valid, at::ones({batch, 1}, key_valid.options())}, 1);
    logits = model.forward(model.embed(next.unsqueeze(1)), positions, key_valid, cache);
  }
  out.total_seconds = timer.seconds();
  return out;
}

}  // namespace hired::llava
