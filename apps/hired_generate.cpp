// hired_generate: LLaVA-NeXT or LLaVA-1.5 with HiRED on one prompt, from a Hugging Face
// llava-hf directory or a preset with random weights. Progress and timings go to stderr; the
// last line of stdout is a JSON summary. Bad input: exit status 2 and one line on stderr naming the file or flag.
#include "cli_args.hpp"
#include "hired/error.hpp"
#include "hired/llava/model.hpp"
#include "hired/llava/stopwatch.hpp"
#include "hired/io/canvas.hpp"
#include "hired/io/image.hpp"
#include "hired/io/overlay.hpp"
#include "hired/io/tokenizer.hpp"
#include "hired/io/safetensors.hpp"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using hired::check;
using hired::fail;

constexpr std::string_view usage =
    "usage: hired_generate (--model DIR | --preset NAME --random-weights [--seed S])\n"
    "                      (--image PATH [--image PATH ...] | --pixel-values FILE.safetensors)\n"
    "                      [--prompt TEXT | --prompt-ids 1,2,3] [--max-new-tokens N] [--ignore-eos]\n"
    "                      [--budget-rate R | --budget-tokens T] [--alpha A]\n"
    "                      [--mode exact|reference] [--newline every_row|kept_rows|none]\n"
    "                      [--dtype fp32|fp16|bf16] [--device cpu|cuda] [--dump FILE.safetensors]\n"
    "                      [--overlay FILE.png]\n"
    "\n"
    "--model reads a llava-hf LLaVA-NeXT (llava_next) or LLaVA-1.5 (llava) checkpoint;\n"
    "--preset builds a real checkpoint's shape with random weights: mini (CPU-sized),\n"
    "llava-1.5-7b, llava-next-7b, llava-next-vicuna-13b, llava-next-mistral-7b,\n"
    "llava-next-34b, llava-next-72b, llava-next-110b.\n"
    "Without a dropping flag the model runs stock LLaVA; any of --budget-rate,\n"
    "--budget-tokens, --alpha, --mode, --newline turns HiRED on (exact mode, rate 0.2,\n"
    "alpha 0.5 by default); LLaVA-1.5 has no image_newline, so --newline changes nothing there.\n"
    "--prompt needs DIR/tokenizer.model (Yi's and Qwen's chat formats: use --prompt-ids);\n"
    "each <image> in it (or each image token id in --prompt-ids) takes the next image.\n"
    "The default prompt is Vicuna's\n"
    "\"USER: <image>\\nWhat is shown in this image? ASSISTANT:\" (with a tokenizer), or a\n"
    "stand-in of the same length in ids. --pixel-values reads pixel_values [sum P, 3, 336, 336]\n"
    "and image_sizes [B, 2] (height, width). --dump writes the prefill logits, the kept\n"
    "indices and the packed image features. Generation stops at EOS or after --max-new-tokens\n"
    "(15); --ignore-eos always generates that many. --overlay draws each image's partitions\n"
    "with the dropped patches dimmed (every patch kept without HiRED); it needs --image.\n";

struct Options {
  std::optional<fs::path> model_dir;
  std::optional<std::string> preset;
  bool random_weights = false;
  std::uint64_t seed = 0;
  std::vector<fs::path> images;
  std::optional<fs::path> pixel_values;
  std::optional<std::string> prompt;
  std::optional<std::vector<std::int64_t>> prompt_ids;
  std::int64_t max_new_tokens = 15;
  bool ignore_eos = false;
  std::optional<hired::DropConfig> drop;
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  std::optional<fs::path> dump;
  std::optional<fs::path> overlay;
};

