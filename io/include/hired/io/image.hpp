// LLaVA image preprocessing without LibTorch: image files to the anyres tiles and normalised
// pixel values that Hugging Face transformers' LlavaNextImageProcessor produces, and to the one
// centre-cropped tile of CLIPImageProcessor (LLaVA-1.5).
//
//   RgbImage img = load_image("photo.png");                          // RGB8, HWC
//   AnyresTiles t = anyres_tiles(img, config.image_grid_pinpoints);  // uint8 [P, 3, 336, 336]
//   std::vector<float> pixel_values = normalize_clip(t);            // float [P, 3, 336, 336]
//
// Matches the processor step for step: select_best_resolution, aspect-preserving resize,
// centred pad with black (0 before normalisation), tiles row-major, partition 0 = the whole
// image resized to tile_px x tile_px; resampling is Pillow's BICUBIC on uint8 (separable
// convolution, kernel widened by the scale when downsampling, 22-bit fixed-point weights, each
// pass rounded to uint8, the pass order of Pillow 13); then transformers' rescale (float64
// product, stored as float32) and CLIP normalisation (float32). For PNG and other lossless
// files the tiles are byte-identical to transformers'; JPEG decoders differ (stb_image vs
// Pillow's libjpeg-turbo), so JPEG tiles differ by up to about 3 levels in some pixels.
#pragma once

#include "hired/geometry.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace hired::io {

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC).
struct RgbImage {
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::vector<std::uint8_t> pixels;  // height * width * 3

  Size2 size() const { return {height, width}; }
};

/// The most pixels an image file may have: Pillow's limit (twice its MAX_IMAGE_PIXELS), beyond
/// which transformers' Image.open refuses a file as a decompression bomb. Decoding one this
/// large takes about 7 bytes a pixel (1.25 GB).
inline constexpr std::int64_t kMaxImagePixels = 2 * 89'478'485;

/// Decodes an image file (PNG, JPEG, GIF (first frame) or BMP, via stb_image) to
/// RGB8 the way transformers' `convert_to_rgb` does: grey is replicated, transparency is
/// composited onto white; 16-bit colour keeps the high byte and 16-bit grey saturates at 255
/// (Pillow's conversions of those modes). Throws hired::Error naming the path for a missing,
/// unreadable or empty file, another format (PNM, PSD, HDR, TGA, WebP, ...: by name where it is
/// recognised), a file whose structure would mislead the decoder (src/image_format.hpp), data
/// that does not decode, and images with a zero or absurd (> 2^24) side or more than
/// kMaxImagePixels pixels; the size is read from the file's header before anything is decoded.
RgbImage load_image(const std::filesystem::path& path);

/// The same from bytes in memory; `origin` names them in messages. `max_pixels` (at most
/// kMaxImagePixels) lowers the pixel limit, which bounds the memory decoding takes.
RgbImage decode_image(std::span<const std::uint8_t> bytes, std::string_view origin,
                      std::int64_t max_pixels = kMaxImagePixels);

/// Pillow's `Image.resize(size, Image.BICUBIC)` on an RGB8 image, bit for bit with Pillow >= 13
/// (which runs the vertical pass first when the height shrinks by more than twice as many
/// pixels as the width; older Pillow always starts horizontally, so images shrunk mostly in
/// height differ from Pillow < 13 by a few levels in some pixels).
RgbImage resize_bicubic(const RgbImage& image, Size2 size);

/// The partitions of one image, before rescale and normalisation: anyres tiles, or CLIP's
/// single centre crop (one partition, no grid).
struct AnyresTiles {
  Size2 image_size;       // (height, width) of the input: the model's `image_sizes` row
  Size2 best_resolution;  // the chosen pinpoint
  GridShape grid;         // tile rows x cols of best_resolution
  std::int64_t tile_px = 336;
  std::int64_t partitions = 0;     // 1 + grid.tiles()
  std::vector<std::uint8_t> tiles;  // [partitions, 3, tile_px, tile_px], channel planes (CHW)
};

/// LlavaNextImageProcessor's patches of `image` for the given `image_grid_pinpoints`
/// ((height, width), multiples of tile_px): partition 0 is the image resized to
/// tile_px x tile_px, then the tiles of the resized + centred-padded image, row-major.
AnyresTiles anyres_tiles(const RgbImage& image, std::span<const Size2> pinpoints,
                         std::int64_t tile_px = 336);

/// CLIPImageProcessor's one partition (LLaVA-1.5's preprocessor_config.json): the image
/// resized so its shortest edge is `shortest_edge` (the long edge int(shortest_edge * long /
/// short), Pillow's bicubic), then the centred `crop` x `crop` window (top = (h - crop) / 2,
/// left = (w - crop) / 2), zero-padded where the resized image is smaller, as transformers'
/// center_crop does. `best_resolution` is (crop, crop); the grid is 0x0.
AnyresTiles clip_center_crop(const RgbImage& image, std::int64_t shortest_edge, std::int64_t crop);

/// OPENAI_CLIP_MEAN / OPENAI_CLIP_STD of transformers, per RGB channel.
inline constexpr std::array<double, 3> clip_mean{0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> clip_std{0.26862954, 0.26130258, 0.27577711};

/// Rescale + normalise channel-planar tiles ([N, 3, plane] with plane = tile_px^2) into `out`
/// (same length) exactly as transformers does: x = float32(double(u8) * (1/255)), then
/// (x - float32(mean[c])) / float32(std[c]) in float32.
void normalize_clip(std::span<const std::uint8_t> tiles, std::span<float> out,
                    std::int64_t plane);

/// The model's `pixel_values` for these tiles: float [partitions, 3, tile_px, tile_px].
std::vector<float> normalize_clip(const AnyresTiles& tiles);

/// Image files preprocessed for one model call, in order: what the image processor gives the
/// model (pixel_values, image_sizes) plus each image's partition count.
struct PixelBatch {
  std::int64_t tile_px = 336;
  std::vector<float> pixel_values;       // [sum(partitions), 3, tile_px, tile_px]
  std::vector<Size2> image_sizes;        // (height, width) per image
  std::vector<std::int64_t> partitions;  // 1 + grid tiles, per image
};

/// load_image + anyres_tiles + normalize_clip for each file.
PixelBatch preprocess_images(std::span<const std::filesystem::path> files,
                             std::span<const Size2> pinpoints, std::int64_t tile_px = 336);

/// load_image + clip_center_crop (shortest edge and crop both `tile_px`, as llava-hf's LLaVA-1.5
/// processors say) + normalize_clip for each file: one partition per image.
PixelBatch preprocess_images_clip(std::span<const std::filesystem::path> files,
                                  std::int64_t tile_px = 336);

}  // namespace hired::io
