// hired::llava::Weights: llava-hf checkpoint directories (single file or shards + index, llava-hf
// or transformers-5 names), memory-mapped safetensors, seeded random weights, bad files.
#include "hired/io/llava_config.hpp"
#include "hired/llava/weights.hpp"
#include "hired/io/safetensors.hpp"

#include "support/expect_error.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#ifndef HIRED_FIXTURES_DIR
#error "HIRED_FIXTURES_DIR must be defined by the build"
#endif

namespace {

namespace fs = std::filesystem;
using namespace hired::llava;  // Weights and its options, under test
using hired::io::Dtype;
using hired::io::SafeTensors;
using hired::io::TensorData;
using hired_test::expect_error;

std::vector<float> iota(std::size_t n, float start = 0.0f) {
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = start + 0.25f * static_cast<float>(i);
  return out;
}

TensorData f32(std::string name, std::vector<std::int64_t> shape, float start = 0.0f) {
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  return hired::io::make_tensor_data(std::move(name), Dtype::F32, std::move(shape), iota(n, start));
}

at::Tensor expected(std::vector<std::int64_t> shape, float start = 0.0f) {
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  return at::tensor(iota(n, start)).reshape(shape);
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

/// A fresh directory per test, removed afterwards.
class WeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           fmt::format("hired_weights_{}_{}_{}", info->name(), ::getpid(), counter_++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  static inline int counter_ = 0;
};

// --- SafeTensors::map_file (core) -----------------------------------------------------------

TEST_F(WeightsTest, MapFileReadsWhatLoadReadsAndViewsOutliveTheFile) {
  const std::string path = (dir_ / "w.safetensors").string();
  hired::io::write_safetensors(path, {f32("a", {2, 3}), f32("b", {4}, 7.0f)}, {{"format", "pt"}});
  const SafeTensors loaded = SafeTensors::load(path);
  hired::io::TensorView view_b = [&] {
    const SafeTensors mapped = SafeTensors::map_file(path);
    EXPECT_EQ(mapped.names(), loaded.names());
    EXPECT_EQ(mapped.metadata(), loaded.metadata());
    EXPECT_EQ(mapped.at("a").to_float(), loaded.at("a").to_float());
    EXPECT_EQ(mapped.at("a").shape(), (std::vector<std::int64_t>{2, 3}));
    return mapped.at("b");
  }();
  EXPECT_EQ(view_b.to_float(), (std::vector<float>{7.0f, 7.25f, 7.5f, 7.75f}));  // mapping kept alive
}

TEST_F(WeightsTest, MapFileValidatesLikeLoad) {
  const fs::path path = dir_ / "w.safetensors";
  expect_error<hired::IoError>([&] { SafeTensors::map_file(path.string()); }, {path.string(), "no such file"});
  expect_error<hired::IoError>([&] { SafeTensors::map_file(dir_.string()); }, {dir_.string(), "directory"});
  write_bytes(path, {});
  expect_error([&] { SafeTensors::map_file(path.string()); }, {path.string(), "0 bytes"});

  hired::io::write_safetensors(path.string(), {f32("a", {8})});
  std::vector<std::uint8_t> bytes = read_bytes(path);
  bytes.resize(bytes.size() - 4);  // truncated data section
  write_bytes(path, bytes);
  expect_error([&] { SafeTensors::map_file(path.string()); },
               {path.string(), "'a'", "outside the", "data section"});
  const std::uint64_t huge_header = bytes.size();  // header length past the end
  std::memcpy(bytes.data(), &huge_header, 8);
  write_bytes(path, bytes);
  expect_error([&] { SafeTensors::map_file(path.string()); }, {path.string(), "past the end"});
}

// --- Weights::open ----------------------------------------------------------------------------

TEST_F(WeightsTest, SingleFileInLlavaHfNamesLoadsAndConverts) {
  hired::io::write_safetensors((dir_ / "model.safetensors").string(),
                           {f32("image_newline", {4}), f32("language_model.lm_head.weight", {3, 2}, 1.0f)});
  Weights weights = Weights::open(dir_);
  EXPECT_EQ(weights.origin(), dir_.string());
  EXPECT_TRUE(weights.contains("image_newline"));
  EXPECT_FALSE(weights.contains("model.image_newline"));
  const at::Tensor newline = weights.take("image_newline", {4});
  EXPECT_EQ(newline.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(newline, expected({4})));
  EXPECT_TRUE(at::equal(weights.take("language_model.lm_head.weight", {3, 2}), expected({3, 2}, 1.0f)));

  Weights bf16 = Weights::open(dir_, {.dtype = at::kBFloat16});
  const at::Tensor head = bf16.take("language_model.lm_head.weight", {3, 2});
  EXPECT_EQ(head.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(head, expected({3, 2}, 1.0f).to(at::kBFloat16)));  // quarters are exact
}

TEST_F(WeightsTest, Fp16AndBf16TensorsReadAsTheRequestedDtype) {
  const std::vector<std::uint16_t> half_bits{0x3c00, 0xc000, 0x3800};  // 1, -2, 0.5
  const std::vector<std::uint16_t> bf16_bits{0x3f80, 0xc000, 0x3f00};  // 1, -2, 0.5
  hired::io::write_safetensors((dir_ / "model.safetensors").string(),
                           {hired::io::make_tensor_data("image_newline", Dtype::F16, {3}, half_bits),
                            hired::io::make_tensor_data("language_model.model.norm.weight", Dtype::BF16, {3},
                                                    bf16_bits)});
  Weights weights = Weights::open(dir_);
  const at::Tensor want = at::tensor({1.0f, -2.0f, 0.5f});
  EXPECT_TRUE(at::equal(weights.take("image_newline", {3}), want));
  EXPECT_TRUE(at::equal(weights.take("language_model.model.norm.weight", {3}), want));
  Weights half = Weights::open(dir_, {.dtype = at::kHalf});
  EXPECT_EQ(half.take("language_model.model.norm.weight", {3}).scalar_type(), at::kHalf);
}

TEST_F(WeightsTest, Transformers5NamesMapToLlavaHfNames) {
  hired::io::write_safetensors(
      (dir_ / "model.safetensors").string(),
      {f32("model.language_model.layers.0.self_attn.q_proj.weight", {2, 2}, 1.0f),
       f32("model.language_model.embed_tokens.weight", {3, 2}, 2.0f), f32("lm_head.weight", {3, 2}, 3.0f),
       f32("model.vision_tower.embeddings.class_embedding", {4}, 4.0f),  // save_pretrained's layout
       f32("model.vision_tower.vision_model.pre_layrnorm.weight", {4}, 5.0f),
       f32("model.multi_modal_projector.linear_1.weight", {2, 4}, 6.0f),
       f32("model.image_newline", {2}, 7.0f)});
  Weights weights = Weights::open(dir_);
  EXPECT_TRUE(at::equal(weights.take("language_model.model.layers.0.self_attn.q_proj.weight", {2, 2}),
                        expected({2, 2}, 1.0f)));
  EXPECT_TRUE(at::equal(weights.take("language_model.model.embed_tokens.weight", {3, 2}), expected({3, 2}, 2.0f)));
  EXPECT_TRUE(at::equal(weights.take("language_model.lm_head.weight", {3, 2}), expected({3, 2}, 3.0f)));
  EXPECT_TRUE(at::equal(weights.take("vision_tower.vision_model.embeddings.class_embedding", {4}),
                        expected({4}, 4.0f)));
  EXPECT_TRUE(at::equal(weights.take("vision_tower.vision_model.pre_layrnorm.weight", {4}), expected({4}, 5.0f)));
  EXPECT_TRUE(at::equal(weights.take("multi_modal_projector.linear_1.weight", {2, 4}), expected({2, 4}, 6.0f)));
  EXPECT_TRUE(at::equal(weights.take("image_newline", {2}), expected({2}, 7.0f)));
  EXPECT_FALSE(weights.contains("lm_head.weight"));
  // An error names the tensor both ways.
  expect_error([&] { weights.take("image_newline", {3}); },
               {"model.safetensors", "'image_newline'", "stored as 'model.image_newline'", "[2]", "[3]"});
}

TEST_F(WeightsTest, UntakenListsTheTensorsNoTakeAskedFor) {
  hired::io::write_safetensors((dir_ / "model.safetensors").string(),
                               {f32("image_newline", {4}), f32("model.language_model.norm.weight", {2}),
                                f32("language_model.lm_head.weight", {3, 2})});
  Weights weights = Weights::open(dir_);
  EXPECT_EQ(weights.untaken(), (std::vector<std::string>{"image_newline", "language_model.lm_head.weight",
                                                         "language_model.model.norm.weight"}));
  weights.take("language_model.model.norm.weight", {2});  // llava-hf name of a transformers-5 one
  weights.take("image_newline", {4});
  weights.take("image_newline", {4});
  EXPECT_EQ(weights.untaken(), std::vector<std::string>{"language_model.lm_head.weight"});
  EXPECT_TRUE(weights.in_checkpoint("language_model.lm_head.weight"));
  EXPECT_FALSE(weights.in_checkpoint("language_model.model.embed_tokens.weight"));
  // A failed take takes nothing.
  expect_error([&] { weights.take("language_model.lm_head.weight", {2, 3}); }, {"lm_head", "[3, 2]"});
  EXPECT_EQ(weights.untaken(), std::vector<std::string>{"language_model.lm_head.weight"});

  Weights random = Weights::random(3);
  random.take("anything", {2});
  EXPECT_TRUE(random.untaken().empty());
  EXPECT_FALSE(random.in_checkpoint("anything"));
  EXPECT_TRUE(random.contains("anything"));
}

TEST_F(WeightsTest, TwoStoredNamesForOneTensorAreRejected) {
  hired::io::write_safetensors((dir_ / "model.safetensors").string(),
                           {f32("image_newline", {2}), f32("model.image_newline", {2})});
  expect_error([&] { Weights::open(dir_); }, {"'image_newline'", "'model.image_newline'", "both"});
}

TEST_F(WeightsTest, ShardedCheckpointLoadsThroughItsIndex) {
  hired::io::write_safetensors((dir_ / "model-00001-of-00002.safetensors").string(),
                           {f32("image_newline", {4}), f32("unlisted", {1})});
  hired::io::write_safetensors((dir_ / "model-00002-of-00002.safetensors").string(),
                           {f32("model.language_model.norm.weight", {2}, 3.0f)});
  write_text(dir_ / "model.safetensors.index.json", R"({"metadata": {"total_size": 24}, "weight_map": {
      "image_newline": "model-00001-of-00002.safetensors",
      "model.language_model.norm.weight": "model-00002-of-00002.safetensors"}})");
  Weights weights = Weights::open(dir_);
  EXPECT_TRUE(at::equal(weights.take("image_newline", {4}), expected({4})));
  EXPECT_TRUE(at::equal(weights.take("language_model.model.norm.weight", {2}), expected({2}, 3.0f)));
  EXPECT_FALSE(weights.contains("unlisted"));  // the index is the list of tensors
}