Options parse(int argc, char** argv) {
  Options o;
  hired::cli::DropFlags drop;
  bool seed_given = false;
  hired::cli::for_each_argument(argc, argv, [&](std::string_view arg, auto value) {
    if (drop.consume(arg, value)) return;
    if (arg == "--model") o.model_dir = fs::path(value());
    else if (arg == "--preset") o.preset = std::string(value());
    else if (arg == "--random-weights") o.random_weights = true;
    else if (arg == "--seed") {
      o.seed = hired::cli::parse_seed(arg, value());
      seed_given = true;
    } else if (arg == "--image") o.images.emplace_back(value());
    else if (arg == "--pixel-values") o.pixel_values = fs::path(value());
    else if (arg == "--prompt") o.prompt = std::string(value());
    else if (arg == "--prompt-ids") o.prompt_ids = hired::cli::parse_list(arg, value(), hired::cli::parse_int);
    else if (arg == "--max-new-tokens") {
      o.max_new_tokens = hired::cli::parse_int(arg, value());
      check(o.max_new_tokens >= 1, "--max-new-tokens: {} must be at least 1", o.max_new_tokens);
    } else if (arg == "--ignore-eos") o.ignore_eos = true;
    else if (arg == "--dtype") o.dtype = hired::llava::parse_dtype(arg, value());
    else if (arg == "--device") o.device = hired::llava::parse_device(arg, value());
    else if (arg == "--dump") o.dump = fs::path(value());
    else if (arg == "--overlay") o.overlay = fs::path(value());
    else if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      std::exit(0);
    } else fail("{}: unknown argument (see --help)", arg);
  });
  check(o.model_dir.has_value() != o.preset.has_value(), "--model, --preset: give exactly one");
  check(!o.preset || o.random_weights, "--preset: needs --random-weights (presets have no weights)");
  check(!o.model_dir || !o.random_weights, "--random-weights: only with --preset");
  check(!seed_given || o.random_weights, "--seed: only with --random-weights");
  check(o.images.empty() != !o.pixel_values.has_value(), "--image, --pixel-values: give one of them");
  check(!(o.prompt && o.prompt_ids), "--prompt, --prompt-ids: give one, not both");
  check(!o.overlay || !o.pixel_values, "--overlay: needs --image (pixel values cannot be drawn)");
  if (drop.any_given()) o.drop = drop.config();
  return o;
}

/// Progress on stderr, with the seconds since the start.
class Progress {
 public:
  template <typename... Args>
  void operator()(fmt::format_string<Args...> format, Args&&... args) const {
    fmt::print(stderr, "[{:7.2f} s] {}\n", seconds(), fmt::format(format, std::forward<Args>(args)...));
  }
  double seconds() const { return clock_.seconds(); }

 private:
  hired::llava::Stopwatch clock_;
};

/// --overlay: what the selection kept (or, without HiRED, every token) on each image's
/// partitions as preprocessing cuts them.
void write_overlay(const fs::path& png, std::span<const fs::path> files,
                   const hired::io::LlavaNextConfig& config, const hired::llava::EncodedImages& encoded) {
  std::vector<hired::io::AnyresTiles> tiles;
  for (const fs::path& file : files) tiles.push_back(hired::llava::image_partitions(file, config));
  if (encoded.rows.selection) {
    hired::io::write_png(png, hired::io::draw_selections(tiles, encoded.rows.selection->host));
    return;
  }
  std::vector<hired::ImageLayout> layouts;
  for (const hired::io::AnyresTiles& t : tiles) layouts.push_back({t.partitions, t.grid, t.image_size});
  const hired::VisionGrid vision{config.vision.image_size, config.vision.grid_side()};
  hired::io::write_png(png, hired::io::draw_selections(tiles, hired::keep_everything(layouts, vision)));
}

