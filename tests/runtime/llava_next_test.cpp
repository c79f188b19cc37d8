// The LLaVA-Next runtime end to end against transformers' fixtures (label parity): packed image
// features, prefill logits and 10 greedy tokens, alone and as a padded batch (HiRED on every
// fixture: checkpoints_test.cpp). And the decoder's own contracts on random weights (label
// runtime): GQA, the KV cache, padding, EOS, bad input.
#include "hired/llava/language.hpp"
#include "hired/llava/model.hpp"
#include "hired/io/safetensors.hpp"
#include "support/expect_error.hpp"
#include "support/llava_fixtures.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace hired::llava;  // the model, its language model and generation, under test
using namespace hired_test;    // fixtures and comparisons
using hired::io::LlavaNextConfig;
using hired::io::TextConfig;

/// One fixture checkpoint with its inputs and transformers' outputs.
struct Fixture {
  fs::path dir;
  hired::io::SafeTensors expected;
  explicit Fixture(const std::string& name)
      : dir(hired_test::llava_fixture(name)),
        expected(hired::io::SafeTensors::load((dir / "expected.safetensors").string())) {}

  at::Tensor want(const char* name) const { return hired_test::to_tensor(expected.at(name)); }

  std::vector<std::vector<std::int64_t>> prompts() const {
    const at::Tensor ids = want("prompt_ids"), lengths = want("prompt_lengths");
    std::vector<std::vector<std::int64_t>> out;
    for (std::int64_t b = 0; b < ids.size(0); ++b) {
      const at::Tensor row = ids[b].slice(0, 0, lengths[b].item<std::int64_t>()).contiguous();
      out.emplace_back(row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel());
    }
    return out;
  }

  ImageInputs images() const {
    return {hired_test::clip_normalise(want("pixel_values_u8")), want("image_sizes"),
            want("num_partitions")};
  }
};

// --- transformers parity ---------------------------------------------------------------------

void expect_end_to_end_parity(const std::string& name) {
  const Fixture f(name);
  const LlavaNextModel model = LlavaNextModel::load(f.dir);
  const EncodedImages encoded = model.encode_images(f.images(), nullptr);
  const double features = max_abs_diff(encoded.rows.features, f.want("packed_features"));
  EXPECT_LE(features, 1e-4);
  EXPECT_TRUE(at::equal(encoded.rows.lengths, f.want("packed_lengths")));

  const auto prompts = f.prompts();
  const auto input = model.merge(prompts, encoded);
  const at::Tensor logits = f.want("logits"), ids = f.want("generated_ids");
  // The whole padded batch at once...
  const auto batch = hired::llava::generate_greedy(model.language(), input.embeds, input.lengths, ten_tokens());
  const double batch_logits = max_abs_diff(batch.prefill_logits, logits);
  EXPECT_LE(batch_logits, 1e-4);
  // ...and each sample alone.
  double alone_logits = 0;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    const std::int64_t i = static_cast<std::int64_t>(b);
    EXPECT_EQ(batch.tokens[b], ids_of(ids[i])) << name << " sample " << b << " in a batch";
    const auto alone = hired::llava::generate_greedy(
        model.language(), input.embeds.slice(0, i, i + 1), {&input.lengths[b], 1}, ten_tokens());
    EXPECT_EQ(alone.tokens[0], ids_of(ids[i])) << name << " sample " << b << " alone";
    alone_logits = std::max(alone_logits, max_abs_diff(alone.prefill_logits[0], logits[i]));
  }
  EXPECT_LE(alone_logits, 1e-4);
  std::printf("%s: max |diff| packed features %.2e, logits batch %.2e alone %.2e\n", name.c_str(),
              features, batch_logits, alone_logits);
}

TEST(ModelParity, VicunaTinyMatchesTransformersEndToEnd) { expect_end_to_end_parity("vicuna_tiny"); }
TEST(ModelParity, MistralTinyMatchesTransformersEndToEnd) { expect_end_to_end_parity("mistral_tiny"); }

TEST(ModelParity, ImageFilesGiveTheProcessorsPixelValues) {
  const Fixture f("vicuna_tiny");
  const LlavaNextConfig config = LlavaNextConfig::load(f.dir / "config.json");
  const std::vector<fs::path> files{hired_test::llava_fixture("images") / "wide_150x380.png",
                                    hired_test::llava_fixture("images") / "tall_500x240.png"};
  const ImageInputs in = hired::llava::read_images(files, config);
  EXPECT_TRUE(at::equal(in.pixel_values, f.images().pixel_values));
  EXPECT_TRUE(at::equal(in.image_sizes, f.want("image_sizes")));
  EXPECT_TRUE(at::equal(in.num_partitions, f.want("num_partitions")));
}