TEST_F(WeightsTest, BadIndexNamesTheIndexTheShardAndTheTensor) {
  const fs::path index = dir_ / "model.safetensors.index.json";
  hired::io::write_safetensors((dir_ / "a.safetensors").string(), {f32("image_newline", {4})});

  write_text(index, R"({"weight_map": {"image_newline": "a.safetensors", "lm_head.weight": "b.safetensors"}})");
  expect_error<hired::IoError>([&] { Weights::open(dir_); },
               {index.string(), "'b.safetensors'", "'lm_head.weight'", "not found"});

  write_text(index, R"({"weight_map": {"image_newline": "a.safetensors", "lm_head.weight": "a.safetensors"}})");
  expect_error([&] { Weights::open(dir_); },
               {(dir_ / "a.safetensors").string(), "'lm_head.weight'", "absent"});

  write_text(index, R"({"weight_map": {"image_newline": "../a.safetensors"}})");
  expect_error([&] { Weights::open(dir_); }, {index.string(), "'../a.safetensors'", "not a file name"});

  write_text(index, R"({"weight_map": {"image_newline": 3}})");
  expect_error([&] { Weights::open(dir_); }, {index.string(), "'image_newline'"});

  write_text(index, R"({"metadata": {}})");
  expect_error([&] { Weights::open(dir_); }, {index.string(), "weight_map"});

  write_text(index, "{not json");
  expect_error([&] { Weights::open(dir_); }, {index.string(), "not valid JSON"});
}

