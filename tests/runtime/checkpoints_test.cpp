// The runtime on every llava-hf checkpoint shape against what transformers 5.23 computes on a
// tiny random checkpoint with that checkpoint's config.json field set (suite CheckpointParity),
// and on one checkpoint per way a reader can diverge from transformers (DivergenceParity: each
// also shows that the naive reading would have been caught). From the image files and the
// compact prompt ids to packed image rows (1e-4), prefill logits (1e-4) and 10 greedy tokens
// (identical); HiRED against the masked packing restated in plain LibTorch. And the checkpoint
// tensors nobody computes with (CheckpointTensors). Fixtures: tests/fixtures/llava/README.md.
#include "hired/llava/language.hpp"
#include "hired/llava/model.hpp"
#include "hired/io/safetensors.hpp"
#include "support/drop_config.hpp"
#include "support/expect_error.hpp"
#include "support/llava_fixtures.hpp"
#include "support/masked_packing.hpp"
#include "support/scratch_dir.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace hired::llava;  // the model, as each checkpoint shape builds it, under test
using namespace hired_test;    // fixtures and comparisons
using hired::io::Architecture;
using hired::io::LlavaNextConfig;

/// A fixture checkpoint with its inputs and transformers' outputs.
struct Checkpoint {
  fs::path dir;
  hired_test::FixtureInputs inputs;
  hired::io::SafeTensors expected;
  explicit Checkpoint(const std::string& name)
      : dir(hired_test::llava_fixture(name)),
        inputs(dir),
        expected(hired::io::SafeTensors::load((dir / "expected.safetensors").string())) {}
  at::Tensor want(const char* tensor) const { return hired_test::to_tensor(expected.at(tensor)); }
};

/// The model's images encoded (`dropper` null: stock), the prompts merged, 10 greedy tokens.
struct Outcome {
  EncodedImages images;
  Generation generation;
};

Outcome run(const LlavaNextModel& model, const Checkpoint& c, const hired::TokenDropper* dropper = nullptr) {
  Outcome r;
  r.images = model.encode_images(hired::llava::read_images(c.inputs.images, model.config()), dropper);
  const auto input = model.merge(c.inputs.prompts, r.images);
  r.generation = hired::llava::generate_greedy(model.language(), input.embeds, input.lengths, ten_tokens());
  return r;
}

/// Stock parity with transformers; returns hired's run for further checks.
Outcome expect_parity(const std::string& name) {
  SCOPED_TRACE(name);
  const Checkpoint c(name);
  const LlavaNextModel model = LlavaNextModel::load(c.dir);
  const Outcome r = run(model, c);
  EXPECT_TRUE(at::equal(r.images.rows.lengths, c.want("packed_lengths")));
  const double rows = max_abs_diff(r.images.rows.features, c.want("packed_features"));
  const double logits = max_abs_diff(r.generation.prefill_logits, c.want("logits"));
  EXPECT_LE(rows, 1e-4);
  EXPECT_LE(logits, 1e-4);
  const at::Tensor ids = c.want("generated_ids");
  for (std::size_t b = 0; b < r.generation.tokens.size(); ++b)
    EXPECT_EQ(r.generation.tokens[b], ids_of(ids[static_cast<std::int64_t>(b)])) << "sample " << b;
  std::printf("[ parity   ] %s: max |diff| image rows %.2e, logits %.2e\n", name.c_str(), rows, logits);
  return r;
}

/// The same checkpoint with its config edited the naive way: either refused (by a missing or
/// an unused tensor, named in the error) or logits at least `moved` away from transformers'.
void expect_naive_reading_caught(const std::string& name, const std::function<void(LlavaNextConfig&)>& naive,
                                 const std::string& refusal, double moved = 0.0) {
  const Checkpoint c(name);
  LlavaNextConfig config = LlavaNextConfig::load(c.dir / "config.json");
  naive(config);
  Weights weights = Weights::open(c.dir);
  if (!refusal.empty()) {
    expect_error([&] { LlavaNextModel(config, weights); }, {refusal});
    return;
  }
  const LlavaNextModel model(config, weights);
  const double diff = max_abs_diff(run(model, c).generation.prefill_logits, c.want("logits"));
  EXPECT_GE(diff, moved) << name << ": the naive reading would not have been noticed";
  std::printf("[ naive    ] %s: the naive reading moves the logits by %.3g\n", name.c_str(), diff);
}

