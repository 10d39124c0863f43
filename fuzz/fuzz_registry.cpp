// fuzz_registry.cpp — libFuzzer harness for the model registry's readers
// (models/registry.hpp) and the calibration reader (identity/calibration.hpp):
// the files under <home>/registry that `faceq runs`, `faceq models`, `deploy`
// and every identification (the deployed calibration) read. People and jq
// edit them, disks tear them; a bad one must give Error{...}, never a crash.
//
// Input: up to five files separated by lines "----": a run's run.json, its
// metrics.jsonl, model.json of the registered model "face-recognition", its
// version 1's version.json, and that version's artifacts/calibration.json.
// A missing section is a missing file. They are written into a scratch home
// and read back through the public API, as the CLI and resolve_calibration()
// do. The home is made in $TMPDIR when it is set (tools/test.sh makes one and
// removes it after the run), else on /dev/shm when there is one (the registry
// fsyncs what it rewrites): libFuzzer ends a run with _Exit, so nothing the
// harness registers at exit runs and the home outlives the process.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/identity/calibration.hpp"
#include "faceq/models/registry.hpp"

namespace fs = std::filesystem;

namespace {

const std::string run_id = "20261201-000000-000-abcdef";
const std::string model = "face-recognition";

// The scratch home, made once per process.
const fs::path& home_root() {
    static const fs::path root = [] {
        const bool shm = std::getenv("TMPDIR") == nullptr && fs::is_directory("/dev/shm");
        const fs::path base = shm ? fs::path("/dev/shm") : fs::temp_directory_path();
        std::string pattern = (base / "faceq-fuzz-registry-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) std::abort();
        return fs::path(pattern);
    }();
    return root;
}

void put(const fs::path& path, const std::string_view* contents) {
    std::error_code ec;
    if (contents == nullptr) {
        fs::remove(path, ec);
        return;
    }
    fs::create_directories(path.parent_path(), ec);
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(contents->data(), static_cast<std::streamsize>(contents->size()));
}

// What deployed_calibration() (models/resolve.cpp) does with the file.
void read_calibration(const fs::path& file) {
    std::ifstream in(file);
    if (!in) return;
    faceq::Calibration c;
    try {
        c = faceq::calibration_from_json(nlohmann::json::parse(in));
    } catch (const nlohmann::json::exception&) {
        return;  // resolve.cpp catches the parser's errors and uses the default
    } catch (const faceq::Error&) {
        return;
    }
    if (c.impostor_tail.empty()) return;
    // `--far` on a calibrated gallery (resolve_calibration).
    const float threshold = faceq::threshold_for_far(c, 0.001, 100);
    (void)faceq::expected_far(c, threshold, 100);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string_view> sections;
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    for (;;) {
        const auto cut = rest.find("\n----\n");
        sections.push_back(rest.substr(0, cut));
        if (cut == std::string_view::npos || sections.size() == 5) break;
        rest.remove_prefix(cut + 6);
    }
    const auto section = [&](std::size_t i) { return i < sections.size() ? &sections[i] : nullptr; };

    const faceq::Home home{home_root()};
    const fs::path registry = home.registry_dir();
    const fs::path run_dir = registry / "runs" / run_id;
    const fs::path model_dir = registry / "models" / model;
    put(run_dir / "run.json", section(0));
    put(run_dir / "metrics.jsonl", section(1));
    put(model_dir / "model.json", section(2));
    put(model_dir / "versions" / "1" / "version.json", section(3));
    put(model_dir / "versions" / "1" / "artifacts" / "calibration.json", section(4));

    const faceq::Registry reg(home);
    // Every call may refuse with faceq::Error; any other exception escaping
    // the core is a finding (libFuzzer reports it as a crash).
    try {
        faceq::RunFilter filter;
        filter.metrics.push_back(faceq::parse_metric_condition("val_acc>=0.5"));
        (void)reg.runs(filter);
    } catch (const faceq::Error&) {
    }
    try {
        (void)reg.metric_history(run_id);
    } catch (const faceq::Error&) {
    }
    try {
        const auto versions = reg.versions(model);
        (void)faceq::headline_metrics(versions);
        (void)reg.best_version(model, "val_acc", "max");
    } catch (const faceq::Error&) {
    }
    try {
        if (const auto deployed = faceq::find_deployed(home, model))
            read_calibration(deployed->artifacts_dir / "calibration.json");
    } catch (const faceq::Error&) {
    }
    return 0;
}