TEST_F(WeightsTest, MissingDirectoryOrFilesAreNamed) {
  expect_error<hired::IoError>([&] { Weights::open(dir_ / "absent"); }, {(dir_ / "absent").string(), "not found"});
  expect_error<hired::IoError>([&] { Weights::open(dir_); },
               {dir_.string(), "model.safetensors", "model.safetensors.index.json"});
  expect_error<hired::IoError>([&] { hired::io::LlavaNextConfig::load(dir_ / "config.json"); },
               {(dir_ / "config.json").string()});
}

TEST_F(WeightsTest, CorruptFilesAreNamed) {
  const fs::path file = dir_ / "model.safetensors";
  hired::io::write_safetensors(file.string(), {f32("image_newline", {16})});
  const std::vector<std::uint8_t> good = read_bytes(file);

  std::vector<std::uint8_t> bytes(good.begin(), good.end() - 8);  // truncated
  write_bytes(file, bytes);
  expect_error([&] { Weights::open(dir_); }, {file.string(), "'image_newline'", "outside the"});

  bytes = good;  // header length past the end
  const std::uint64_t past_end = good.size();
  std::memcpy(bytes.data(), &past_end, 8);
  write_bytes(file, bytes);
  expect_error([&] { Weights::open(dir_); }, {file.string(), "header length", "past the end"});

  write_bytes(file, {1, 2, 3});
  expect_error([&] { Weights::open(dir_); }, {file.string(), "3 bytes"});

  // Offsets that point outside the data section.
  std::string header = R"({"image_newline":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  bytes.assign(8, 0);
  const std::uint64_t length = header.size();
  std::memcpy(bytes.data(), &length, 8);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + 8, 0);
  write_bytes(file, bytes);
  expect_error([&] { Weights::open(dir_); }, {file.string(), "'image_newline'", "[8, 16)", "8-byte data section"});
}

