// make_registry_seed.cpp — writes the seed of fuzz_registry: a registry as the
// CLI leaves it after `faceq train recognition` + `faceq deploy` (a finished
// run with step metrics, version 1 of "face-recognition" deployed, its
// calibration.json), made through the same Registry calls, its five files
// joined by "----" lines as fuzz_registry.cpp reads them. Run once by hand
// (docs/fuzzing.md), against the fuzzing build's library:
//
//   clang++-14 -std=c++17 -fsanitize=address,undefined -Iinclude -Isrc/core \
//       fuzz/make_registry_seed.cpp build-fuzz/fuzz/libfaceq_fuzz_core.a \
//       -lfmt -lcrypto -lopencv_imgproc -lopencv_core -lpng -ljpeg -o /tmp/make_registry_seed
//   /tmp/make_registry_seed > fuzz/corpus/registry/deployed_recognition
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "faceq/identity/calibration.hpp"
#include "faceq/models/registry.hpp"

namespace fs = std::filesystem;

int main() {
    std::string pattern = (fs::temp_directory_path() / "faceq-registry-seed-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) return 1;
    const faceq::Home home{pattern};
    faceq::Registry reg(home);
    const faceq::RunInfo run = reg.create_run(
        "recognition", {{"dataset", "lfw-dev"}, {"far_target", 0.001}},
        {{"model_name", "face-recognition"}, {"headline_metrics", {"val_acc", "threshold"}}}, "v0.1.0-12-gabcdef0");
    reg.log_metric(run.id, "val_acc", 0.97, 1);
    reg.log_metrics(run.id, {{"val_acc", 0.981}, {"threshold", 0.466}}, 2);
    std::ofstream(run.artifacts_dir() / "calibration.json") << faceq::calibration_to_json(faceq::default_calibration());
    reg.update_run(run.id, {}, {}, {{"val_acc", 0.981}, {"threshold", 0.466}});
    reg.end_run(run.id, faceq::RunStatus::finished);
    reg.register_model("face-recognition", run.id, "seed");
    reg.deploy("face-recognition", 1);

    const fs::path model = home.registry_dir() / "models" / "face-recognition";
    const fs::path files[] = {run.dir / "run.json", run.dir / "metrics.jsonl", model / "model.json",
                              model / "versions" / "1" / "version.json",
                              model / "versions" / "1" / "artifacts" / "calibration.json"};
    std::string out;
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        while (!text.empty() && text.back() == '\n') text.pop_back();
        out += (out.empty() ? "" : "\n----\n") + text;
    }
    std::cout << out << "\n";
    fs::remove_all(pattern);
    return 0;
}
