// tests/json_lines.hpp — faceq's JSON-lines output (one record a line) as the
// CLI tests read it: every line must parse, else the test fails naming it.
#pragma once

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace faceq::test {

inline std::vector<nlohmann::json> json_lines(const std::string& text) {
    std::vector<nlohmann::json> records;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        INFO("stdout line: " << line);
        REQUIRE(nlohmann::json::accept(line));
        records.push_back(nlohmann::json::parse(line));
    }
    return records;
}

}  // namespace faceq::test