TEST_F(WeightsTest, TakeRejectsMissingTensorsOtherShapesAndNonFloatDtypes) {
  const fs::path file = dir_ / "model.safetensors";
  hired::io::write_safetensors(file.string(),
                           {f32("image_newline", {4}),
                            hired::io::make_tensor_data("language_model.model.norm.weight", Dtype::I32, {2},
                                                    std::vector<std::int32_t>{1, 2})});
  Weights weights = Weights::open(dir_);
  expect_error([&] { weights.take("multi_modal_projector.linear_1.weight", {4, 4}); },
               {dir_.string(), "'multi_modal_projector.linear_1.weight'", "no tensor"});
  expect_error([&] { weights.take("image_newline", {2, 2}); },
               {file.string(), "'image_newline'", "shape [4]", "[2, 2]"});
  expect_error([&] { weights.take("language_model.model.norm.weight", {2}); },
               {file.string(), "'language_model.model.norm.weight'", "I32", "not floating point"});
  expect_error([&] { Weights::open(dir_, {.dtype = at::kInt}); }, {"dtype", "Int"});
  expect_error([&] { Weights::open(dir_, {.device = at::Device("cuda:99")}); }, {"device", "cuda:99"});
  expect_error([&] { Weights::random(0, {.device = at::Device("cuda:99")}); }, {"device", "cuda:99"});
}

/// Resident set size in bytes (anonymous and file-backed pages).
std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

TEST_F(WeightsTest, TakeDoesNotKeepTheMappedFileResidentNextToTheCopy) {
  constexpr std::int64_t kFloats = 8 << 20;  // 32 MiB
  {
    std::vector<hired::io::TensorData> tensors{f32("language_model.model.embed_tokens.weight", {kFloats / 64, 64})};
    hired::io::write_safetensors((dir_ / "model.safetensors").string(), tensors);
  }
  Weights weights = Weights::open(dir_);
  const std::int64_t before = resident_bytes();
  const at::Tensor t = weights.take("language_model.model.embed_tokens.weight", {kFloats / 64, 64});
  const std::int64_t grown = resident_bytes() - before;
  // The copy is 32 MiB; the file's pages, read once through the mapping, are handed back.
  EXPECT_GE(grown, kFloats * 4 * 9 / 10);
  EXPECT_LE(grown, kFloats * 4 * 3 / 2);
  EXPECT_EQ(t[100][3].item<float>(), 0.25f * (100 * 64 + 3));
  std::printf("[ memory   ] 32 MiB tensor: resident set grew by %.1f MiB\n", double(grown) / (1 << 20));
}

