// faceq/base/home.hpp — where faceq keeps its state, and where its data files are.
//
// All state lives under one home directory: models/ (weights), faceq.db (the
// gallery), registry/ (runs and registered models) and datasets/ — except
// the gallery when it lives in PostgreSQL (database_url). main() resolves the
// home once (--home > FACEQ_HOME > $XDG_DATA_HOME/faceq > ~/.local/share/faceq;
// --db > FACEQ_DB) and hands it to the core; the core never reads the
// environment.
//
// Thread-safety: a Home is a plain value (paths); copies may be used from any
// thread; it creates nothing (the commands that write create what they need).
#pragma once

#include <filesystem>
#include <string>
#include <utility>

namespace faceq {

struct Home {
    Home() = default;
    Home(std::filesystem::path root_dir) : root(std::move(root_dir)) {}  // NOLINT: Home{dir} reads as it means

    std::filesystem::path root;
    // The gallery's database when it is not the SQLite file in the home: a
    // PostgreSQL URL or libpq key=value string (main: --db > FACEQ_DB).
    std::string database_url;

    std::filesystem::path models_dir() const { return root / "models"; }
    // The SQLite gallery file (used when database_url is empty).
    std::filesystem::path gallery_path() const { return root / "faceq.db"; }
    // Where the gallery is, for people and for Gallery::open: database_url
    // when set, else gallery_path().
    std::string gallery_location() const { return database_url.empty() ? gallery_path().string() : database_url; }
    std::filesystem::path registry_dir() const { return root / "registry"; }
    std::filesystem::path datasets_dir() const { return root / "datasets"; }
};

// The directory holding models.json and the other files shipped in data/:
// `explicit_dir` when not empty; else `<exe dir>/../share/faceq` when it holds a
// models.json (an installed binary); else the source tree's data/ that this
// binary was built from.
std::filesystem::path resolve_data_dir(const std::filesystem::path& explicit_dir,
                                       const std::filesystem::path& executable);

// faceq's version string, e.g. "0.1.0".
const char* version() noexcept;

}  // namespace faceq
