// The JSON documents hired reads from a checkpoint: parse_json's limits, and
// model.safetensors.index.json (parse_weight_index), one test per rejection.
#include "hired/io/file.hpp"
#include "hired/io/weight_index.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using hired_test::expect_error;

std::string nested_array(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

TEST(ParseJson, SixtyFourLevelsParseAndDeeperIsRefused) {
  EXPECT_TRUE(hired::io::parse_json(nested_array(64), "doc").is_array());
  expect_error([] { hired::io::parse_json(nested_array(65), "doc.json"); },
               {"doc.json: JSON nested deeper than 64 levels"});
  // Deep enough that printing or destroying it recursively would exhaust the stack.
  expect_error([] { hired::io::parse_json(std::string(1'000'000, '['), "doc.json"); },
               {"doc.json", "nested deeper than 64 levels"});
  const std::string objects = R"({"a":)" + nested_array(70) + "}";
  expect_error([&] { hired::io::parse_json(objects, "doc.json"); }, {"nested deeper"});
}

TEST(ParseJson, InvalidTextNamesTheLabel) {
  expect_error([] { hired::io::parse_json("{\"a\": ", "config.json"); },
               {"config.json: not valid JSON"});
  expect_error([] { hired::io::parse_json("", "config.json"); }, {"config.json: not valid JSON"});
}

using hired::io::WeightIndexEntry;

std::vector<WeightIndexEntry> parse_index(const std::string& text) {
  return hired::io::parse_weight_index(hired::io::parse_json(text, "index.json"), "index.json");
}

TEST(WeightIndex, EntriesInWeightMapOrder) {
  const auto entries = parse_index(R"({"metadata": {"total_size": 24}, "weight_map": {
      "lm_head.weight": "model-00002-of-00002.safetensors",
      "image_newline": "model-00001-of-00002.safetensors"}})");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].tensor, "image_newline");
  EXPECT_EQ(entries[0].file, "model-00001-of-00002.safetensors");
  EXPECT_EQ(entries[1].tensor, "lm_head.weight");
  EXPECT_EQ(entries[1].file, "model-00002-of-00002.safetensors");
}

TEST(WeightIndex, EveryRejectionNamesTheIndex) {
  expect_error([] { parse_index("[]"); }, {"index.json", "not a JSON object"});
  expect_error([] { parse_index(R"({"metadata": {}})"); }, {"index.json", "no 'weight_map'"});
  expect_error([] { parse_index(R"({"weight_map": []})"); }, {"index.json", "no 'weight_map'"});
  expect_error([] { parse_index(R"({"weight_map": {}})"); }, {"index.json", "lists no tensors"});
  expect_error([] { parse_index(R"({"weight_map": {"w": 3}})"); },
               {"index.json", "weight_map['w'] is not a file name: 3"});
  // Shards sit next to the index: anything that names another place is refused.
  for (const std::string file : {"../a.safetensors", "/etc/passwd", "dir/a.safetensors", ".",
                                 "..", ""}) {
    expect_error([&] { parse_index(R"({"weight_map": {"w": ")" + file + R"("}})"); },
                 {"index.json: weight_map['w'] is not a file name in the checkpoint directory: '" +
                  file + "'"});
  }
  // A NUL would cut the name short where the file is opened (and the message where it is
  // printed: the explanation comes first).
  expect_error([] { parse_index(R"({"weight_map": {"w": "a.safetensors\u0000/../x"}})"); },
               {"index.json", "not a file name in the checkpoint directory"});
  expect_error([] { parse_index(R"({"weight_map": {"w": "a\u0000b"}})"); },
               {"index.json", "not a file name in the checkpoint directory"});
}

}  // namespace
