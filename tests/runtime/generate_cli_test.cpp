// hired_generate as a user runs it: transformers' fixtures from image files and prompt text to
// the same greedy tokens, the JSON summary and --dump, HiRED's flags, and one test per kind of
// bad input (exit status 2, no result on stdout, the culprit named on stderr's last line).
#include "hired/io/image.hpp"
#include "hired/io/overlay.hpp"
#include "hired/io/safetensors.hpp"
#include "support/run_process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using hired_test::expect_rejected;
using hired_test::ProcessResult;

const fs::path fixtures = fs::path(HIRED_FIXTURES_DIR) / "llava";
const fs::path vicuna = fixtures / "vicuna_tiny", mistral = fixtures / "mistral_tiny";
const fs::path images = fixtures / "images";
const fs::path sample_image = fs::path(HIRED_FIXTURES_DIR) / ".." / ".." / "examples" / "data" / "sample_600x600.png";

/// Single-quoted for the shell (a quote inside becomes '\'').
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
std::string q(const fs::path& p) { return quoted(p.string()); }

ProcessResult generate(const std::string& args) {
  return hired_test::run_process(HIRED_GENERATE_EXE, args, "generate_cli_test");
}

fs::path scratch(const std::string& name) { return hired_test::scratch("generate_cli_test", name); }

nlohmann::json summary(const ProcessResult& r) {
  EXPECT_EQ(r.status, 0) << r.err;
  const std::size_t last = r.out.rfind('\n', r.out.size() - 2);
  return nlohmann::json::parse(r.out.substr(last == std::string::npos ? 0 : last + 1));
}

nlohmann::json inputs(const fs::path& dir) { return nlohmann::json::parse(std::ifstream(dir / "inputs.json")); }

std::vector<std::int64_t> expected_ids(const fs::path& dir, std::int64_t sample) {
  const auto t = hired::io::SafeTensors::load((dir / "expected.safetensors").string()).at("generated_ids");
  const std::vector<std::int64_t> all = t.to_int64();
  const auto n = static_cast<std::ptrdiff_t>(t.shape()[1]);
  return {all.begin() + sample * n, all.begin() + (sample + 1) * n};
}

std::string vicuna_run(const std::string& extra = "") {
  const std::string prompt = inputs(vicuna)["samples"][0]["prompt"];
  // A newline inside single quotes passes through the shell as is.
  return "--model " + q(vicuna) + " --image " + q(images / "wide_150x380.png") + " --prompt '" +
         prompt + "' --max-new-tokens 10 --ignore-eos " + extra;
}

