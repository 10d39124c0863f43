// tests/test_models.hpp — one home with real models for every test that needs
// them: installed once per build tree from the local mirror (../shared/mirror)
// and Debian's libdlib-data, exactly as `faceq download models --mirror` does.
// REQUIRE_MODELS() fails a test when the shared data or the mirror is absent,
// or skips it with FACEQ_REQUIRE_DATA=0 (see REQUIRE_DATA in test_support.hpp).
#pragma once

#include <mutex>

#include "faceq/base/home.hpp"
#include "faceq/models/download.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "test_support.hpp"

namespace faceq::test {

inline std::filesystem::path mirror_dir() { return shared_dir() / "mirror"; }

inline const Manifest& test_manifest() {
    static const Manifest manifest = load_manifest(std::filesystem::path(FACEQ_SOURCE_DIR) / "data" / "models.json");
    return manifest;
}

// The test home with models installed; empty when the mirror is missing.
inline const Home& test_home() {
    static std::once_flag once;
    static Home home;
    std::call_once(once, [] {
        std::error_code ec;
        if (!std::filesystem::is_directory(mirror_dir(), ec)) return;
        Home h{FACEQ_TEST_HOME};
        std::filesystem::create_directories(h.models_dir());
        DownloadOptions options;
        options.mirror = mirror_dir().string();
        options.fetch.retries = 0;
        install_models(test_manifest(), h.models_dir(), options);
        home = h;
    });
    return home;
}

inline ModelSet test_model_set(bool need_cnn = false) {
    return installed_models(test_home().models_dir(), test_manifest(), need_cnn);
}

#define REQUIRE_MODELS()                                                                                        \
    do {                                                                                                        \
        REQUIRE_SHARED();                                                                                       \
        REQUIRE_DATA(!::faceq::test::test_home().root.empty(), "the model mirror", ::faceq::test::mirror_dir(), \
                     ::faceq::test::model_mirror_source);                                                       \
    } while (false)

}  // namespace faceq::test
