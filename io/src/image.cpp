// LLaVA-Next preprocessing: image decoding (stb_image) and transformers' anyres image
// processor, including Pillow's bicubic resampling, in plain C++.
#include "hired/io/image.hpp"

#include "hired/error.hpp"
#include "hired/io/file.hpp"
#include "image_format.hpp"

// Debian's libstb-dev ships the stb implementations compiled in libstb; only declarations here.
#include <stb/stb_image.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <system_error>

namespace hired::io {

namespace {

constexpr std::int64_t kMaxSide = std::int64_t{1} << 24;  // stb_image's own default limit

std::string image_label(std::string_view origin) { return fmt::format("image '{}'", origin); }

// --- Pillow-compatible bicubic resampling ------------------------------------------------
//
// Each output sample is a weighted sum of the input samples under a cubic kernel centred on
// the output pixel's centre mapped into the input. When shrinking, the kernel is stretched by
// the scale (it must cover every input pixel that lands in the output pixel, or the result
// aliases) and its height divided accordingly; weights are normalised to sum to 1, then stored
// as fixed-point integers, and each pass rounds its result back to uint8. A pass whose size
// does not change is skipped.

// Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC), support 2.
double cubic_kernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Fixed-point weights: 8 bits of data, a sign bit and headroom for weight sums above 1 (the
// kernel's negative lobes) still fit a 32-bit accumulator.
constexpr int kWeightBits = 22;

struct AxisWeights {
  std::int64_t taps = 0;              // weights stored per output sample
  std::vector<std::int64_t> first;    // first input index of each output sample
  std::vector<std::int64_t> count;    // input samples it reads
  std::vector<std::int32_t> weights;  // [out, taps], fixed point
};

AxisWeights axis_weights(std::int64_t in_size, std::int64_t out_size) {
  const double scale = double(in_size) / double(out_size);
  const double stretch = std::max(scale, 1.0);
  const double inv_stretch = 1.0 / stretch;
  const double support = 2.0 * stretch;
  AxisWeights w;
  w.taps = static_cast<std::int64_t>(std::ceil(support)) * 2 + 1;
  w.first.resize(static_cast<std::size_t>(out_size));
  w.count.resize(static_cast<std::size_t>(out_size));
  w.weights.assign(static_cast<std::size_t>(out_size * w.taps), 0);
  std::vector<double> k(static_cast<std::size_t>(w.taps));
  for (std::int64_t o = 0; o < out_size; ++o) {
    const double center = (double(o) + 0.5) * scale;
    // Truncation then clamping: the input window [lo, hi) under the kernel's support.
    const auto lo = std::max<std::int64_t>(static_cast<std::int64_t>(center - support + 0.5), 0);
    const auto hi = std::min<std::int64_t>(static_cast<std::int64_t>(center + support + 0.5), in_size);
    const std::int64_t n = hi - lo;
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      k[i] = cubic_kernel((double(lo + i) - center + 0.5) * inv_stretch);
      sum += k[i];
    }
    std::int32_t* out = w.weights.data() + o * w.taps;
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = sum != 0.0 ? k[i] / sum : k[i];
      const double fixed = v * double(1 << kWeightBits);
      // Round half away from zero, as (int)(x +- 0.5).
      out[i] = static_cast<std::int32_t>(v < 0.0 ? fixed - 0.5 : fixed + 0.5);
    }
    w.first[o] = lo;
    w.count[o] = n;
  }
  return w;
}

std::uint8_t to_u8(std::int64_t acc) {
  if (acc <= 0) return 0;
  return static_cast<std::uint8_t>(std::min<std::int64_t>(acc >> kWeightBits, 255));
}

constexpr std::int64_t kHalf = std::int64_t{1} << (kWeightBits - 1);

RgbImage resize_horizontal(const RgbImage& in, std::int64_t out_width) {
  const AxisWeights w = axis_weights(in.width, out_width);
  RgbImage out{in.height, out_width,
               std::vector<std::uint8_t>(static_cast<std::size_t>(in.height * out_width * 3))};
  for (std::int64_t y = 0; y < in.height; ++y) {
    const std::uint8_t* row = in.pixels.data() + y * in.width * 3;
    std::uint8_t* dst = out.pixels.data() + y * out_width * 3;
    for (std::int64_t x = 0; x < out_width; ++x) {
      const std::int32_t* k = w.weights.data() + x * w.taps;
      const std::uint8_t* src = row + w.first[x] * 3;
      std::int64_t r = kHalf, g = kHalf, b = kHalf;
      for (std::int64_t i = 0; i < w.count[x]; ++i) {
        r += std::int64_t{src[i * 3 + 0]} * k[i];
        g += std::int64_t{src[i * 3 + 1]} * k[i];
        b += std::int64_t{src[i * 3 + 2]} * k[i];
      }
      dst[x * 3 + 0] = to_u8(r);
      dst[x * 3 + 1] = to_u8(g);
      dst[x * 3 + 2] = to_u8(b);
    }
  }
  return out;
}

RgbImage resize_vertical(const RgbImage& in, std::int64_t out_height) {
  const AxisWeights w = axis_weights(in.height, out_height);
  const std::int64_t row_bytes = in.width * 3;
  RgbImage out{out_height, in.width,
               std::vector<std::uint8_t>(static_cast<std::size_t>(out_height * row_bytes))};
  std::vector<std::int64_t> acc(static_cast<std::size_t>(row_bytes));
  for (std::int64_t y = 0; y < out_height; ++y) {
    const std::int32_t* k = w.weights.data() + y * w.taps;
    std::fill(acc.begin(), acc.end(), kHalf);
    for (std::int64_t i = 0; i < w.count[y]; ++i) {
      const std::uint8_t* src = in.pixels.data() + (w.first[y] + i) * row_bytes;
      for (std::int64_t j = 0; j < row_bytes; ++j) acc[j] += std::int64_t{src[j]} * k[i];
    }
    std::uint8_t* dst = out.pixels.data() + y * row_bytes;
    for (std::int64_t j = 0; j < row_bytes; ++j) dst[j] = to_u8(acc[j]);
  }
  return out;
}

void check_image(const RgbImage& image, const char* what) {
  check(image.height > 0 && image.width > 0 && image.height <= kMaxSide &&
            image.width <= kMaxSide,
        "{}: size ({}, {}) must be positive and at most {} a side", what, image.height,
        image.width, kMaxSide);
  const auto expected = static_cast<std::size_t>(image.height * image.width * 3);
  check(image.pixels.size() == expected, "{}: {} pixel bytes for ({}, {}) RGB, expected {}",
        what, image.pixels.size(), image.height, image.width, expected);
}

// Copies the HWC pixels of `src` whose canvas position (y + top, x + left) falls inside the
// tile at (row0, col0) of size s into the CHW tile; the rest stays 0 (the pad fill).
void put_tile(const RgbImage& src, std::int64_t top, std::int64_t left, std::int64_t row0,
              std::int64_t col0, std::int64_t s, std::uint8_t* tile) {
  const std::int64_t plane = s * s;
  for (std::int64_t y = 0; y < s; ++y) {
    const std::int64_t sy = row0 + y - top;
    if (sy < 0 || sy >= src.height) continue;
    for (std::int64_t x = 0; x < s; ++x) {
      const std::int64_t sx = col0 + x - left;
      if (sx < 0 || sx >= src.width) continue;
      const std::uint8_t* p = src.pixels.data() + (sy * src.width + sx) * 3;
      for (std::int64_t c = 0; c < 3; ++c) tile[c * plane + y * s + x] = p[c];
    }
  }
}

// The size an image file declares (or decoded to), within the limits of decode_image.
void check_decoded_size(std::int64_t w, std::int64_t h, std::int64_t max_pixels,
                        std::string_view origin) {
  check(w > 0 && h > 0, "{}: {} x {} is not a positive size", image_label(origin), h, w);
  check(w <= kMaxSide && h <= kMaxSide, "{}: {} x {} is larger than {} pixels a side",
        image_label(origin), h, w, kMaxSide);
  check(w * h <= max_pixels,
        "{}: {} x {} is {} pixels, more than the limit of {} (a decompression bomb?)",
        image_label(origin), h, w, w * h, max_pixels);
}

// What one stb load returned: owned (freed on every path), its size checked again (the size
// stb decoded to is the one that counts), and an RGB image of that size to fill.
template <class Pixel>
std::unique_ptr<Pixel, decltype(&stbi_image_free)> take_decoded(Pixel* pixels, int w, int h,
                                                                std::int64_t max_pixels,
                                                                std::string_view origin) {
  if (pixels == nullptr)
    fail("{}: cannot decode the image ({})", image_label(origin), stbi_failure_reason());
  std::unique_ptr<Pixel, decltype(&stbi_image_free)> owned(pixels, stbi_image_free);
  check_decoded_size(w, h, max_pixels, origin);
  return owned;
}

RgbImage blank_image(int w, int h) {
  return RgbImage{h, w, std::vector<std::uint8_t>(static_cast<std::size_t>(h) * w * 3)};
}

}  // namespace

