// LlavaNextModel (hired/llava/model.hpp): the pieces wired together, timed, and the merge of
// image rows into the prompts.
#include "hired/llava/model.hpp"

#include "hired/error.hpp"
#include "hired/io/image.hpp"
#include "hired/io/safetensors.hpp"
#include "hired/llava/stopwatch.hpp"

#include <ATen/ATen.h>

#include <array>

namespace hired::llava {
namespace {

using io::SafeTensors;
using io::TensorView;

void check_supported(const LlavaNextConfig& config) {
  check(config.vision_feature_select_strategy == "default",
        "config: vision_feature_select_strategy '{}' is not supported by anyres packing (default)",
        config.vision_feature_select_strategy);
}

}  // namespace

ImageInputs read_pixel_values(const std::filesystem::path& path, const LlavaNextConfig& config) {
  const SafeTensors file = SafeTensors::load(path.string());
  const TensorView& pv = file.at("pixel_values");
  const std::int64_t side = config.vision.image_size;
  check(pv.shape().size() == 4 && pv.shape()[1] == 3 && pv.shape()[2] == side && pv.shape()[3] == side,
        "{}: pixel_values must be [sum P, 3, {}, {}]", path.string(), side, side);
  const TensorView& sizes = file.at("image_sizes");
  check(sizes.shape().size() == 2 && sizes.shape()[1] == 2 && sizes.shape()[0] > 0,
        "{}: image_sizes must be [B, 2] (height, width)", path.string());
  const std::vector<float> values = pv.to_float();
  const std::vector<std::int64_t> hw = sizes.to_int64();
  std::vector<std::int64_t> partitions;
  for (std::size_t i = 0; i < hw.size(); i += 2) {
    check(hw[i] > 0 && hw[i + 1] > 0, "{}: image_sizes row {} ({}, {}) must be positive",
          path.string(), i / 2, hw[i], hw[i + 1]);
    partitions.push_back(1 + anyres_grid_shape({hw[i], hw[i + 1]}, config.image_grid_pinpoints,
                                                      side).tiles());
  }
  ImageInputs in;
  in.pixel_values = at::tensor(at::ArrayRef<float>(values)).reshape(pv.shape());
  in.image_sizes = at::tensor(at::ArrayRef<std::int64_t>(hw)).reshape({sizes.shape()[0], 2});
  in.num_partitions = at::tensor(at::ArrayRef<std::int64_t>(partitions));
  return in;
}

ImageInputs read_images(std::span<const std::filesystem::path> paths, const LlavaNextConfig& config) {
  check(!paths.empty(), "images: none given");
  const io::PixelBatch batch =
      io::preprocess_images(paths, config.image_grid_pinpoints, config.vision.image_size);
  std::vector<std::int64_t> sizes;
  for (const Size2& s : batch.image_sizes) sizes.insert(sizes.end(), {s.height, s.width});
  const std::int64_t images = static_cast<std::int64_t>(paths.size()), side = batch.tile_px;
  ImageInputs in;
  in.pixel_values = at::tensor(at::ArrayRef<float>(batch.pixel_values)).reshape({-1, 3, side, side});
  in.image_sizes = at::tensor(at::ArrayRef<std::int64_t>(sizes)).reshape({images, 2});
  in.num_partitions = at::tensor(at::ArrayRef<std::int64_t>(batch.partitions));
  return in;
}


/// Without a tokenizer: BOS, the image tokens, and a fixed stand-in for the default prompt's
/// text (the length of Vicuna's tokens for it; the ids carry no meaning for random weights).
std::vector<std::int64_t> default_prompt_ids(std::int64_t images, const LlavaNextConfig& c) {
  std::vector<std::int64_t> ids{c.text.bos_token_id, 3148, 1001, 29901};  // "USER:"
  for (std::int64_t i = 0; i < images; ++i) ids.insert(ids.end(), {c.image_token_id, 13});
  for (std::int64_t i = 0; i < 12; ++i) ids.push_back(3000 + 17 * i);  // the question and "ASSISTANT:"
  for (std::int64_t& id : ids) id %= c.text.vocab_size;
  return ids;
}


std::string default_prompt(std::int64_t images) {
  std::string p = "USER: ";
  for (std::int64_t i = 0; i < images; ++i) p += "<image>\n";
  return p + "What is shown in this image? ASSISTANT:";
}

LlavaNextModel::LlavaNextModel(LlavaNextConfig config, Weights& weights)
    : config_(std::move(config)), options_(weights.options()) {
  config_.validate();
  check_supported(config_);
  vision_ = std::make_shared<VisionTower>(config_, weights);
  projector_ = std::make_shared<Projector>(config_, weights);
  image_newline_ = weights.take("image_newline", {config_.text.hidden_size});
  language_ = std::make_shared<LanguageModel>(config_.text, weights);
}

LlavaNextModel LlavaNextModel::load(const std::filesystem::path& dir, WeightOptions options) {
  const LlavaNextConfig config = LlavaNextConfig::load(dir / "config.json");
  Weights weights = Weights::open(dir, options);
  return LlavaNextModel(config, weights);
}

LlavaNextModel LlavaNextModel::random(const LlavaNextConfig& config, std::uint64_t seed,
                                      WeightOptions options) {
  Weights weights = Weights::random(seed, options);
  return LlavaNextModel(config, weights);
}

at::Tensor LlavaNextModel::project(const at::Tensor& features) const {
  return projector_->forward(features);
}

EncodedImages LlavaNextModel::encode_images(const ImageInputs& images,
                                            const TokenDropper* dropper) const {
  check(images.pixel_values.defined(), "pixel_values: undefined tensor");
  ImageBatch batch;
  batch.num_partitions = images.num_partitions;
  batch.image_sizes = images.image_sizes;
  batch.grid_pinpoints = config_.image_grid_pinpoints;
  batch.tile_px = config_.vision.image_size;
  // Resolve (and validate) the layouts before the expensive tower runs.
  const std::int64_t partitions = total_partitions(image_layouts(batch));
  check(images.pixel_values.dim() == 4 && images.pixel_values.size(0) == partitions,
        "pixel_values: {} partitions, but num_partitions sums to {}",
        images.pixel_values.dim() == 4 ? images.pixel_values.size(0) : -1, partitions);

  EncodedImages out;
  const Stopwatch vision_time;
  const std::array<std::int64_t, 2> capture{0, config_.feature_layer_index()};
  const VisionOutput vision = vision_->forward(
      images.pixel_values, dropper ? std::span<const std::int64_t>(capture) : std::span<const std::int64_t>());
  out.vision_seconds = vision_time.seconds();

  const Stopwatch projection_time;
  const auto project = [this](const at::Tensor& x) { return projector_->forward(x); };
  out.rows = dropper ? hired_llava_next(*dropper, vision.features, vision.cls_attention[0],
                                        vision.cls_attention[1], batch, project, image_newline_)
                     : stock_llava_next(vision.features, batch, project, image_newline_);
  out.projection_seconds = projection_time.seconds();
  return out;
}

PromptEmbeddings LlavaNextModel::merge(std::span<const std::vector<std::int64_t>> prompts,
                                       const EncodedImages& images) const {
  check(!prompts.empty(), "prompts: empty batch");
  const at::Tensor& rows = images.rows.features;
  const at::Tensor lengths_tensor = images.rows.lengths.to(at::kCPU);
  const std::int64_t image_count = lengths_tensor.size(0);
  std::vector<std::int64_t> row_offsets{0};
  for (std::int64_t i = 0; i < image_count; ++i)
    row_offsets.push_back(row_offsets.back() + lengths_tensor[i].item<std::int64_t>());

  const std::int64_t image_token = config_.image_token_id, vocab = config_.text.vocab_size;
  std::int64_t tokens_seen = 0;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    check(!prompts[b].empty(), "prompt {}: empty", b);
    for (const std::int64_t id : prompts[b]) {
      check(id >= 0 && id < vocab, "prompt {}: token id {} is outside the vocabulary [0, {})", b,
            id, vocab);
      tokens_seen += id == image_token;
    }
  }
  check(tokens_seen == image_count,
        "prompts: {} image tokens (id {}) for {} images; each image needs its own token",
        tokens_seen, image_token, image_count);

