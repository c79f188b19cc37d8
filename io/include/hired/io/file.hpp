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

/// A JSON document: read_file, then hired::Error "<label>: not valid JSON: ..." when it does
/// not parse.
nlohmann::json read_json(const std::filesystem::path& path, std::string_view label);

}  // namespace hired::io
