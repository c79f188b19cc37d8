#include "hired/io/file.hpp"

#include "hired/error.hpp"

#include <fstream>
#include <iterator>

namespace hired::io {

void check_file(const std::filesystem::path& path, std::string_view label) {
  std::error_code ignored;
  const auto status = std::filesystem::status(path, ignored);
  check<IoError>(std::filesystem::exists(status), "{}: no such file", label);
  check<IoError>(!std::filesystem::is_directory(status), "{}: is a directory, not a file", label);
}

std::string read_file(const std::filesystem::path& path, std::string_view label) {
  check_file(path, label);
  std::ifstream in(path, std::ios::binary);
  check<IoError>(in.good(), "{}: cannot open the file for reading", label);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check<IoError>(!in.bad(), "{}: read error", label);
  return bytes;
}

nlohmann::json read_json(const std::filesystem::path& path, std::string_view label) {
  const std::string text = read_file(path, label);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", label, e.what());
  }
}

}  // namespace hired::io