/// A copy of `name`'s checkpoint in `scratch`, its model.safetensors without the `dropped`
/// tensors and with `extra` ones (every value 0.5).
fs::path rewritten_checkpoint(const hired_test::ScratchDir& scratch, const std::string& name,
                              const std::vector<std::string>& dropped,
                              const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& extra) {
  const fs::path source = hired_test::llava_fixture(name), dir = scratch.path() / "checkpoint";
  fs::remove_all(dir);
  fs::copy(source, dir, fs::copy_options::recursive);
  const hired::io::SafeTensors file = hired::io::SafeTensors::load((source / "model.safetensors").string());
  std::vector<hired::io::TensorData> tensors;
  for (const std::string& tensor : file.names()) {
    if (std::find(dropped.begin(), dropped.end(), tensor) != dropped.end()) continue;
    const hired::io::TensorView& view = file.at(tensor);
    tensors.push_back(hired::io::make_tensor_data(tensor, hired::io::Dtype::F32, view.shape(), view.to_float()));
  }
  for (const auto& [tensor, shape] : extra) {
    std::int64_t n = 1;
    for (const std::int64_t d : shape) n *= d;
    tensors.push_back(hired::io::make_tensor_data(tensor, hired::io::Dtype::F32, shape,
                                                  std::vector<float>(static_cast<std::size_t>(n), 0.5f)));
  }
  hired::io::write_safetensors((dir / "model.safetensors").string(), tensors);
  return dir;
}

// --- every llava-hf checkpoint shape -----------------------------------------------------------

TEST(CheckpointParity, Llava15_7b) { expect_parity("llava15_7b_tiny"); }
TEST(CheckpointParity, LlavaNextVicuna13b) { expect_parity("vicuna13b_tiny"); }
TEST(CheckpointParity, LlavaNextMistral7b) { expect_parity("mistral7b_tiny"); }
TEST(CheckpointParity, LlavaNext34bYi) { expect_parity("yi34b_tiny"); }
TEST(CheckpointParity, LlavaNext72bQwen2) { expect_parity("qwen72b_tiny"); }
TEST(CheckpointParity, LlavaNext110bQwen2) { expect_parity("qwen110b_tiny"); }

/// Qwen2's q/k/v biases are in the checkpoint (random there); reading the model without them
/// leaves them unused, which is refused by name.
TEST(CheckpointParity, Qwen2BiasesAreRead) {
  for (const char* name : {"qwen72b_tiny", "qwen110b_tiny"})
    expect_naive_reading_caught(name, [](LlavaNextConfig& c) { c.text.qkv_bias = false; },
                                "self_attn.q_proj.bias");
}

/// text_config.vocab_size is the embedding's and lm_head's row count: a config that says
/// otherwise is refused naming the tensor and both shapes.
TEST(CheckpointParity, VocabularySizeIsTheEmbeddingRows) {
  expect_naive_reading_caught("qwen72b_tiny", [](LlavaNextConfig& c) { c.text.vocab_size = 321; },
                              "[320, 16] in the file, the config needs [321, 16]");
}

/// The image token anywhere in the vocabulary: Qwen's sits among the ids (the prompt uses ids
/// above it), Yi's right after the sentencepiece vocabulary; both fixtures merge at it.
TEST(CheckpointParity, ImageTokenAnywhereInTheVocabulary) {
  const Checkpoint qwen("qwen72b_tiny");
  const LlavaNextConfig config = LlavaNextConfig::load(qwen.dir / "config.json");
  EXPECT_LT(config.image_token_id, config.text.vocab_size - 1);
  std::int64_t above = 0;
  for (const std::int64_t id : qwen.inputs.prompts[0]) above += id > config.image_token_id;
  EXPECT_GT(above, 0);
}

