// The JSON documents hired reads from a checkpoint: parse_json's limits.
#include "hired/io/file.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
