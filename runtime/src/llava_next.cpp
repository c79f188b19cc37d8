// LlavaNextModel (hired/llava/model.hpp): the pieces wired together, every checkpoint tensor
// accounted for, timed, and the merge of image rows into the prompts.
#include "hired/llava/model.hpp"

#include "hired/error.hpp"
#include "hired/io/image.hpp"
#include "hired/io/pixel_values.hpp"
#include "hired/io/safetensors.hpp"
#include "hired/llava/stopwatch.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace hired::llava {
namespace {

using io::SafeTensors;

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// Why hired does not read a checkpoint tensor that transformers would load, or "" when it has
/// no reason to skip it.
std::string_view skip_reason(std::string_view name, const LlavaNextConfig& config) {
  constexpr std::string_view layers = "vision_tower.vision_model.encoder.layers.";
  if (starts_with(name, layers)) {
    const std::string_view rest = name.substr(layers.size());
    std::int64_t index = 0;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
    if (ec == std::errc() && end != rest.data() && *end == '.' && index >= config.vision_layers_run())
      return "vision layers after the deepest feature layer never run";
  }
  if (starts_with(name, "vision_tower.vision_model.post_layernorm."))
    return "CLIP's post_layernorm feeds only the pooled output, which LLaVA does not use";
  if (name == "vision_tower.vision_model.embeddings.position_ids")
    return "CLIP's position_ids buffer is 0..N, which hired indexes directly";
  if (ends_with(name, ".rotary_emb.inv_freq"))
    return "rotary inv_freq buffers are recomputed from rope_theta, as transformers does";
  return "";
}

/// Every tensor of the checkpoint is used or knowingly skipped; anything else is refused.
void check_every_tensor_accounted_for(const Weights& weights, const LlavaNextConfig& config) {
  std::vector<std::string> unused;
  for (const std::string& name : weights.untaken())
    if (skip_reason(name, config).empty()) unused.push_back(name);
  if (unused.empty()) return;
  constexpr std::size_t shown = 12;
  fail("{}: {} tensor{} of the checkpoint that this config does not compute with: {}{} (a field "
       "hired does not read may need them; refused rather than ignored)",
       weights.origin(), unused.size(), unused.size() == 1 ? "" : "s",
       fmt::join(unused.begin(), unused.begin() + std::min(unused.size(), shown), ", "),
       unused.size() > shown ? fmt::format(", ... ({} more)", unused.size() - shown) : "");
}

/// The model's image inputs from preprocessed images (files or a --pixel-values file).
ImageInputs image_inputs(const io::PixelBatch& batch) {
  std::vector<std::int64_t> sizes;
  for (const Size2& s : batch.image_sizes) sizes.insert(sizes.end(), {s.height, s.width});
  const auto images = static_cast<std::int64_t>(batch.image_sizes.size());
  const std::int64_t side = batch.tile_px;
  ImageInputs in;
  in.pixel_values = at::tensor(at::ArrayRef<float>(batch.pixel_values)).reshape({-1, 3, side, side});
  in.image_sizes = at::tensor(at::ArrayRef<std::int64_t>(sizes)).reshape({images, 2});
  in.num_partitions = at::tensor(at::ArrayRef<std::int64_t>(batch.partitions));
  return in;
}

}  // namespace

ImageInputs read_pixel_values(const std::filesystem::path& path, const LlavaNextConfig& config) {
  // LLaVA-1.5 has one partition per image: no pinpoints.
  const std::span<const Size2> pinpoints = config.architecture == io::Architecture::llava
                                               ? std::span<const Size2>()
                                               : std::span<const Size2>(config.image_grid_pinpoints);
  return image_inputs(io::read_pixel_values(SafeTensors::load(path.string()), pinpoints,
                                            config.vision.image_size));
}

ImageInputs read_images(std::span<const std::filesystem::path> paths, const LlavaNextConfig& config) {
  check(!paths.empty(), "images: none given");
  return image_inputs(
      config.architecture == io::Architecture::llava
          ? io::preprocess_images_clip(paths, config.vision.image_size)
          : io::preprocess_images(paths, config.image_grid_pinpoints, config.vision.image_size));
}

io::AnyresTiles image_partitions(const std::filesystem::path& path, const LlavaNextConfig& config) {
  const io::RgbImage image = io::load_image(path);
  const std::int64_t side = config.vision.image_size;
  return config.architecture == io::Architecture::llava
             ? io::clip_center_crop(image, side, side)
             : io::anyres_tiles(image, config.image_grid_pinpoints, side);
}

/// Without a tokenizer: BOS, the image tokens, and a fixed stand-in for the default prompt's
/// text (the length of Vicuna's tokens for it; the ids carry no meaning for random weights).
std::vector<std::int64_t> default_prompt_ids(std::int64_t images, const LlavaNextConfig& c) {
  std::vector<std::int64_t> ids{3148, 1001, 29901};  // "USER:"
  if (c.text.bos_token_id) ids.insert(ids.begin(), *c.text.bos_token_id);
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
  vision_ = std::make_shared<VisionTower>(config_, weights);
  projector_ = std::make_shared<Projector>(config_, weights);
  if (config_.has_image_newline()) image_newline_ = weights.take("image_newline", {config_.text.hidden_size});
  language_ = std::make_shared<LanguageModel>(config_.text, weights);
  check_every_tensor_accounted_for(weights, config_);
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

  if (dropper) {
    check(!config_.keeps_cls(),
          "config: vision_feature_select_strategy 'full' keeps the CLS token among the image "
          "rows; HiRED selects among patch tokens only, so it runs with 'default' only");
    check(config_.feature_layer_index() >= 0,
          "config: vision_feature_layer takes the embeddings only; HiRED needs the CLS "
          "attention of an encoder layer");
  }
  EncodedImages out;
  const Stopwatch vision_time;
  const std::array<std::int64_t, 2> capture{0, config_.feature_layer_index()};
  const VisionOutput vision = vision_->forward(
      images.pixel_values, dropper ? std::span<const std::int64_t>(capture) : std::span<const std::int64_t>());
  out.vision_seconds = vision_time.seconds();

  const Stopwatch projection_time;
  const auto project = [this](const at::Tensor& x) { return projector_->forward(x); };
  if (config_.has_image_newline()) {
    out.rows = dropper ? hired_llava_next(*dropper, vision.features, vision.cls_attention[0],
                                          vision.cls_attention[1], batch, project, image_newline_)
                       : stock_llava_next(vision.features, batch, project, image_newline_);
  } else if (dropper) {
    // One partition and no image_newline: the kept tokens are the image's rows. The splice
    // reads the newline's width only; under policy none it writes no newline row.
    DropConfig no_newline = dropper->config();
    no_newline.newline = NewlinePolicy::none;
    const at::Tensor width_only = at::zeros({config_.text.hidden_size}, vision.features.options());
    out.rows = hired_llava_next(TokenDropper(no_newline), vision.features, vision.cls_attention[0],
                                vision.cls_attention[1], batch, project, width_only);
  } else {
    // transformers' LlavaModel: every token of every image, projected, in order.
    const std::int64_t count = vision.features.size(0), tokens = vision.features.size(1);
    out.rows.features = project(vision.features.reshape({count * tokens, vision.features.size(2)}));
    out.rows.lengths = at::full({count}, tokens, at::TensorOptions(at::kLong).device(out.rows.features.device()));
    out.rows.visual_tokens.assign(static_cast<std::size_t>(count), tokens);
  }
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
