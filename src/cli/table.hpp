// table.hpp — aligned text tables for people on stdout (the registry and
// training commands' default format; `--format json` gives records instead).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "faceq/base/text.hpp"

namespace faceq::cli {

// Left-aligned columns, two spaces apart; the last column is not padded.
// Cells go through printable(): a name with a newline or an escape sequence
// stays in its cell.
inline void print_table(const std::vector<std::vector<std::string>>& raw, std::ostream& out = std::cout) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : raw) {
        rows.emplace_back();
        for (const auto& cell : row) rows.back().push_back(printable(cell));
    }
    std::vector<std::size_t> width;
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], row[i].size());
        }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i)
            line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], width[i]);
        out << line << '\n';
    }
    out.flush();
}

// A metric value for a table cell: 4 significant decimals, "-" when absent.
inline std::string metric_cell(const nlohmann::json& metrics, const std::string& key) {
    if (!metrics.is_object() || !metrics.contains(key)) return "-";
    const auto& v = metrics[key];
    if (v.is_number_integer()) return std::to_string(v.get<long long>());
    if (v.is_number()) return fmt::format("{:.4g}", v.get<double>());
    if (v.is_string()) return v.get<std::string>();
    return v.dump();
}

}  // namespace faceq::cli
