// LLaVA-NeXT and LLaVA-1.5 end to end: CLIP vision tower (CLS rows captured in the same pass),
// HiRED or stock packing, projector, the merge of image rows at the prompt's image tokens,
// greedy decoding.
//
//   auto model = hired::llava::LlavaNextModel::load("llava-v1.6-vicuna-7b-hf", {at::kHalf, at::kCUDA});
//   hired::TokenDropper dropper(config);             // or nullptr for stock LLaVA-Next
//   auto images = model.encode_images({pixel_values, image_sizes, num_partitions}, &dropper);
//   auto prompt = model.merge({prompt_ids}, images);
//   auto out = generate_greedy(model.language(), prompt.embeds, prompt.lengths, {});
#pragma once

#include "hired/io/image.hpp"
#include "hired/llava/config.hpp"
#include "hired/llava/language.hpp"
#include "hired/llava/vision.hpp"
#include "hired/llava/weights.hpp"
#include "hired/torch/llava_next.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace hired::llava {

/// Preprocessed images of a batch (see preprocess.hpp).
struct ImageInputs {
  at::Tensor pixel_values;    // [sum P, 3, S, S], any float dtype
  at::Tensor image_sizes;     // [I, 2] int64: original (height, width)
  at::Tensor num_partitions;  // [I] int64: 1 + tiles of each image
};

/// Image rows for the language model, and what producing them cost.
struct EncodedImages {
  LlavaNextImageRows rows;        // [rows, Dt] in packing order, lengths per image
  double vision_seconds = 0;      // vision tower (with CLS-row capture)
  double projection_seconds = 0;  // selection + projector + packing
};

/// The language model's input for a batch of prompts.
struct PromptEmbeddings {
  at::Tensor embeds;                  // [B, L_max, D], each row's tokens first, zeros after
  std::vector<std::int64_t> lengths;  // [B]: valid positions of each row
};

/// Image files through the architecture's preprocessing (hired/io/image.hpp: anyres tiles for
/// LLaVA-NeXT, CLIP's centre crop for LLaVA-1.5) as one batch, in order.
ImageInputs read_images(std::span<const std::filesystem::path> paths, const LlavaNextConfig& config);

/// One image file's partitions as the same preprocessing cuts them, in uint8 before
/// normalisation: what an overlay of the selection is drawn on.
io::AnyresTiles image_partitions(const std::filesystem::path& path, const LlavaNextConfig& config);

/// Preprocessed images from a safetensors file: `pixel_values` [sum P, 3, S, S] (F32/F16/BF16)
/// and `image_sizes` [I, 2] (height, width); partitions follow from the sizes and the config's
/// grid pinpoints (one per image for LLaVA-1.5). Errors name the file and the tensor.
ImageInputs read_pixel_values(const std::filesystem::path& path, const LlavaNextConfig& config);

/// Vicuna's one-turn chat prompt with one `<image>` per image:
/// "USER: <image>\nWhat is shown in this image? ASSISTANT:".
std::string default_prompt(std::int64_t images);

/// The same without a tokenizer (random weights): BOS, the image tokens, and stand-in text ids
/// of about the length Vicuna's tokenizer gives the default prompt.
std::vector<std::int64_t> default_prompt_ids(std::int64_t images, const LlavaNextConfig& config);

/// A LLaVA-NeXT (llava_next) or LLaVA-1.5 (llava) model.
class LlavaNextModel {
 public:
  /// Takes every tensor the config computes with; a checkpoint tensor it neither uses nor
  /// knowingly skips (vision layers past the deepest feature layer, CLIP's post_layernorm and
  /// position_ids buffer, rotary inv_freq buffers) makes it throw hired::Error naming them.
  LlavaNextModel(LlavaNextConfig config, Weights& weights);

  /// A llava-hf directory: config.json and the safetensors weights.
  static LlavaNextModel load(const std::filesystem::path& dir, WeightOptions options = {});
  /// The architecture of `config` with seeded random weights.
  static LlavaNextModel random(const LlavaNextConfig& config, std::uint64_t seed,
                               WeightOptions options = {});

  const LlavaNextConfig& config() const { return config_; }
  const WeightOptions& options() const { return options_; }
  const VisionTower& vision() const { return *vision_; }
  const LanguageModel& language() const { return *language_; }
  /// The projector as the splice calls it: [M, Dv * F] -> [M, Dt].
  at::Tensor project(const at::Tensor& features) const;
  /// [Dt]; undefined for LLaVA-1.5, which has none.
  const at::Tensor& image_newline() const { return image_newline_; }

  /// The vision tower, then HiRED with `dropper` (CLS rows of layer 0 and of the deepest
  /// feature layer) or, when `dropper` is null, the stock packing (LLaVA-NeXT: unpad and
  /// image_newline rows; LLaVA-1.5: every token, no newline); the projector sees only kept
  /// tokens. LLaVA-1.5 has no image_newline, so no newline rows are packed whatever the
  /// dropper's newline policy: its image rows are exactly the kept tokens. HiRED needs the
  /// "default" feature strategy (it selects among patch tokens) and an encoder feature layer.
  EncodedImages encode_images(const ImageInputs& images, const TokenDropper* dropper) const;

  /// Each prompt's image tokens replaced, in order, by the next image's rows. Every image must
  /// be used exactly once; a prompt may hold several image tokens or none.
  PromptEmbeddings merge(std::span<const std::vector<std::int64_t>> prompts,
                         const EncodedImages& images) const;

 private:
  LlavaNextConfig config_;
  WeightOptions options_;
  std::shared_ptr<VisionTower> vision_;
  std::shared_ptr<Projector> projector_;
  std::shared_ptr<LanguageModel> language_;
  at::Tensor image_newline_;
};

}  // namespace hired::llava
