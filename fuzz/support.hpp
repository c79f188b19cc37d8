// What every fuzz target shares: bad input is what hired reports by name (hired::Error, or
// hired::IoError for a file), exactly what the tools exit 2 for; any other exception escapes to
// libFuzzer, which reports it as a crash.
#pragma once

#include "hired/error.hpp"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace hired_fuzz {

/// Runs `body`; hired's named errors are the expected outcome of bad input.
template <typename Body>
void reject_bad_input(Body&& body) {
  try {
    body();
  } catch (const hired::Error&) {
  } catch (const hired::IoError&) {
  }
}

/// A directory of this process's own under the temporary directory, for the readers that take
/// paths; the same one on every call (created on first use, removed at exit).
inline const std::filesystem::path& scratch_dir() {
  struct Scratch {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("hired_fuzz_" + std::to_string(::getpid()));
    Scratch() { std::filesystem::create_directories(path); }
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Scratch scratch;
  return scratch.path;
}

/// Writes `bytes` to `name` in scratch_dir(), replacing what was there; returns its path.
inline std::filesystem::path write_scratch(std::string_view name, const void* bytes,
                                           std::size_t size) {
  const std::filesystem::path path = scratch_dir() / name;
  // A new file each time: truncating one that has data makes ext4 flush it to disk on close.
  std::filesystem::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
  return path;
}

/// The input as text (JSON documents).
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace hired_fuzz
