// resolve.cpp — see faceq/models/resolve.hpp.
#include "faceq/models/resolve.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "faceq/base/error.hpp"
#include "faceq/models/registry.hpp"

namespace faceq {
namespace {

void warn(const LogFn& log, const std::string& message) {
    if (log) log("warning: " + message);
}

// The deployed calibration, when there is one that fits this embedder.
std::optional<Calibration> deployed_calibration(const Home& home, const EmbedderIdentity& embedder, const LogFn& log) {
    std::optional<DeployedModel> deployed;
    try {
        deployed = find_deployed(home, recognition_model_name);
    } catch (const Error& e) {
        warn(log, fmt::format("cannot read the registry: {}; using the default calibration", e.what()));
        return std::nullopt;
    }
    if (!deployed) return std::nullopt;
    const auto file = deployed->artifacts_dir / "calibration.json";
    const std::string what = fmt::format("{} v{}", deployed->name, deployed->version);
    Calibration c;
    try {
        std::ifstream in(file);
        if (!in) throw Error(ErrorKind::not_found, "missing");
        c = calibration_from_json(nlohmann::json::parse(in));
    } catch (const std::exception& e) {
        warn(log, fmt::format("deployed calibration '{}' ({}) cannot be used: {}; using the default calibration",
                              file.string(), what, e.what()));
        return std::nullopt;
    }
    if (!embedder_mismatch({c.embedder, c.embedder_sha256}, embedder).empty()) {
        warn(log, fmt::format("deployed calibration {} was measured with embedder '{}', not the installed '{}'; "
                              "using the default calibration (run `faceq train recognition` again)",
                              what, c.embedder, embedder.id));
        return std::nullopt;
    }
    c.source = what;
    return c;
}

}  // namespace

ModelSet installed_models(const std::filesystem::path& models_dir, const Manifest& manifest, bool need_cnn) {
    ModelSet set;
    set.detector_cnn = need_cnn
                           ? std::optional<InstalledModel>(require_installed(models_dir, manifest, role::detector_cnn))
                           : find_installed(models_dir, manifest, role::detector_cnn);
    set.detector_yunet = find_installed(models_dir, manifest, role::detector_yunet);
    set.landmarks = find_installed(models_dir, manifest, role::landmarks);
    set.embedder = require_installed(models_dir, manifest, role::embedder);
    set.gender = find_installed(models_dir, manifest, role::gender);
    return set;
}

ModelSet resolve_models(const Home& home, const Manifest& manifest, bool need_cnn) {
    ModelSet set = installed_models(home.models_dir(), manifest, need_cnn);
    if (const auto deployed = find_deployed(home, age_gender_model_name)) {
        // The weights' checksum names the version; a broken head is reported
        // when the Analyzer loads it, with its path.
        std::ifstream in(deployed->artifacts_dir / "age_gender.json");
        const auto meta = nlohmann::json::parse(in, nullptr, false);
        const std::string sha = meta.is_object() ? meta.value("weights_sha256", "") : "";
        set.age_gender = DeployedHead{deployed->artifacts_dir, fmt::format("{}@{}:{}", age_gender_model_name,
                                                                           deployed->version, sha.substr(0, 12))};
    }
    return set;
}

EmbedderIdentity embedder_identity(const ModelSet& models, const AnalyzeOptions& options) {
    return descriptor_identity({models.embedder.version(), models.embedder.sha256}, chip_alignment(options));
}

EmbedderIdentity embedder_identity(const InstalledModel& embedder) {
    return descriptor_identity({embedder.version(), embedder.sha256}, chip_alignment(AnalyzeOptions{}));
}

Calibration resolve_calibration(const Home& home, const EmbedderIdentity& embedder, const CalibrationChoice& choice,
                                std::size_t gallery_persons, const LogFn& log) {
    Calibration c = deployed_calibration(home, embedder, log).value_or(default_calibration());
    if (c.impostor_tail.empty()) c.impostor_tail = default_calibration().impostor_tail;
    if (choice.far > 0) {
        c.threshold = threshold_for_far(c, choice.far, std::max<std::size_t>(gallery_persons, 1));
        c.source += fmt::format(", --far {}", choice.far);
    } else if (choice.threshold > 0) {
        c.threshold = choice.threshold;
        c.source += fmt::format(", --threshold {}", choice.threshold);
    }
    if (choice.stranger_threshold >= 0) {
        c.stranger_threshold = choice.stranger_threshold;
        c.source += fmt::format(", --stranger-threshold {}", choice.stranger_threshold);
    }
    return c;
}

}  // namespace faceq