int run(const Options& o) {
  Progress progress;
  const hired::llava::WeightOptions weight_options{o.dtype, o.device};
  std::optional<hired::io::Tokenizer> tokenizer;
  const auto model = [&] {
    if (o.preset) {
      const auto config = hired::io::LlavaNextConfig::preset(*o.preset);
      progress("building preset '{}' with random weights (seed {})", *o.preset, o.seed);
      return hired::llava::LlavaNextModel::random(config, o.seed, weight_options);
    }
    progress("loading {}", o.model_dir->string());
    if (fs::exists(*o.model_dir / "tokenizer.model"))
      tokenizer = hired::io::Tokenizer::load_dir(*o.model_dir);
    return hired::llava::LlavaNextModel::load(*o.model_dir, weight_options);
  }();
  const auto& config = model.config();
  progress("model ready: vision {} layers (running {}), LLM {} layers, width {}",
           config.vision.num_hidden_layers, config.vision_layers_run(),
           config.text.num_hidden_layers, config.text.hidden_size);

  hired::llava::ImageInputs images =
      o.pixel_values ? hired::llava::read_pixel_values(*o.pixel_values, config)
                     : hired::llava::read_images(o.images, config);
  images.pixel_values = images.pixel_values.to(o.device, o.dtype);
  progress("{} image(s), {} partitions", images.num_partitions.size(0),
           images.num_partitions.sum().item<std::int64_t>());

  std::vector<std::int64_t> prompt;
  if (o.prompt_ids) {
    prompt = *o.prompt_ids;
  } else if (o.prompt || tokenizer) {
    check(tokenizer.has_value(), "--prompt: needs a tokenizer (tokenizer.model in --model DIR); "
                                 "use --prompt-ids");
    prompt = tokenizer->encode_prompt(o.prompt ? *o.prompt : hired::llava::default_prompt(images.num_partitions.size(0)),
                                      config.image_token_id);
  } else {
    prompt = hired::llava::default_prompt_ids(images.num_partitions.size(0), config);
  }

  std::optional<hired::TokenDropper> dropper;
  if (o.drop) dropper.emplace(*o.drop);
  const hired::llava::Stopwatch encode_time;
  const hired::llava::EncodedImages encoded = model.encode_images(images, dropper ? &*dropper : nullptr);
  const std::vector<std::vector<std::int64_t>> prompts{prompt};
  const hired::llava::PromptEmbeddings input = model.merge(prompts, encoded);
  const double encode_seconds = encode_time.seconds();
  progress("vision {:.3f} s, {} + projector {:.3f} s: {} visual tokens, {} LLM input tokens",
           encoded.vision_seconds, dropper ? "HiRED" : "stock packing", encoded.projection_seconds,
           encoded.rows.visual_tokens[0], input.lengths[0]);

  hired::llava::GenerationOptions generation;
  generation.max_new_tokens = o.max_new_tokens;
  generation.stop_at_eos = !o.ignore_eos;
  const hired::llava::Generation out =
      hired::llava::generate_greedy(model.language(), input.embeds, input.lengths, generation);
  const double ttft = encode_seconds + out.prefill_seconds, total = encode_seconds + out.total_seconds;
  progress("generated {} tokens; time to first token {:.3f} s, total {:.3f} s", out.tokens[0].size(),
           ttft, total);

  std::int64_t visual = 0;
  for (const std::int64_t v : encoded.rows.visual_tokens) visual += v;
  nlohmann::json summary = {{"generated_ids", out.tokens[0]},
                            {"visual_tokens", visual},
                            {"image_tokens", encoded.rows.features.size(0)},
                            {"prompt_tokens", input.lengths[0]},
                            {"ttft_ms", ttft * 1e3},
                            {"total_ms", total * 1e3}};
  if (tokenizer) summary["text"] = tokenizer->decode(out.tokens[0]);
  if (o.overlay) {
    write_overlay(*o.overlay, o.images, config, encoded);
    progress("wrote {}", o.overlay->string());
  }

  if (o.dump) {
    const auto as_float = [](const at::Tensor& t) {
      const at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
      return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    };
    const auto as_long = [](const at::Tensor& t) {
      const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
      return std::vector<std::int64_t>(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
    };
    const at::Tensor& packed = encoded.rows.features;
    std::vector<hired::io::TensorData> tensors{
        hired::io::make_tensor_data("logits", hired::io::Dtype::F32, {out.prefill_logits.size(1)},
                                as_float(out.prefill_logits[0])),
        hired::io::make_tensor_data("packed_features", hired::io::Dtype::F32,
                                {packed.size(0), packed.size(1)}, as_float(packed)),
        hired::io::make_tensor_data("packed_lengths", hired::io::Dtype::I64, {encoded.rows.lengths.size(0)},
                                as_long(encoded.rows.lengths))};
    if (encoded.rows.selection) {
      const hired::TokenSelection& s = *encoded.rows.selection;
      tensors.push_back(hired::io::make_tensor_data("kept", hired::io::Dtype::I64, {s.kept.size(0)}, as_long(s.kept)));
      tensors.push_back(hired::io::make_tensor_data("kept_offsets", hired::io::Dtype::I64,
                                                {s.kept_offsets.size(0)}, as_long(s.kept_offsets)));
      tensors.push_back(hired::io::make_tensor_data("budgets", hired::io::Dtype::I64, {s.budgets.size(0)},
                                                as_long(s.budgets)));
    }
    hired::io::write_safetensors(o.dump->string(), tensors);
    progress("wrote {}", o.dump->string());
  }
  std::cout << summary.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return hired::cli::guarded_main("hired_generate", [&] { return run(parse(argc, argv)); });
}
