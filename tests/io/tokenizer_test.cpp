// The sentencepiece tokenizer against the ids transformers' LlamaTokenizer produced for the
// fixture prompts (tests/fixtures/llava/vicuna_tiny, generate_llava_fixtures.py).
#include "hired/io/tokenizer.hpp"
#include "hired/io/safetensors.hpp"
#include "support/scratch_dir.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using hired::io::Tokenizer;
using hired_test::expect_error;
using Ids = std::vector<std::int64_t>;

const fs::path kVicuna = fs::path(HIRED_FIXTURES_DIR) / "llava" / "vicuna_tiny";
constexpr std::int64_t kImage = 352;  // vicuna_tiny's image_token_index

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

using hired_test::ScratchDir;

Ids concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(TokenizerParity, FixturePromptsGiveTransformersIds) {
  const Tokenizer tok = Tokenizer::load_dir(kVicuna);
  EXPECT_FALSE(tok.options().legacy) << "tokenizer_config.json says legacy: false";
  EXPECT_EQ(tok.vocab_size(), 352);
  std::ifstream in(kVicuna / "inputs.json");
  const auto inputs = nlohmann::json::parse(in);
  ASSERT_EQ(inputs.at("image_token_id").get<std::int64_t>(), kImage);
  const auto expected = hired::io::SafeTensors::load((kVicuna / "expected.safetensors").string());
  const auto rows = expected.at("prompt_ids").to_int64();
  const auto lengths = expected.at("prompt_lengths").to_int64();
  const auto width = static_cast<std::size_t>(expected.at("prompt_ids").shape()[1]);
  std::size_t b = 0;
  for (const auto& sample : inputs.at("samples")) {
    const auto prompt = sample.at("prompt").get<std::string>();
    SCOPED_TRACE(prompt);
    const Ids ids = tok.encode_prompt(prompt, kImage);
    EXPECT_EQ(ids, sample.at("prompt_ids").get<Ids>());
    const Ids row(rows.begin() + static_cast<std::ptrdiff_t>(b * width),
                  rows.begin() + static_cast<std::ptrdiff_t>(b * width + static_cast<std::size_t>(lengths[b])));
    EXPECT_EQ(ids, row) << "expected.safetensors agrees with inputs.json";
    ++b;
  }
  EXPECT_EQ(b, lengths.size());
}

// "USER: <image>\nWhat": the first piece keeps sentencepiece's "▁" prefix, the text after the
// image token has none: "\n" is the byte piece <0x0A> (13), not "▁" + <0x0A>.
TEST(Tokenizer, OnlyTheStartOfThePromptGetsTheDummyPrefix) {
  const Tokenizer tok = Tokenizer::load_dir(kVicuna);
  const Ids ids = tok.encode_prompt("USER: <image>\nWhat", kImage);
  ASSERT_GE(ids.size(), 10u);
  EXPECT_EQ(ids[0], tok.bos_id());
  EXPECT_EQ(tok.piece(ids[1]), "\xE2\x96\x81");  // "▁"
  const auto image_at = std::find(ids.begin(), ids.end(), kImage) - ids.begin();
  EXPECT_EQ(tok.piece(ids[static_cast<std::size_t>(image_at) - 1]), "\xE2\x96\x81") << "the space before <image>";
  EXPECT_EQ(ids[static_cast<std::size_t>(image_at) + 1], 13);
  EXPECT_EQ(tok.piece(13), "<0x0A>");
  // The part before the image is exactly encode() of that text.
  EXPECT_EQ(Ids(ids.begin(), ids.begin() + image_at), tok.encode("USER: ", true));
}

TEST(Tokenizer, PromptsWithSeveralOrNoImages) {
  const Tokenizer tok = Tokenizer::load_dir(kVicuna);
  EXPECT_EQ(tok.encode_prompt("What is shown?", kImage), tok.encode("What is shown?", true));
  EXPECT_EQ(tok.encode_prompt("<image>", kImage), (Ids{tok.bos_id(), kImage}));
  EXPECT_EQ(tok.encode_prompt("<image><image>", kImage, false), (Ids{kImage, kImage}));
  const Ids two = tok.encode_prompt("A <image> and <image> too", kImage);
  EXPECT_EQ(std::count(two.begin(), two.end(), kImage), 2);
  EXPECT_EQ(tok.decode(two), "A  and  too") << "the image tokens have no text";
  EXPECT_EQ(tok.encode_prompt("", kImage, false), Ids{});
  expect_error([&] { tok.encode_prompt("<image>", -1); }, {"encode_prompt", "image_token_id", "-1"});
}

// legacy: true (transformers' old LlamaTokenizer): every text piece gets the dummy prefix, so a
// prompt is the concatenation of plain encode() calls.
TEST(Tokenizer, LegacyPrefixesEveryPiece) {
  const Tokenizer legacy = Tokenizer::load(kVicuna / "tokenizer.model", {.legacy = true});
  const Tokenizer modern = Tokenizer::load(kVicuna / "tokenizer.model");
  const std::string prompt = "USER: <image>\nWhat is shown in this image? ASSISTANT:";
  const Ids want = concat({legacy.encode("USER: ", true), {kImage},
                           legacy.encode("\nWhat is shown in this image? ASSISTANT:", false)});
  EXPECT_EQ(legacy.encode_prompt(prompt, kImage), want);
  EXPECT_NE(modern.encode_prompt(prompt, kImage), want);
}