/// LLaVA-1.5: one partition of 576 tokens, no image_newline tensor, no newline rows.
TEST(CheckpointParity, Llava15HasOnePartitionAndNoNewline) {
  const Checkpoint c("llava15_7b_tiny");
  const LlavaNextModel model = LlavaNextModel::load(c.dir);
  EXPECT_FALSE(model.image_newline().defined());
  const ImageInputs images = hired::llava::read_images(c.inputs.images, model.config());
  EXPECT_EQ(ids_of(images.num_partitions), std::vector<std::int64_t>{1});
  EXPECT_EQ(images.pixel_values.sizes(), (std::vector<std::int64_t>{1, 3, 336, 336}));
  const EncodedImages stock = model.encode_images(images, nullptr);
  EXPECT_EQ(stock.rows.visual_tokens, std::vector<std::int64_t>{576});
  EXPECT_EQ(ids_of(stock.rows.lengths), std::vector<std::int64_t>{576});
}

// --- HiRED on every shape ----------------------------------------------------------------------

/// HiRED on: the runtime's image rows equal the masked packing of its selection over every
/// projected token, and the LLM fed with either gives the same logits and tokens; at rate 1.0
/// the rows, logits and tokens are stock's to the bit. LLaVA-1.5 has no newline rows whatever
/// the policy.
void expect_hired_restated(const std::string& name) {
  SCOPED_TRACE(name);
  const Checkpoint c(name);
  const LlavaNextModel model = LlavaNextModel::load(c.dir);
  const LlavaNextConfig& config = model.config();
  const ImageInputs images = hired::llava::read_images(c.inputs.images, config);
  const auto vision = model.vision().forward(images.pixel_values);
  const std::int64_t partitions = vision.features.size(0), tokens = vision.features.size(1);
  const at::Tensor projected = model.project(vision.features.reshape({partitions * tokens, -1}))
                                   .reshape({partitions, tokens, config.text.hidden_size});
  const at::Tensor newline = config.has_image_newline() ? model.image_newline()
                                                        : at::zeros({config.text.hidden_size});
  const hired::TokenDropper full(hired_test::drop_config(1.0));
  const Outcome stock = run(model, c), everything = run(model, c, &full);
  EXPECT_TRUE(at::equal(everything.images.rows.features, stock.images.rows.features));
  EXPECT_TRUE(at::equal(everything.generation.prefill_logits, stock.generation.prefill_logits));
  EXPECT_EQ(everything.generation.tokens, stock.generation.tokens);

  for (const hired::Mode mode : {hired::Mode::exact, hired::Mode::reference}) {
    for (const auto policy : {hired::NewlinePolicy::every_row, hired::NewlinePolicy::kept_rows,
                              hired::NewlinePolicy::none}) {
      const hired::TokenDropper dropper(hired_test::drop_config(0.2, policy, mode));
      const EncodedImages ours = model.encode_images(images, &dropper);
      const hired::Selection& selection = ours.rows.selection->host;
      EncodedImages restated = ours;
      restated.rows.features = hired_test::masked_packing(
          projected, selection, newline, config.has_image_newline() ? policy : hired::NewlinePolicy::none);
      ASSERT_EQ(ours.rows.features.sizes(), restated.rows.features.sizes());
      EXPECT_LE(max_abs_diff(ours.rows.features, restated.rows.features), 1e-5);
      if (!config.has_image_newline()) {  // the kept tokens are all the rows
        EXPECT_EQ(ours.rows.features.size(0), selection.kept_offsets.back());
      }
      const auto a = model.merge(c.inputs.prompts, ours), b = model.merge(c.inputs.prompts, restated);
      const auto ga = hired::llava::generate_greedy(model.language(), a.embeds, a.lengths, ten_tokens());
      const auto gb = hired::llava::generate_greedy(model.language(), b.embeds, b.lengths, ten_tokens());
      EXPECT_LE(max_abs_diff(ga.prefill_logits, gb.prefill_logits), 1e-4);
      EXPECT_EQ(ga.tokens, gb.tokens) << hired::to_string(mode) << " " << hired::to_string(policy);
    }
  }
}

TEST(CheckpointParity, HiredOnEveryShapeMatchesTheMaskedPackingRestatement) {
  for (const std::string& name : hired_test::hub_checkpoint_fixtures()) expect_hired_restated(name);
  for (const char* name : {"vicuna_tiny", "mistral_tiny"}) expect_hired_restated(name);
}