std::string mistral_ids() {
  std::string ids;
  const nlohmann::json in = inputs(mistral);  // outlives the loop (a temporary would not)
  for (const auto& id : in["samples"][0]["prompt_ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id.get<std::int64_t>());
  return ids;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

// --- the contract ------------------------------------------------------------------------------

TEST(HiredGenerate, ImageFileAndPromptTextGiveTransformersTokens) {
  const nlohmann::json s = summary(generate(vicuna_run()));
  EXPECT_EQ(s["generated_ids"].get<std::vector<std::int64_t>>(), expected_ids(vicuna, 0));
  EXPECT_TRUE(s["text"].is_string());
  EXPECT_EQ(s["image_tokens"], 1458);               // packed_lengths[0]: 1440 tokens + 18 newlines
  EXPECT_EQ(s["visual_tokens"], 1440);
  EXPECT_EQ(s["prompt_tokens"], 36 - 1 + 1458);     // the image token becomes the image's rows
  EXPECT_GT(s["ttft_ms"].get<double>(), 0);
  EXPECT_GE(s["total_ms"].get<double>(), s["ttft_ms"].get<double>());
}

TEST(HiredGenerate, PromptIdsWithAShardedGqaCheckpoint) {
  const nlohmann::json s = summary(generate("--model " + q(mistral) + " --image " + q(images / "small_300x260.png") +
                                            " --prompt-ids " + mistral_ids() + " --max-new-tokens 10 --ignore-eos"));
  EXPECT_EQ(s["generated_ids"].get<std::vector<std::int64_t>>(), expected_ids(mistral, 0));
  EXPECT_FALSE(s.contains("text"));  // no tokenizer
}

TEST(HiredGenerate, DumpHoldsTransformersLogitsAndImageRows) {
  const fs::path dump = scratch("dump.safetensors");
  summary(generate(vicuna_run("--dump " + q(dump))));
  const auto got = hired::io::SafeTensors::load(dump.string());
  const auto want = hired::io::SafeTensors::load((vicuna / "expected.safetensors").string());
  const std::vector<float> logits = want.at("logits").to_float();
  const std::vector<float> first(logits.begin(), logits.begin() + logits.size() / 2);
  EXPECT_LE(max_abs_diff(got.at("logits").to_float(), first), 1e-4);
  const std::vector<float> packed = want.at("packed_features").to_float();
  const std::vector<float> rows(packed.begin(), packed.begin() + 1458 * 32);
  EXPECT_LE(max_abs_diff(got.at("packed_features").to_float(), rows), 1e-4);
  EXPECT_FALSE(got.contains("kept"));  // stock: no selection
}

TEST(HiredGenerate, BudgetFlagsTurnHiredOn) {
  const fs::path dump = scratch("dump20.safetensors");
  const nlohmann::json s = summary(generate(vicuna_run("--budget-rate 0.2 --dump " + q(dump))));
  EXPECT_EQ(s["visual_tokens"], 345);  // floor(3 * 576 * 0.2), all eligible in exact mode
  const auto got = hired::io::SafeTensors::load(dump.string());
  EXPECT_EQ(got.at("kept").numel(), 345);
  EXPECT_EQ(got.at("kept_offsets").to_int64().back(), 345);
  EXPECT_EQ(got.at("budgets").numel(), 3);

  const nlohmann::json stock = summary(generate(vicuna_run()));
  const nlohmann::json full = summary(generate(vicuna_run("--budget-rate 1.0")));
  EXPECT_EQ(full["generated_ids"], stock["generated_ids"]);
  EXPECT_EQ(full["image_tokens"], stock["image_tokens"]);
}

/// Every llava-hf checkpoint shape from the command line: image file, prompt text (sentencepiece
/// checkpoints) or prompt ids (Yi's and Qwen's chat formats), transformers' 10 tokens.
TEST(HiredGenerate, EveryCheckpointShapeGivesTransformersTokens) {
  for (const char* name : {"llava15_7b_tiny", "vicuna13b_tiny", "mistral7b_tiny", "yi34b_tiny",
                           "qwen72b_tiny", "qwen110b_tiny"}) {
    SCOPED_TRACE(name);
    const fs::path dir = fixtures / name;
    const nlohmann::json sample = inputs(dir)["samples"][0];
    std::string args = "--model " + q(dir) + " --image " +
                       q(images / sample["images"][0].get<std::string>()) + " --max-new-tokens 10 --ignore-eos ";
    if (fs::exists(dir / "tokenizer.model")) {
      args += "--prompt " + quoted(sample["prompt"].get<std::string>());
    } else {
      std::string ids;
      for (const auto& id : sample["prompt_ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id.get<std::int64_t>());
      args += "--prompt-ids " + ids;
    }
    const nlohmann::json s = summary(generate(args));
    EXPECT_EQ(s["generated_ids"].get<std::vector<std::int64_t>>(), expected_ids(dir, 0));
  }
  // LLaVA-1.5: one partition of 576 tokens, no newline rows, with HiRED too.
  const std::string llava15 = "--model " + q(fixtures / "llava15_7b_tiny") + " --image " +
                              q(images / "tall_500x240.png") + " --max-new-tokens 2 ";
  EXPECT_EQ(summary(generate(llava15))["image_tokens"], 576);
  const nlohmann::json dropped = summary(generate(llava15 + "--budget-rate 0.2 --newline every_row"));
  EXPECT_EQ(dropped["visual_tokens"], 115);
  EXPECT_EQ(dropped["image_tokens"], 115);

  // Its overlay is the one centre-cropped partition, 115 of 576 patches bright.
  const fs::path png = scratch("llava15.png"), dump = scratch("llava15.safetensors");
  (void)summary(generate(llava15 + "--budget-rate 0.2 --overlay " + q(png) + " --dump " + q(dump)));
  const hired::io::RgbImage picture = hired::io::load_image(png);
  EXPECT_EQ(picture.width, 8 + 336 + 24);
  EXPECT_EQ(picture.height, 8 + 336 + 8 + 20);
  const hired::io::AnyresTiles crop =
      hired::io::clip_center_crop(hired::io::load_image(images / "tall_500x240.png"), 336, 336);
  std::vector<char> kept(576, 0);
  for (const std::int64_t k : hired::io::SafeTensors::load(dump.string()).at("kept").to_int64()) kept[k] = 1;
  const auto at = hired::io::overlay_placements(crop);
  for (std::int64_t token = 0; token < 576; ++token) {
    const std::int64_t y = (token / 24) * 14 + 7, x = (token % 24) * 14 + 7;
    const std::uint8_t tile = crop.tiles[y * 336 + x];  // the red plane
    ASSERT_EQ(picture.pixels[((at[0].y + y) * picture.width + at[0].x + x) * 3], kept[token] ? tile : tile / 4)
        << "token " << token;
  }
}

TEST(HiredGenerate, MiniPresetOnTheSampleImage) {
  const std::string base = "--preset mini --random-weights --image " + q(sample_image) + " --max-new-tokens 2";
  EXPECT_EQ(summary(generate(base))["visual_tokens"], 2880);
  EXPECT_EQ(summary(generate(base + " --budget-rate 0.2"))["visual_tokens"], 576);
}

// --overlay: the image's partitions as preprocessing cuts them, each patch at full brightness
// where --dump's selection keeps it and at a quarter where it drops it; every patch without HiRED.
TEST(HiredGenerate, OverlayDrawsTheKeptPatches) {
  const std::string base = "--preset mini --random-weights --image " + q(sample_image) + " --max-new-tokens 1";
  const hired::io::AnyresTiles tiles = hired::io::anyres_tiles(
      hired::io::load_image(sample_image),
      std::vector<hired::Size2>(hired::llava_v16_grid_pinpoints.begin(), hired::llava_v16_grid_pinpoints.end()));
  for (const bool hired_on : {true, false}) {
    SCOPED_TRACE(hired_on ? "HiRED at 20%" : "HiRED off");
    const fs::path png = scratch("overlay.png"), dump = scratch("overlay.safetensors");
    (void)summary(generate(base + " --overlay " + q(png) + " --dump " + q(dump) +
                           (hired_on ? " --budget-rate 0.2" : "")));
    const hired::io::RgbImage picture = hired::io::load_image(png);
    ASSERT_EQ(picture.width, 8 + 336 + 24 + 2 * (336 + 8));  // the full image, then 2 x 2 tiles
    ASSERT_EQ(picture.height, 8 + 2 * (336 + 8 + 20));
    std::vector<std::vector<char>> kept(5, std::vector<char>(576, hired_on ? 0 : 1));
    if (hired_on) {
      const auto file = hired::io::SafeTensors::load(dump.string());
      const std::vector<std::int64_t> indices = file.at("kept").to_int64();
      const std::vector<std::int64_t> offsets = file.at("kept_offsets").to_int64();
      for (std::size_t p = 0; p < 5; ++p)
        for (std::int64_t i = offsets[p]; i < offsets[p + 1]; ++i) kept[p][indices[i]] = 1;
    }
    const auto at = hired::io::overlay_placements(tiles);
    std::int64_t bright = 0;
    for (std::int64_t p = 0; p < 5; ++p)
      for (std::int64_t token = 0; token < 576; ++token) {
        const std::int64_t y = (token / 24) * 14 + 7, x = (token % 24) * 14 + 7;  // a patch's centre
        bright += kept[p][token];
        for (std::int64_t c = 0; c < 3; ++c) {
          const std::uint8_t tile = tiles.tiles[(p * 3 + c) * 336 * 336 + y * 336 + x];
          const std::uint8_t drawn = picture.pixels[((at[p].y + y) * picture.width + at[p].x + x) * 3 + c];
          ASSERT_EQ(drawn, kept[p][token] ? tile : tile / 4) << "partition " << p << " token " << token;
        }
      }
    EXPECT_EQ(bright, hired_on ? 576 : 2880);
  }
}

TEST(HiredGenerate, PixelValuesFileEqualsTheImageFile) {
  // transformers' tiles, normalised as its processor does, as --pixel-values input.
  const auto want = hired::io::SafeTensors::load((vicuna / "expected.safetensors").string());
  const hired::io::TensorView& u8 = want.at("pixel_values_u8");
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(u8.bytes().data());
  const std::int64_t plane = 336 * 336, first_image = 3 * 3 * plane;
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, stdev[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  std::vector<float> pixels(static_cast<std::size_t>(first_image));
  for (std::int64_t i = 0; i < first_image; ++i) {
    const int c = static_cast<int>((i / plane) % 3);
    pixels[i] = (static_cast<float>(double(bytes[i]) * (1.0 / 255.0)) - mean[c]) / stdev[c];
  }
  const fs::path file = scratch("pixels.safetensors");
  hired::io::write_safetensors(file.string(),
                           {hired::io::make_tensor_data("pixel_values", hired::io::Dtype::F32, {3, 3, 336, 336}, pixels),
                            hired::io::make_tensor_data("image_sizes", hired::io::Dtype::I64, {1, 2}, std::vector<std::int64_t>{150, 380})});
  std::string args = vicuna_run();
  args.replace(args.find("--image"), std::string("--image ").size() + q(images / "wide_150x380.png").size(),
               "--pixel-values " + q(file));
  EXPECT_EQ(summary(generate(args))["generated_ids"].get<std::vector<std::int64_t>>(), expected_ids(vicuna, 0));
}

TEST(HiredGenerate, HelpExitsZero) {
  const ProcessResult r = generate("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("usage: hired_generate"), std::string::npos);
}

// --- bad input ---------------------------------------------------------------------------------

/// A copy of vicuna_tiny in a scratch directory, to damage.
fs::path copy_of_vicuna(const std::string& name) {
  const fs::path dir = scratch(name);
  fs::remove_all(dir);
  fs::copy(vicuna, dir, fs::copy_options::recursive);
  return dir;
}

std::string slurp(const fs::path& p) { return hired_test::slurp(p); }

void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes; }

/// model.safetensors with its header JSON edited by `edit` (data bytes unchanged).
void edit_header(const fs::path& file, const std::function<void(nlohmann::json&)>& edit) {
  const std::string bytes = slurp(file);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  edit(header);
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t len = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  write(file, out + text + bytes.substr(8 + n));
}

std::string run_on(const fs::path& dir, const std::string& extra = "") {
  return "--model " + q(dir) + " --image " + q(images / "wide_150x380.png") + " --prompt-ids 1,352,5 " + extra;
}

TEST(HiredGenerate, RejectsBrokenModelDirectories) {
  fs::path dir = copy_of_vicuna("no_config");
  fs::remove(dir / "config.json");
  expect_rejected(generate(run_on(dir)), "config.json", false);

  dir = copy_of_vicuna("bad_json");
  write(dir / "config.json", "{ not json");
  expect_rejected(generate(run_on(dir)), "config.json", false);

  dir = copy_of_vicuna("bad_type");
  auto config = nlohmann::json::parse(std::ifstream(vicuna / "config.json"));
  config["text_config"]["hidden_size"] = "big";
  write(dir / "config.json", config.dump());
  expect_rejected(generate(run_on(dir)), "hidden_size", false);

  dir = copy_of_vicuna("bad_model_type");
  config = nlohmann::json::parse(std::ifstream(vicuna / "config.json"));
  config["text_config"]["model_type"] = "gpt2";
  write(dir / "config.json", config.dump());
  expect_rejected(generate(run_on(dir)), "model_type", false);

  dir = copy_of_vicuna("shape");
  config = nlohmann::json::parse(std::ifstream(vicuna / "config.json"));
  config["text_config"]["intermediate_size"] = 96;
  write(dir / "config.json", config.dump());
  expect_rejected(generate(run_on(dir)), "mlp.gate_proj.weight", false);
}

/// A config key hired does not know, a value it does not implement, a tensor it would not
/// use: each refused, named on the last line of stderr.
TEST(HiredGenerate, RejectsWhatItWouldNotComputeLikeTransformers) {
  fs::path dir = copy_of_vicuna("unknown_key");
  auto config = nlohmann::json::parse(std::ifstream(vicuna / "config.json"));
  config["text_config"]["qk_layernorm"] = true;
  write(dir / "config.json", config.dump());
  expect_rejected(generate(run_on(dir)), "text_config.qk_layernorm", false);

  dir = copy_of_vicuna("rope_type");
  config = nlohmann::json::parse(std::ifstream(vicuna / "config.json"));
  config["text_config"]["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  write(dir / "config.json", config.dump());
  expect_rejected(generate(run_on(dir)), "rope_type 'dynamic'", false);

  dir = copy_of_vicuna("unused_tensor");
  {
    const auto file = hired::io::SafeTensors::load((vicuna / "model.safetensors").string());
    std::vector<hired::io::TensorData> tensors;
    for (const std::string& name : file.names())
      tensors.push_back(hired::io::make_tensor_data(name, hired::io::Dtype::F32, file.at(name).shape(),
                                                    file.at(name).to_float()));
    tensors.push_back(hired::io::make_tensor_data("language_model.model.layers.1.self_attn.q_norm.weight",
                                                  hired::io::Dtype::F32, {8}, std::vector<float>(8, 1.0f)));
    hired::io::write_safetensors((dir / "model.safetensors").string(), tensors);
  }
  expect_rejected(generate(run_on(dir)), "language_model.model.layers.1.self_attn.q_norm.weight", false);
}

TEST(HiredGenerate, RejectsDamagedSafetensors) {
  fs::path dir = copy_of_vicuna("truncated");
  const std::string bytes = slurp(vicuna / "model.safetensors");
  write(dir / "model.safetensors", bytes.substr(0, bytes.size() - 1000));
  expect_rejected(generate(run_on(dir)), "model.safetensors", false);

  dir = copy_of_vicuna("header_past_end");
  std::string damaged = bytes;
  const std::uint64_t huge = bytes.size() * 2;
  std::memcpy(damaged.data(), &huge, 8);
  write(dir / "model.safetensors", damaged);
  expect_rejected(generate(run_on(dir)), "model.safetensors", false);

  dir = copy_of_vicuna("offsets");
  edit_header(dir / "model.safetensors", [&](nlohmann::json& h) {
    h["image_newline"]["data_offsets"][1] = bytes.size() * 4;
  });
  expect_rejected(generate(run_on(dir)), "model.safetensors", false);

  dir = copy_of_vicuna("dtype");
  edit_header(dir / "model.safetensors", [](nlohmann::json& h) { h["image_newline"]["dtype"] = "I32"; });
  expect_rejected(generate(run_on(dir)), "image_newline", false);

  dir = copy_of_vicuna("missing");
  edit_header(dir / "model.safetensors", [](nlohmann::json& h) { h.erase("image_newline"); });
  expect_rejected(generate(run_on(dir)), "image_newline", false);
}

TEST(HiredGenerate, RejectsBadImages) {
  expect_rejected(generate(run_on(vicuna).replace(run_on(vicuna).find(q(images / "wide_150x380.png")),
                                                  q(images / "wide_150x380.png").size(), q(scratch("missing.png")))),
                  "missing.png", false);
  write(scratch("empty.png"), "");
  expect_rejected(generate("--model " + q(vicuna) + " --image " + q(scratch("empty.png")) + " --prompt-ids 1,352"),
                  "empty.png", false);
  write(scratch("text.png"), "this is not an image at all");
  expect_rejected(generate("--model " + q(vicuna) + " --image " + q(scratch("text.png")) + " --prompt-ids 1,352"),
                  "text.png", false);
}

TEST(HiredGenerate, RejectsPromptsThatDoNotFitTheImages) {
  expect_rejected(generate("--model " + q(vicuna) + " --image " + q(images / "wide_150x380.png") +
                           " --prompt 'no image here'"),
                  "image token", false);
  expect_rejected(generate("--model " + q(vicuna) + " --image " + q(images / "wide_150x380.png") + " --image " +
                           q(images / "tall_500x240.png") + " --prompt-ids 1,352,5"),
                  "image token", false);
  expect_rejected(generate("--model " + q(mistral) + " --image " + q(images / "small_300x260.png") +
                           " --prompt 'USER: <image>'"),
                  "--prompt", false);
  expect_rejected(generate(run_on(vicuna).replace(run_on(vicuna).find("1,352,5"), 7, "1,352,999")), "999", false);
}

TEST(HiredGenerate, RejectsBadFlags) {
  const std::string ok = run_on(vicuna);
  for (const auto& [flags, named] : std::vector<std::pair<std::string, std::string>>{
           {"--budget-rate 0", "budget_rate"}, {"--budget-rate 1.5", "budget_rate"},
           {"--budget-rate abc", "--budget-rate"}, {"--alpha 2", "alpha"},
           {"--budget-tokens -1", "budget_tokens"}, {"--mode bogus", "mode"},
           {"--max-new-tokens 0", "--max-new-tokens"}, {"--frobnicate", "--frobnicate"},
           {"--preset mini", "--preset"}, {"--dtype fp8", "--dtype"}, {"--device tpu", "--device"},
           {"--device cuda", "--device cuda"}}) {
    SCOPED_TRACE(flags);
    expect_rejected(generate(ok + flags), named, false);
  }
  expect_rejected(generate("--preset huge --random-weights --image " + q(sample_image)), "huge", false);
  expect_rejected(generate("--preset mini --image " + q(sample_image)), "--random-weights", false);
  expect_rejected(generate("--model " + q(vicuna)), "--image", false);
  expect_rejected(generate("--preset mini --random-weights --image " + q(sample_image) + " --overlay " +
                           q(fs::path("/nonexistent/dir/o.png"))),
                  "/nonexistent/dir/o.png", false);
}

TEST(HiredGenerate, RejectsBadPixelValuesFiles) {
  const fs::path lacking = scratch("lacking.safetensors");
  hired::io::write_safetensors(lacking.string(), {hired::io::make_tensor_data("image_sizes", hired::io::Dtype::I64, {1, 2},
                                                                      std::vector<std::int64_t>{150, 380})});
  expect_rejected(generate("--model " + q(vicuna) + " --pixel-values " + q(lacking) + " --prompt-ids 1,352"),
                  "pixel_values", false);
  const fs::path wrong = scratch("wrong.safetensors");
  hired::io::write_safetensors(wrong.string(),
                           {hired::io::make_tensor_data("pixel_values", hired::io::Dtype::F32, {3, 3, 4, 4}, std::vector<float>(144)),
                            hired::io::make_tensor_data("image_sizes", hired::io::Dtype::I64, {1, 2}, std::vector<std::int64_t>{150, 380})});
  expect_rejected(generate("--model " + q(vicuna) + " --pixel-values " + q(wrong) + " --prompt-ids 1,352"),
                  "pixel_values", false);
  expect_rejected(generate("--model " + q(vicuna) + " --pixel-values " + q(wrong) +
                           " --prompt-ids 1,352 --overlay " + q(scratch("o.png"))),
                  "--overlay", false);
}

}  // namespace
