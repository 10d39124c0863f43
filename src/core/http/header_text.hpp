// http/header_text.hpp — the two string helpers of HTTP header values, shared
// by the ApiService (server.cpp) and the multipart parser (multipart.cpp),
// which lives in its own file so the fuzzing build (fuzz/) can compile it
// without the handlers and their dlib-heavy dependencies.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>

namespace faceq::detail {

// ASCII lower case: header names and tokens are case-insensitive ASCII.
inline std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
inline std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace faceq::detail