TEST(DivergenceParity, HiredOnEveryDivergenceMatchesTheMaskedPackingRestatement) {
  for (const std::string& name : hired_test::divergence_fixtures())
    if (name != "divergence/llava_full") expect_hired_restated(name);
  // HiRED selects among patch tokens: with the CLS token among the image rows it is refused.
  const Checkpoint c("divergence/llava_full");
  const LlavaNextModel model = LlavaNextModel::load(c.dir);
  const hired::TokenDropper dropper(hired_test::drop_config(0.2));
  expect_error([&] { model.encode_images(hired::llava::read_images(c.inputs.images, model.config()), &dropper); },
               {"vision_feature_select_strategy 'full'", "HiRED"});
}

// --- one checkpoint per divergence --------------------------------------------------------------

/// transformers 5 ties lm_head by the top-level tie_word_embeddings and saves no lm_head; a
/// reader that let text_config's false win looks for one and refuses the checkpoint.
TEST(DivergenceParity, TieByTheTopLevel) {
  expect_parity("divergence/tie_top_level");
  expect_naive_reading_caught("divergence/tie_top_level",
                              [](LlavaNextConfig& c) { c.text.tie_word_embeddings = false; },
                              "language_model.lm_head.weight");
}

/// What a reader that used the embeddings as lm_head computes (the checkpoint without its
/// lm_head, tied): logits far from transformers'.
void expect_tying_would_be_caught(const std::string& name) {
  const hired_test::ScratchDir scratch("tied_reading");
  const fs::path dir = rewritten_checkpoint(scratch, name, {"language_model.lm_head.weight"}, {});
  LlavaNextConfig config = LlavaNextConfig::load(dir / "config.json");
  config.text.tie_word_embeddings = true;
  Weights weights = Weights::open(dir);
  const LlavaNextModel model(config, weights);
  const Checkpoint c(name);
  const double diff = max_abs_diff(run(model, c).generation.prefill_logits, c.want("logits"));
  EXPECT_GE(diff, 1e-2) << name << ": a tying reader would not have been noticed";
  std::printf("[ naive    ] %s: tying moves the logits by %.3g\n", name.c_str(), diff);
}

/// Top level false, text_config true: LlavaNext does not tie; the checkpoint's own lm_head
/// computes the logits.
TEST(DivergenceParity, TextConfigTieIsIgnoredByLlavaNext) {
  expect_parity("divergence/tie_text_only");
  expect_tying_would_be_caught("divergence/tie_text_only");
}

/// Tying asked for, but the checkpoint holds an lm_head unequal to the embeddings:
/// transformers' tie_weights keeps both as stored (and warns), so does hired.
TEST(DivergenceParity, TieAskedButTheCheckpointHoldsItsOwnLmHead) {
  expect_parity("divergence/tie_both_stored");
  expect_tying_would_be_caught("divergence/tie_both_stored");
  EXPECT_TRUE(LlavaNextConfig::load(hired_test::llava_fixture("divergence/tie_both_stored") / "config.json")
                  .text.tie_word_embeddings);
}

/// The same config for LLaVA-1.5: LlavaConfig takes text_config's true, so it ties.
TEST(DivergenceParity, TextConfigTieCountsForLlava15) {
  expect_parity("divergence/tie_text_only_llava");
  expect_naive_reading_caught("divergence/tie_text_only_llava",
                              [](LlavaNextConfig& c) { c.text.tie_word_embeddings = false; },
                              "language_model.lm_head.weight");
}

/// Mistral's window (8) is shorter than the prompt (73 tokens): prefill and decode mask it.
TEST(DivergenceParity, SlidingWindowShorterThanThePrompt) {
  const Outcome r = expect_parity("divergence/sliding_window");
  const LlavaNextConfig config = LlavaNextConfig::load(hired_test::llava_fixture("divergence/sliding_window") / "config.json");
  EXPECT_EQ(config.text.sliding_window, 8);
  EXPECT_GT(r.images.rows.features.size(0), 8);
  expect_naive_reading_caught("divergence/sliding_window",
                              [](LlavaNextConfig& c) { c.text.sliding_layers.clear(); }, "", 1e-2);
}

