// Reading a whole file, the one way every reader of hired::io does it. `label` names the file
// in messages: the path, or e.g. "tokenizer 'dir/tokenizer.model'".
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace hired::io {

/// hired::IoError unless `path` names an existing file that is not a directory.
void check_file(const std::filesystem::path& path, std::string_view label);

/// The file's bytes. hired::IoError for a missing file, a directory, or one that cannot be
/// opened or read.
std::string read_file(const std::filesystem::path& path, std::string_view label);

/// Arrays and objects nested deeper than this are refused: hired's files nest a few levels, and
/// what reads or prints a parsed document recurses once per level.
inline constexpr int kMaxJsonDepth = 64;

/// A JSON document from text. hired::Error "<label>: not valid JSON: ..." when it does not
/// parse, "<label>: JSON nested deeper than 64 levels" past kMaxJsonDepth.
nlohmann::json parse_json(std::string_view text, std::string_view label);

/// read_file, then parse_json.
nlohmann::json read_json(const std::filesystem::path& path, std::string_view label);

}  // namespace hired::io