  std::vector<at::Tensor> sequences;
  PromptEmbeddings out;
  std::int64_t next_image = 0;
  for (const std::vector<std::int64_t>& prompt : prompts) {
    std::vector<at::Tensor> parts;
    std::vector<std::int64_t> text;
    const auto flush_text = [&] {
      if (text.empty()) return;
      const at::Tensor ids = at::tensor(at::ArrayRef<std::int64_t>(text), at::kLong)
                                 .to(options_.device).unsqueeze(0);
      parts.push_back(language_->embed(ids).squeeze(0));
      text.clear();
    };
    for (const std::int64_t id : prompt) {
      if (id != image_token) {
        text.push_back(id);
        continue;
      }
      flush_text();
      parts.push_back(rows.slice(0, row_offsets[next_image], row_offsets[next_image + 1]));
      ++next_image;
    }
    flush_text();
    sequences.push_back(at::cat(parts).to(options_.dtype));
    out.lengths.push_back(sequences.back().size(0));
  }
  const std::int64_t longest = *std::max_element(out.lengths.begin(), out.lengths.end());
  out.embeds = at::zeros({static_cast<std::int64_t>(sequences.size()), longest,
                          config_.text.hidden_size},
                         sequences.front().options());
  for (std::size_t b = 0; b < sequences.size(); ++b)
    out.embeds[static_cast<std::int64_t>(b)].slice(0, 0, out.lengths[b]).copy_(sequences[b]);
  return out;
}

}  // namespace hired::llava
