// Runs one of hired's command-line tools the way a user does, capturing its exit status,
// stdout and stderr; and the expectation every rejection test shares.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace hired_test {

struct ProcessResult {
  int status = -1;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A per-process scratch file `name` (tests of one executable share the directory).
inline std::filesystem::path scratch(const std::string& tag, const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("hired_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir / name;
}

/// `exe args` through the shell; `args` is pasted as is (quote paths yourself).
inline ProcessResult run_process(const std::string& exe, const std::string& args,
                                 const std::string& tag = "process") {
  const std::filesystem::path out = scratch(tag, "stdout"), err = scratch(tag, "stderr");
  const std::string command =
      "'" + exe + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
  const int raw = std::system(command.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}

/// Exit status 2, no result on stdout, and an error that names `what` as the last line of
/// stderr; with `only_line`, that error is all of stderr (tools without progress output).
inline void expect_rejected(const ProcessResult& r, const std::string& what, bool only_line = true) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << "printed a result on bad input: " << r.out;
  ASSERT_FALSE(r.err.empty());
  ASSERT_EQ(r.err.back(), '\n') << r.err;
  const std::size_t start = r.err.rfind('\n', r.err.size() - 2);
  const std::string last = r.err.substr(start == std::string::npos ? 0 : start + 1);
  if (only_line) {
    EXPECT_EQ(last, r.err) << "stderr must be one line: " << r.err;
  }
  EXPECT_NE(last.find(what), std::string::npos) << "'" << last << "' does not name '" << what << "'";
}

}  // namespace hired_test