TEST(Model, MergeRejectsPromptsThatDoNotFitTheImages) {
  const Fixture f("vicuna_tiny");
  const LlavaNextModel model = LlavaNextModel::load(f.dir);
  const EncodedImages encoded = model.encode_images(f.images(), nullptr);  // two images
  auto prompts = f.prompts();
  const std::vector<std::vector<std::int64_t>> one{prompts[0]};
  expect_error([&] { model.merge(one, encoded); }, {"prompts", "1 image tokens", "2 images"});
  auto no_image = prompts;
  std::erase(no_image[1], 352);
  expect_error([&] { model.merge(no_image, encoded); }, {"prompts", "1 image tokens", "2 images"});
  auto bad_id = prompts;
  bad_id[0][1] = 384;
  expect_error([&] { model.merge(bad_id, encoded); }, {"prompt 0", "384", "vocabulary"});
  auto empty = prompts;
  empty[1].clear();
  expect_error([&] { model.merge(empty, encoded); }, {"prompt 1", "empty"});
  ImageInputs wrong = f.images();
  wrong.pixel_values = wrong.pixel_values.slice(0, 1);
  expect_error([&] { model.encode_images(wrong, nullptr); }, {"pixel_values", "5 partitions", "6"});
}

// --- the decoder on random weights ---------------------------------------------------------------

TextConfig small_text(std::int64_t kv_heads) {
  TextConfig t;
  t.vocab_size = 97;
  t.hidden_size = 32;
  t.intermediate_size = 48;
  t.num_hidden_layers = 2;
  t.num_attention_heads = 4;
  t.num_key_value_heads = kv_heads;
  t.head_dim = 8;
  t.max_position_embeddings = 64;
  t.rms_norm_eps = 1e-5;
  return t;
}

at::Tensor random_embeds(std::int64_t batch, std::int64_t len, std::uint64_t seed) {
  at::manual_seed(static_cast<std::int64_t>(seed));
  return at::randn({batch, len, 32});
}

/// A scratch llava-hf directory holding `tensors` as model.safetensors.
fs::path write_checkpoint(const std::string& tag, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  const fs::path dir = fs::temp_directory_path() / ("hired_language_test_" + tag + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::vector<hired::io::TensorData> data;
  for (const auto& [name, t] : tensors) {
    const at::Tensor c = t.to(at::kFloat).contiguous();
    data.push_back(hired::io::make_tensor_data(name, hired::io::Dtype::F32, c.sizes().vec(),
                                           std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel())));
  }
  hired::io::write_safetensors((dir / "model.safetensors").string(), data);
  return dir;
}

