// registry_impl.hpp (private) — what the registry files share (registry.cpp:
// files, the lock, statuses and filters; registry_runs.cpp: runs;
// registry_models.cpp: model versions and aliases): where things live under
// <home>/registry, JSON file reads and atomic writes, name checks, and the
// registry lock. See faceq/models/registry.hpp and docs/registry.md.
//
// Errors: Error{io} naming the path, Error{invalid_input} for a file that does
// not parse, Error{usage} for a bad name.
// Thread-safety: RegistryLock serialises writers across processes (flock);
// the rest is reentrant.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/home.hpp"

namespace faceq::registry_impl {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline constexpr int registry_schema = 1;

// ---------------------------------------------------------------- files

// The parsed file, or std::nullopt when it cannot be opened. Every registry
// file is a JSON object: anything else is Error{invalid_input}, so readers may
// look fields up without checking the type first.
std::optional<json> read_json_if_exists(const fs::path& path);
void write_json(const fs::path& path, const json& j);  // atomically
void make_dirs(const fs::path& dir);

// Names become directory names: keep them plain.
void check_name(const std::string& what, const std::string& name);

// The files below `dir`, relative to it, sorted; none when it is missing.
std::vector<std::string> list_files(const fs::path& dir);

// metrics[key] when it is a finite number.
std::optional<double> metric_value(const json& metrics, const std::string& key);

// Fields of files people and tools edit, read without trusting their type
// (a const json's operator[] on a missing key is undefined behaviour, and
// get<int>() of a huge float is too; both found by fuzz/fuzz_registry.cpp):
// j[key] when it is a string, else "" (missing, null or another type).
std::string string_or_empty(const json& j, const char* key);
// j[key] when it is an integer that fits, `fallback` when it is missing, and
// std::nullopt when it is anything else.
std::optional<std::int64_t> integer_field(const json& j, const char* key, std::int64_t fallback);

// An exclusive flock on registry/.lock for the lifetime of the object.
class RegistryLock {
public:
    explicit RegistryLock(const fs::path& root);
    ~RegistryLock();  // closing releases the lock
    RegistryLock(const RegistryLock&) = delete;
    RegistryLock& operator=(const RegistryLock&) = delete;

private:
    int fd_ = -1;
};

// ---------------------------------------------------------------- where

inline fs::path runs_dir(const Home& home) { return home.registry_dir() / "runs"; }
inline fs::path models_dir(const Home& home) { return home.registry_dir() / "models"; }
inline fs::path model_dir(const Home& home, const std::string& name) { return models_dir(home) / name; }
inline fs::path version_dir(const Home& home, const std::string& name, int v) {
    return model_dir(home, name) / "versions" / std::to_string(v);
}

}  // namespace faceq::registry_impl