RgbImage decode_image(std::span<const std::uint8_t> bytes, std::string_view origin,
                      std::int64_t max_pixels) {
  check(max_pixels > 0 && max_pixels <= kMaxImagePixels,
        "decode_image: max_pixels {} is outside [1, {}]", max_pixels, kMaxImagePixels);
  check(!bytes.empty(), "{}: the file is empty", image_label(origin));
  check(bytes.size() <= static_cast<std::size_t>(INT_MAX), "{}: {} bytes is too large to decode",
        image_label(origin), bytes.size());
  const int length = static_cast<int>(bytes.size());
  // The header alone first: the limits hold before the decoder allocates anything.
  const detail::ImageFile file = detail::check_image_file(bytes, image_label(origin));
  if (file.declared)
    check_decoded_size(file.declared->width, file.declared->height, max_pixels, origin);
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(bytes.data(), length, &w, &h, &channels))
    fail("{}: not a decodable image ({})", image_label(origin), stbi_failure_reason());
  check_decoded_size(w, h, max_pixels, origin);
  if (channels == 1 && stbi_is_16_bit_from_memory(bytes.data(), length)) {
    // 16-bit grey: Pillow opens it as mode I;16 and its RGB conversion saturates at 255 (it
    // does not take the high byte, which is what stb's 8-bit loader would do).
    stbi_us* loaded = stbi_load_16_from_memory(bytes.data(), length, &w, &h, &channels, 1);
    const auto grey = take_decoded(loaded, w, h, max_pixels, origin);
    RgbImage image = blank_image(w, h);
    for (std::size_t i = 0; i < static_cast<std::size_t>(h) * w; ++i)
      for (std::size_t c = 0; c < 3; ++c)
        image.pixels[i * 3 + c] = static_cast<std::uint8_t>(std::min<unsigned>(grey.get()[i], 255u));
    return image;
  }
  // RGBA for every kind of file: transparency (alpha or a tRNS colour key) is then composited
  // onto white like transformers' convert_to_rgb; an opaque file gets alpha 255 (a no-op).
  stbi_uc* loaded = stbi_load_from_memory(bytes.data(), length, &w, &h, &channels, 4);
  const auto owned = take_decoded(loaded, w, h, max_pixels, origin);
  const stbi_uc* rgba = owned.get();
  RgbImage image = blank_image(w, h);
  const std::size_t n = static_cast<std::size_t>(h) * w;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned a = rgba[i * 4 + 3];
    for (std::size_t c = 0; c < 3; ++c) {
      const unsigned v = rgba[i * 4 + c];
      // round((v * a + 255 * (255 - a)) / 255): Pillow's alpha_composite onto opaque white.
      image.pixels[i * 3 + c] =
          static_cast<std::uint8_t>((v * a + 255u * (255u - a) + 127u) / 255u);
    }
  }
  return image;
}