// --- Weights::random --------------------------------------------------------------------------

TEST(WeightsRandom, ATensorDependsOnlyOnSeedNameAndShape) {
  Weights a = Weights::random(7);
  Weights b = Weights::random(7);
  const at::Tensor first = a.take("x.weight", {64, 32});
  b.take("something.else", {5});  // order and other tensors do not matter
  EXPECT_TRUE(at::equal(b.take("x.weight", {64, 32}), first));
  EXPECT_TRUE(at::equal(a.take("x.weight", {64, 32}), first));  // taking again gives the same
  EXPECT_FALSE(at::equal(Weights::random(8).take("x.weight", {64, 32}), first));
  EXPECT_FALSE(at::equal(a.take("y.weight", {64, 32}), first));
  EXPECT_FALSE(at::equal(a.take("x.weight", {32, 64}).reshape({64, 32}), first));
  EXPECT_EQ(a.origin(), "random(seed=7)");
  EXPECT_TRUE(a.contains("anything"));
}

TEST(WeightsRandom, NormalOnesZerosInTheRequestedDtype) {
  Weights weights = Weights::random(1, {.dtype = at::kFloat}, 0.5);
  const at::Tensor normal = weights.take("w", {256, 256});
  EXPECT_EQ(normal.scalar_type(), at::kFloat);
  EXPECT_NEAR(normal.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(normal.std().item<double>(), 0.5, 0.01);
  EXPECT_TRUE(at::equal(weights.take("n", {3}, Init::ones), at::ones({3})));
  EXPECT_TRUE(at::equal(weights.take("b", {3}, Init::zeros), at::zeros({3})));

  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    Weights narrow = Weights::random(1, {.dtype = dtype}, 0.5);
    const at::Tensor t = narrow.take("w", {64, 64});
    EXPECT_EQ(t.scalar_type(), dtype);
    EXPECT_TRUE(at::equal(t, Weights::random(1, {.dtype = dtype}, 0.5).take("w", {64, 64})));
    EXPECT_NEAR(t.to(at::kFloat).std().item<double>(), 0.5, 0.05);
    EXPECT_EQ(narrow.take("n", {2}, Init::ones).scalar_type(), dtype);
  }
  expect_error([] { Weights::random(1, {}, -1.0); }, {"stddev"});
}

// --- the transformers fixtures -----------------------------------------------------------------

/// Every tensor the fixture's index / file lists, compared with a plain read of its shard.
void expect_fixture_loads(const std::string& name, std::size_t files) {
  const fs::path dir = fs::path(HIRED_FIXTURES_DIR) / "llava" / name;
  const auto config = hired::io::LlavaNextConfig::load(dir / "config.json");
  Weights weights = Weights::open(dir);
  std::size_t seen = 0, tensors = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto file = entry.path().filename().string();
    if (!file.starts_with("model") || entry.path().extension() != ".safetensors") continue;
    ++seen;
    const SafeTensors shard = SafeTensors::load(entry.path().string());
    for (const auto& tensor : shard.names()) {
      const hired::io::TensorView& view = shard.at(tensor);
      const at::Tensor want = at::tensor(view.to_float()).reshape(view.shape());
      ASSERT_TRUE(weights.contains(tensor)) << tensor;
      EXPECT_TRUE(at::equal(weights.take(tensor, view.shape()), want)) << tensor;
      ++tensors;
    }
  }
  EXPECT_EQ(seen, files);
  const std::int64_t dv = config.vision.hidden_size, p = config.vision.patch_size;
  EXPECT_EQ(weights.take("vision_tower.vision_model.embeddings.patch_embedding.weight", {dv, 3, p, p}).sizes(),
            (std::vector<std::int64_t>{dv, 3, p, p}));
  EXPECT_TRUE(weights.contains("language_model.lm_head.weight"));
  std::printf("[ fixture  ] %s: %zu tensors in %zu file(s)\n", name.c_str(), tensors, files);
}

TEST(WeightsParity, SingleFileVicunaTinyLoads) { expect_fixture_loads("vicuna_tiny", 1); }

TEST(WeightsParity, ShardedMistralTinyLoads) { expect_fixture_loads("mistral_tiny", 2); }

}  // namespace