TEST(Tokenizer, DecodeInvertsEncode) {
  const Tokenizer tok = Tokenizer::load_dir(kVicuna);
  for (const std::string text :
       {"What is shown in this image?", "USER: hi\nASSISTANT: 12, 345 and 6789.",
        "naïve café — ✓ 日本", "two  spaces and a trailing one ", "x"}) {
    const Ids ids = tok.encode(text, true);
    EXPECT_EQ(tok.decode(ids), text) << text;
  }
  EXPECT_EQ(tok.decode(Ids{}), "");
  // BOS/EOS, the image token and ids past the tokenizer (the model has 384 rows) give no text.
  const Ids ids = tok.encode("the shapes", false);
  EXPECT_EQ(tok.decode(concat({{tok.bos_id(), kImage, 383}, ids, {tok.eos_id(), 353}})), "the shapes");
  expect_error([&] { tok.decode(Ids{5, -2}); }, {"decode", "-2", "position 1"});
  expect_error([&] { (void)tok.piece(352); }, {"piece", "352", "[0, 352)"});
}

TEST(Tokenizer, SpecialIds) {
  const Tokenizer tok = Tokenizer::load_dir(kVicuna);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.piece(1), "<s>");
  EXPECT_EQ(tok.piece(3), "<0x00>");
  EXPECT_EQ(tok.source(), (kVicuna / "tokenizer.model").string());
}

TEST(Tokenizer, BadFilesNameTheFile) {
  ScratchDir scratch("tokenizer_test");
  const fs::path missing = scratch.path() / "tokenizer.model";
  expect_error<hired::IoError>([&] { Tokenizer::load(missing); }, {missing.string(), "no such file"});
  expect_error<hired::IoError>([&] { Tokenizer::load_dir(scratch.path()); }, {missing.string(), "no such file"});
  expect_error<hired::IoError>([&] { Tokenizer::load(scratch.path()); }, {scratch.path().string(), "directory"});

  const fs::path empty = scratch.path() / "empty.model";
  write_text(empty, "");
  expect_error([&] { Tokenizer::load(empty); }, {empty.string(), "empty"});

  const fs::path garbage = scratch.path() / "garbage.model";
  write_text(garbage, std::string(3000, '\xff'));
  expect_error([&] { Tokenizer::load(garbage); }, {garbage.string(), "not a sentencepiece model"});

  const fs::path text = scratch.path() / "text.model";
  write_text(text, "this is not a tokenizer at all\n");
  expect_error([&] { Tokenizer::load(text); }, {text.string()});

  const fs::path truncated = scratch.path() / "truncated.model";
  const std::string model = read_text(kVicuna / "tokenizer.model");
  write_text(truncated, model.substr(0, model.size() / 2));
  expect_error([&] { Tokenizer::load(truncated); },
               {truncated.string(), "not a sentencepiece model (malformed protobuf at byte"});

  // Pieces sentencepiece's trie cannot hold end the process inside sentencepiece: refused
  // first (found by fuzzing). A repeated field may follow the rest: one more piece appended
  // to vicuna_tiny's 352.
  const fs::path empty_piece = scratch.path() / "empty_piece.model";
  write_text(empty_piece, model + std::string("\x0a\x02\x0a\x00", 4));
  expect_error([&] { Tokenizer::load(empty_piece); }, {empty_piece.string(), "piece 352 is empty"});
  const fs::path nul_piece = scratch.path() / "nul_piece.model";
  write_text(nul_piece, model + std::string("\x0a\x05\x0a\x03" "a" "\x00" "b", 7));
  expect_error([&] { Tokenizer::load(nul_piece); }, {nul_piece.string(), "piece 352 contains a NUL byte"});

  // tokenizer_config.json next to a good model
  const fs::path dir = scratch.path() / "checkpoint";
  fs::create_directories(dir);
  fs::copy_file(kVicuna / "tokenizer.model", dir / "tokenizer.model");
  write_text(dir / "tokenizer_config.json", "{\"legacy\": ");
  expect_error([&] { Tokenizer::load_dir(dir); }, {(dir / "tokenizer_config.json").string(), "JSON"});
  write_text(dir / "tokenizer_config.json", "{\"legacy\": \"no\"}");
  expect_error([&] { Tokenizer::load_dir(dir); }, {"tokenizer_config.json", "legacy"});
  write_text(dir / "tokenizer_config.json", "{\"legacy\": true}");
  EXPECT_TRUE(Tokenizer::load_dir(dir).options().legacy);
  fs::remove(dir / "tokenizer_config.json");
  EXPECT_FALSE(Tokenizer::load_dir(dir).options().legacy) << "transformers 5's default";
}

}  // namespace