RgbImage load_image(const std::filesystem::path& path) {
  const std::string name = path.string();
  const std::string bytes = read_file(path, image_label(name));
  return decode_image({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, name);
}

RgbImage resize_bicubic(const RgbImage& image, Size2 size) {
  check_image(image, "resize_bicubic: image");
  check(size.height > 0 && size.width > 0 && size.height <= kMaxSide && size.width <= kMaxSide,
        "resize_bicubic: size ({}, {}) must be positive and at most {} a side", size.height,
        size.width, kMaxSide);
  const bool horizontal = image.width != size.width;
  const bool vertical = image.height != size.height;
  // The pass order changes the result (each pass rounds to uint8). Pillow 13 runs the vertical
  // pass first when the height shrinks by more than twice as many pixels as the width does
  // (a cheaper second pass); before 13 it always ran the horizontal pass first.
  const std::int64_t height_cut = image.height - size.height;
  const bool vertical_first = height_cut > 0 && height_cut > 2 * (image.width - size.width);
  if (vertical_first) {
    RgbImage out = resize_vertical(image, size.height);
    return horizontal ? resize_horizontal(out, size.width) : out;
  }
  RgbImage out = horizontal ? resize_horizontal(image, size.width) : image;
  return vertical ? resize_vertical(out, size.height) : out;
}

AnyresTiles anyres_tiles(const RgbImage& image, std::span<const Size2> pinpoints,
                         std::int64_t tile_px) {
  check_image(image, "anyres_tiles: image");
  check(tile_px > 0, "anyres_tiles: tile_px {} must be positive", tile_px);
  AnyresTiles t;
  t.image_size = image.size();
  t.tile_px = tile_px;
  t.best_resolution = select_best_resolution(t.image_size, pinpoints);
  t.grid = anyres_grid_shape(t.image_size, pinpoints, tile_px);
  t.partitions = 1 + t.grid.tiles();
  const std::int64_t tile_bytes = 3 * tile_px * tile_px;
  t.tiles.assign(static_cast<std::size_t>(t.partitions * tile_bytes), 0);

  // Partition 0: the whole image squashed to one tile.
  const RgbImage base = resize_bicubic(image, {tile_px, tile_px});
  put_tile(base, 0, 0, 0, 0, tile_px, t.tiles.data());

  // Tiles of the aspect-preserving resize, centred on a black canvas of the best resolution.
  const Placement place = anyres_placement(t.image_size, t.best_resolution);
  const RgbImage resized = resize_bicubic(image, place.resized);
  for (std::int64_t r = 0; r < t.grid.rows; ++r)
    for (std::int64_t c = 0; c < t.grid.cols; ++c)
      put_tile(resized, place.pad_top, place.pad_left, r * tile_px, c * tile_px, tile_px,
               t.tiles.data() + (1 + r * t.grid.cols + c) * tile_bytes);
  return t;
}

AnyresTiles clip_center_crop(const RgbImage& image, std::int64_t shortest_edge, std::int64_t crop) {
  check_image(image, "clip_center_crop: image");
  check(shortest_edge > 0 && shortest_edge <= kMaxSide, "clip_center_crop: shortest_edge {} must be in [1, {}]",
        shortest_edge, kMaxSide);
  check(crop > 0 && crop <= kMaxSide, "clip_center_crop: crop {} must be in [1, {}]", crop, kMaxSide);
  // get_resize_output_image_size(default_to_square=False): int(size * long / short), the
  // product exact in integers, the quotient a correctly rounded double like Python's.
  const bool portrait = image.width <= image.height;
  const std::int64_t short_side = portrait ? image.width : image.height;
  const std::int64_t long_side = portrait ? image.height : image.width;
  const auto long_edge = static_cast<std::int64_t>(double(shortest_edge * long_side) / double(short_side));
  check(long_edge <= kMaxSide, "clip_center_crop: the resized long edge {} exceeds {}", long_edge, kMaxSide);
  const RgbImage resized = resize_bicubic(
      image, portrait ? Size2{long_edge, shortest_edge} : Size2{shortest_edge, long_edge});

  AnyresTiles t;
  t.image_size = image.size();
  t.best_resolution = {crop, crop};
  t.tile_px = crop;
  t.partitions = 1;
  t.tiles.assign(static_cast<std::size_t>(3 * crop * crop), 0);
  // center_crop: the window's corner in the resized image; where the image is smaller than the
  // crop, transformers pads it centred first (top_pad = ceil((crop - h) / 2)) and crops that.
  const auto corner = [crop](std::int64_t size) {
    return size >= crop ? (size - crop) / 2 : -((crop - size + 1) / 2);
  };
  put_tile(resized, 0, 0, corner(resized.height), corner(resized.width), crop, t.tiles.data());
  return t;
}

void normalize_clip(std::span<const std::uint8_t> tiles, std::span<float> out,
                    std::int64_t plane) {
  check(plane > 0, "normalize_clip: plane {} must be positive", plane);
  check(out.size() == tiles.size(), "normalize_clip: out has {} floats for {} pixel bytes",
        out.size(), tiles.size());
  check(tiles.size() % static_cast<std::size_t>(3 * plane) == 0,
        "normalize_clip: {} bytes is not a whole number of [3, {}] tiles", tiles.size(), plane);
  // 256 values per channel: a table holds the exact float32 results.
  std::array<std::array<float, 256>, 3> table{};
  for (std::size_t c = 0; c < 3; ++c) {
    const float mean = static_cast<float>(clip_mean[c]);
    const float stdev = static_cast<float>(clip_std[c]);
    for (int v = 0; v < 256; ++v) {
      const auto x = static_cast<float>(double(v) * (1.0 / 255.0));  // rescale: float64, stored float32
      table[c][static_cast<std::size_t>(v)] = (x - mean) / stdev;
    }
  }
  const auto p = static_cast<std::size_t>(plane);
  for (std::size_t i = 0; i < tiles.size(); ++i) out[i] = table[(i / p) % 3][tiles[i]];
}

std::vector<float> normalize_clip(const AnyresTiles& tiles) {
  std::vector<float> out(tiles.tiles.size());
  normalize_clip(tiles.tiles, out, tiles.tile_px * tiles.tile_px);
  return out;
}

namespace {

/// Each file through `partition` (an image to its AnyresTiles), normalised into one batch.
template <class Partition>
PixelBatch preprocess_each(std::span<const std::filesystem::path> files, std::int64_t tile_px,
                           Partition partition) {
  PixelBatch batch;
  batch.tile_px = tile_px;
  for (const auto& file : files) {
    const AnyresTiles tiles = partition(load_image(file));
    const std::size_t at = batch.pixel_values.size();
    batch.pixel_values.resize(at + tiles.tiles.size());
    normalize_clip(tiles.tiles, std::span<float>(batch.pixel_values).subspan(at), tile_px * tile_px);
    batch.image_sizes.push_back(tiles.image_size);
    batch.partitions.push_back(tiles.partitions);
  }
  return batch;
}

}  // namespace

PixelBatch preprocess_images(std::span<const std::filesystem::path> files,
                             std::span<const Size2> pinpoints, std::int64_t tile_px) {
  return preprocess_each(files, tile_px, [&](const RgbImage& image) {
    return anyres_tiles(image, pinpoints, tile_px);
  });
}

PixelBatch preprocess_images_clip(std::span<const std::filesystem::path> files, std::int64_t tile_px) {
  return preprocess_each(files, tile_px, [&](const RgbImage& image) {
    return clip_center_crop(image, tile_px, tile_px);
  });
}

}  // namespace hired::io
