// faceq/base/home.hpp — where faceq keeps its state, and where its data files are.
//
// All state lives under one home directory: models/ (weights), faceq.db (the
// gallery), registry/ (runs and registered models) and datasets/. main()
// resolves the home once (--home > FACEQ_HOME > $XDG_DATA_HOME/faceq >
// ~/.local/share/faceq) and hands it to the core; the core never reads the
// environment.
//
// Thread-safety: a Home is a plain value (paths); copies may be used from any
// thread; it creates nothing (the commands that write create what they need).
#pragma once

#include <filesystem>

namespace faceq {

struct Home {
    std::filesystem::path root;

    std::filesystem::path models_dir() const { return root / "models"; }
    std::filesystem::path gallery_path() const { return root / "faceq.db"; }
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