/// Qwen2 with use_sliding_window: layer 0 full, layer 1 windowed (max_window_layers 1).
TEST(DivergenceParity, Qwen2WindowFromMaxWindowLayers) {
  expect_parity("divergence/qwen2_window_layers");
  expect_naive_reading_caught("divergence/qwen2_window_layers",
                              [](LlavaNextConfig& c) { c.text.sliding_layers.assign(2, true); }, "", 1e-2);
  expect_naive_reading_caught("divergence/qwen2_window_layers",
                              [](LlavaNextConfig& c) { c.text.sliding_layers.clear(); }, "", 1e-2);
}

/// Llama's attention_bias and mlp_bias: the biases are read; without them they would be unused.
TEST(DivergenceParity, LlamaAttentionAndMlpBias) {
  expect_parity("divergence/llama_bias");
  expect_naive_reading_caught("divergence/llama_bias",
                              [](LlavaNextConfig& c) { c.text.qkv_bias = c.text.o_bias = false; },
                              "self_attn.o_proj.bias");
  expect_naive_reading_caught("divergence/llama_bias", [](LlavaNextConfig& c) { c.text.mlp_bias = false; },
                              "mlp.down_proj.bias");
}

/// vision_feature_layer [-1, 1]: two hidden states side by side; the projector takes both.
TEST(DivergenceParity, VisionFeatureLayerList) {
  expect_parity("divergence/feature_layers");
  expect_naive_reading_caught("divergence/feature_layers",
                              [](LlavaNextConfig& c) { c.vision_feature_layers = {-1}; },
                              "multi_modal_projector.linear_1.weight");
}

/// LLaVA-1.5 with "full": the CLS token is one of the image rows (17 here).
TEST(DivergenceParity, FullFeatureStrategyKeepsCls) {
  const Outcome r = expect_parity("divergence/llava_full");
  EXPECT_EQ(r.images.rows.visual_tokens, std::vector<std::int64_t>{17});
  expect_naive_reading_caught("divergence/llava_full",
                              [](LlavaNextConfig& c) { c.vision_feature_select_strategy = "default"; }, "",
                              5e-4);
}

// --- checkpoint tensors nobody computes with ---------------------------------------------------

TEST(CheckpointTensors, KnowinglySkippedTensorsAreAccepted) {
  // The fixture already holds vision layer 3 (after the feature layer) and post_layernorm;
  // older checkpoints also hold rotary and position-id buffers.
  const hired_test::ScratchDir scratch("checkpoint_skip");
  const fs::path dir = rewritten_checkpoint(
      scratch, "divergence/llama_bias", {},
      {{"language_model.model.layers.0.self_attn.rotary_emb.inv_freq", {4}},
       {"vision_tower.vision_model.embeddings.position_ids", {1, 17}}});
  Weights weights = Weights::open(dir);
  EXPECT_NO_THROW(LlavaNextModel(LlavaNextConfig::load(dir / "config.json"), weights));
  const std::vector<std::string> left = weights.untaken();
  EXPECT_NE(std::find(left.begin(), left.end(), "vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight"), left.end());
  EXPECT_NE(std::find(left.begin(), left.end(), "vision_tower.vision_model.post_layernorm.weight"), left.end());
}

TEST(CheckpointTensors, UnusedTensorsAreRefusedByName) {
  const hired_test::ScratchDir scratch("checkpoint_unused");
  const fs::path dir = rewritten_checkpoint(
      scratch, "divergence/llama_bias", {},
      {{"language_model.model.layers.0.self_attn.q_norm.weight", {8}},
       {"vision_tower.visual_projection.weight", {8, 8}}});
  expect_error([&] { LlavaNextModel::load(dir); },
               {dir.string(), "2 tensors", "language_model.model.layers.0.self_attn.q_norm.weight",
                "vision_tower.vision_model.visual_projection.weight", "refused"});
  // A name that only looks like a vision layer's (no layer index) is not skipped.
  const fs::path deep = rewritten_checkpoint(
      scratch, "divergence/llama_bias", {}, {{"vision_tower.vision_model.encoder.layers.x.fc.weight", {2}}});
  expect_error([&] { LlavaNextModel::load(deep); }, {"encoder.layers.x.fc.weight"});
}

}  // namespace
