// expect_error: the one assertion every rejection test uses.
#pragma once

#include "hired/error.hpp"

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <initializer_list>
#include <string>

namespace hired_test {

/// Expects `body` to throw hired::Error whose message contains every one of `parts` (the
/// argument it names, and whatever else identifies the problem).
inline void expect_error(const std::function<void()>& body, std::initializer_list<std::string> parts) {
  try {
    body();
    ADD_FAILURE() << "expected hired::Error, nothing was thrown";
  } catch (const hired::Error& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message '" << e.what() << "' does not contain '" << part << "'";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected hired::Error, got another exception: " << e.what();
  }
}

inline void expect_error(const std::function<void()>& body, const std::string& part) {
  expect_error(body, {part});
}

}  // namespace hired_test
