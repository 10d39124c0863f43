// datasets.cpp — where datasets live, UTKFace labels, age bands, seeded
// hashes and stratified splits, and the dataset catalogue (see
// faceq/training/datasets.hpp); also the small helpers the other dataset
// files share (datasets_impl.hpp). The download is in dataset_download.cpp,
// preparing in prepare_engine.cpp, prepare_utkface.cpp and
// prepare_identities.cpp.
#include "faceq/training/datasets.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "faceq/base/error.hpp"
#include "training/datasets_impl.hpp"

namespace faceq {

namespace datasets_impl {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::optional<json> read_json_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input, fmt::format("'{}' is not valid JSON: {}", path.string(), e.what()));
    }
}

}  // namespace datasets_impl

using namespace datasets_impl;

namespace {

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

// ====================================================================== where

fs::path utkface_dir(const Home& home) { return home.datasets_dir() / "utkface"; }

fs::path identities_dir(const Home& home, const std::string& name) { return home.datasets_dir() / "identities" / name; }

fs::path find_identities(const Home& home, const std::string& folder_or_name) {
    std::error_code ec;
    if (fs::is_directory(folder_or_name, ec) || folder_or_name.find('/') != std::string::npos) return folder_or_name;
    return identities_dir(home, folder_or_name);
}

// ====================================================================== labels

std::optional<UtkLabel> parse_utkface_name(const std::string& file_name, std::string* why) {
    auto fail = [&](const std::string& reason) -> std::optional<UtkLabel> {
        if (why) *why = reason;
        return std::nullopt;
    };
    std::string stem = fs::path(file_name).filename().string();
    for (const char* suffix : {".jpg.chip.jpg", ".chip.jpg", ".jpg", ".jpeg", ".png"})
        if (ends_with(lower(stem), suffix)) {
            stem.resize(stem.size() - std::strlen(suffix));
            break;
        }
    std::vector<std::string> parts;
    std::stringstream ss(stem);
    for (std::string p; std::getline(ss, p, '_');) parts.push_back(p);
    if (parts.size() != 4)
        return fail(fmt::format("expected age_gender_race_timestamp, found {} field{}", parts.size(),
                                parts.size() == 1 ? "" : "s"));
    if (!all_digits(parts[0]) || parts[0].size() > 3) return fail(fmt::format("age '{}' is not a number", parts[0]));
    const int age = std::stoi(parts[0]);
    if (age > 120) return fail(fmt::format("age {} is out of range", age));
    if (parts[1] != "0" && parts[1] != "1") return fail(fmt::format("gender '{}' is not 0 or 1", parts[1]));
    if (parts[2].size() != 1 || parts[2][0] < '0' || parts[2][0] > '4')
        return fail(fmt::format("race '{}' is not 0..4", parts[2]));
    if (!all_digits(parts[3])) return fail(fmt::format("timestamp '{}' is not a number", parts[3]));
    return UtkLabel{age, parts[1] == "0" ? "male" : "female", parts[2][0] - '0'};
}

const std::vector<std::string>& age_bands() {
    static const std::vector<std::string> bands{"0-12", "13-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"};
    return bands;
}

std::size_t age_band_index(double age) {
    if (age < 13) return 0;
    if (age < 20) return 1;
    return std::min<std::size_t>(7, static_cast<std::size_t>(age / 10));
}

std::uint64_t seeded_hash(const std::string& text, std::uint64_t seed) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    std::uint64_t z = h ^ (seed * 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::vector<std::string> stratified_split(const std::vector<std::string>& keys, const std::vector<std::string>& strata,
                                          double val_fraction, double test_fraction, std::uint64_t seed) {
    if (keys.size() != strata.size()) throw Error(ErrorKind::internal, "stratified_split: keys and strata differ");
    std::map<std::string, std::vector<std::size_t>> groups;
    for (std::size_t i = 0; i < keys.size(); ++i) groups[strata[i]].push_back(i);
    std::vector<std::string> out(keys.size(), "train");
    for (auto& [stratum, members] : groups) {
        std::vector<std::pair<std::uint64_t, std::size_t>> order;
        for (std::size_t i : members) order.push_back({seeded_hash(keys[i], seed), i});
        std::sort(order.begin(), order.end());
        const double n = static_cast<double>(order.size());
        const auto n_test = static_cast<std::size_t>(std::lround(n * test_fraction));
        const auto n_val = static_cast<std::size_t>(std::lround(n * val_fraction));
        for (std::size_t k = 0; k < order.size(); ++k)
            out[order[k].second] = k < n_test ? "test" : (k < n_test + n_val ? "val" : "train");
    }
    return out;
}

// ====================================================================== catalogue

DatasetEntry find_dataset_entry(const fs::path& datasets_json, const std::string& name) {
    const auto doc = read_json_file(datasets_json);
    if (!doc)
        throw Error(ErrorKind::not_found, fmt::format("dataset catalogue '{}' not found", datasets_json.string()));
    try {
        std::vector<std::string> names;
        for (const auto& d : doc->at("datasets")) {
            names.push_back(d.at("name").get<std::string>());
            if (names.back() != name) continue;
            DatasetEntry e;
            e.name = name;
            e.source_file = d.at("source_file").get<std::string>();
            e.url = d.value("url", "");
            e.sha256 = d.value("sha256", "");
            e.size = d.value("size", std::uint64_t{0});
            e.license = d.value("license", "");
            e.description = d.value("description", "");
            if (e.source_file.empty() || e.source_file.find('/') != std::string::npos)
                throw Error(ErrorKind::invalid_input, fmt::format("dataset catalogue '{}': '{}' has a bad source_file",
                                                                  datasets_json.string(), name));
            return e;
        }
        std::string known;
        for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
        throw Error(ErrorKind::not_found, fmt::format("unknown dataset '{}' (known: {})", name, known));
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("dataset catalogue '{}' is malformed: {}", datasets_json.string(), e.what()));
    }
}

}  // namespace faceq