TEST(LanguageModel, GroupedQueryAttentionEqualsMultiHeadWithRepeatedKeysAndValues) {
  const TextConfig gqa = small_text(2), mha = small_text(4);
  Weights random = Weights::random(5);
  std::vector<std::pair<std::string, at::Tensor>> grouped, repeated;
  const auto take = [&](const std::string& name, std::vector<std::int64_t> shape, hired::llava::Init init) {
    const at::Tensor t = random.take(name, shape, init);
    grouped.emplace_back(name, t);
    if (name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight"))  // [kv*d, D] -> [H*d, D]
      repeated.emplace_back(name, t.view({2, 1, 8, 32}).expand({2, 2, 8, 32}).reshape({32, 32}));
    else
      repeated.emplace_back(name, t);
  };
  const std::string p = "language_model.model.";
  take(p + "embed_tokens.weight", {97, 32}, hired::llava::Init::normal);
  for (int i = 0; i < 2; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    take(l + "input_layernorm.weight", {32}, hired::llava::Init::ones);
    take(l + "self_attn.q_proj.weight", {32, 32}, hired::llava::Init::normal);
    take(l + "self_attn.k_proj.weight", {16, 32}, hired::llava::Init::normal);
    take(l + "self_attn.v_proj.weight", {16, 32}, hired::llava::Init::normal);
    take(l + "self_attn.o_proj.weight", {32, 32}, hired::llava::Init::normal);
    take(l + "post_attention_layernorm.weight", {32}, hired::llava::Init::ones);
    take(l + "mlp.gate_proj.weight", {48, 32}, hired::llava::Init::normal);
    take(l + "mlp.up_proj.weight", {48, 32}, hired::llava::Init::normal);
    take(l + "mlp.down_proj.weight", {32, 48}, hired::llava::Init::normal);
  }
  take(p + "norm.weight", {32}, hired::llava::Init::ones);
  take("language_model.lm_head.weight", {97, 32}, hired::llava::Init::normal);
  const fs::path a = write_checkpoint("gqa", grouped), b = write_checkpoint("mha", repeated);
  Weights wa = Weights::open(a), wb = Weights::open(b);
  const LanguageModel grouped_model(gqa, wa), full_model(mha, wb);
  const at::Tensor embeds = random_embeds(2, 9, 1);
  const std::vector<std::int64_t> lengths{9, 6};
  const auto x = hired::llava::generate_greedy(grouped_model, embeds, lengths, ten_tokens());
  const auto y = hired::llava::generate_greedy(full_model, embeds, lengths, ten_tokens());
  EXPECT_LE(max_abs_diff(x.prefill_logits, y.prefill_logits), 1e-5);
  EXPECT_EQ(x.tokens, y.tokens);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(LanguageModel, CachedDecodingEqualsRecomputingTheWholeSequence) {
  Weights w = Weights::random(7);
  const LanguageModel model(small_text(2), w);
  const at::Tensor prompt = random_embeds(1, 6, 2);
  const at::Tensor valid7 = at::ones({1, 7}, at::kBool);
  auto cache = model.make_cache(1, 16);
  const at::Tensor first = model.forward(prompt, at::arange(6).unsqueeze(0), valid7.slice(1, 0, 6), cache);
  const at::Tensor token = first.argmax(-1, /*keepdim=*/true);
  const at::Tensor step = model.forward(model.embed(token), at::full({1, 1}, 6, at::kLong), valid7, cache);
  auto fresh = model.make_cache(1, 16);
  const at::Tensor whole = model.forward(at::cat({prompt, model.embed(token)}, 1),
                                         at::arange(7).unsqueeze(0), valid7, fresh);
  EXPECT_LE(max_abs_diff(step, whole), 1e-5);
}

TEST(LanguageModel, PaddedRowsEqualTheRowsRunAlone) {
  Weights w = Weights::random(9);
  const LanguageModel model(small_text(2), w);
  const at::Tensor embeds = random_embeds(3, 8, 3);
  const std::vector<std::int64_t> lengths{8, 3, 5};
  const auto batch = hired::llava::generate_greedy(model, embeds, lengths, ten_tokens());
  for (std::int64_t b = 0; b < 3; ++b) {
    const auto alone = hired::llava::generate_greedy(model, embeds.slice(0, b, b + 1).slice(1, 0, lengths[b]),
                                                     {&lengths[b], 1}, ten_tokens());
    EXPECT_EQ(batch.tokens[b], alone.tokens[0]) << "row " << b;
    EXPECT_LE(max_abs_diff(batch.prefill_logits[b], alone.prefill_logits[0]), 1e-5) << "row " << b;
  }
}

TEST(LanguageModel, StopsARowAtEosWhenAsked) {
  TextConfig config = small_text(2);
  Weights w = Weights::random(11);
  const at::Tensor embeds = random_embeds(1, 5, 4);
  const std::vector<std::int64_t> lengths{5};
  const auto free_run = hired::llava::generate_greedy(LanguageModel(config, w), embeds, lengths, ten_tokens());
  config.eos_token_ids = {free_run.tokens[0][2]};  // the third token becomes EOS
  Weights w2 = Weights::random(11);
  GenerationOptions stop = ten_tokens();
  stop.stop_at_eos = true;
  const auto stopped = hired::llava::generate_greedy(LanguageModel(config, w2), embeds, lengths, stop);
  const auto eos_at = std::find(free_run.tokens[0].begin(), free_run.tokens[0].end(), config.eos_token_ids[0]);
  EXPECT_EQ(stopped.tokens[0], std::vector<std::int64_t>(free_run.tokens[0].begin(), eos_at + 1));
}

TEST(LanguageModel, RejectsBadInputByName) {
  Weights w = Weights::random(1);
  const LanguageModel model(small_text(2), w);
  const at::Tensor embeds = random_embeds(2, 4, 5);
  const std::vector<std::int64_t> ok{4, 2};
  const auto run = [&](const at::Tensor& e, std::vector<std::int64_t> lengths, std::int64_t new_tokens) {
    GenerationOptions o;
    o.max_new_tokens = new_tokens;
    hired::llava::generate_greedy(model, e, lengths, o);
  };
  expect_error([&] { run(embeds[0], ok, 3); }, {"embeds", "[4, 32]"});
  expect_error([&] { run(embeds.slice(2, 0, 16), ok, 3); }, {"embeds", "[2, 4, 16]"});
  expect_error([&] { run(embeds.to(at::kLong), ok, 3); }, {"embeds", "floating point"});
  expect_error([&] { run(embeds, {4}, 3); }, {"lengths", "1 values for 2 rows"});
  expect_error([&] { run(embeds, {4, 0}, 3); }, {"lengths[1]", "0"});
  expect_error([&] { run(embeds, {5, 2}, 3); }, {"lengths[0]", "5"});
  expect_error([&] { run(embeds, ok, 0); }, {"max_new_tokens", "0"});
  expect_error([&] { run(embeds, ok, 61); }, {"max_new_tokens", "max_position_embeddings 64"});
  expect_error([&] { model.embed(at::tensor({3, 97}, at::kLong).unsqueeze(0)); }, {"ids", "97", "vocabulary"});
  expect_error([&] { model.embed(at::tensor({3, 5}, at::kLong)); }, {"ids", "[2]"});
}

}  // namespace
