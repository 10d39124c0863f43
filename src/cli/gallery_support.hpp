// gallery_support.hpp — what the gallery commands (enroll, search, stats,
// persons, prune, cluster) and analyze share: opening the gallery in the
// home, choosing the calibration (a deployed `face-recognition` model's
// calibration.json when its embedder is the installed one, else the measured
// defaults; then --far or --threshold), warning about samples of another
// embedder, and the JSON shape of a person.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "context.hpp"
#include "faceq/identity/calibration.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/models/models.hpp"

namespace faceq::cli {

// The registered model whose production version calibrates identification.
inline constexpr const char* recognition_model_name = "face-recognition";

struct CalibrationFlags {
    double far = 0;       // 0 = not given
    float threshold = 0;  // 0 = not given
};

// --far and --threshold (mutually exclusive) on `sub`.
void add_calibration_flags(CLI::App* sub, CalibrationFlags& flags);

// The calibration for this embedder: deployed > default, then the flags.
// `gallery_persons` turns --far into a threshold (see calibration.hpp).
Calibration resolve_calibration(const Context& ctx, const InstalledModel& embedder, const CalibrationFlags& flags,
                                std::size_t gallery_persons);

// The home's gallery; nullptr when it does not exist and `create` is false.
std::unique_ptr<Gallery> open_gallery(const Context& ctx, bool create);

// Warns once when the gallery holds samples another embedder computed: they
// are not compared with this embedder's descriptors.
void warn_foreign_samples(const Context& ctx, Gallery& gallery, const std::string& embedder);

}  // namespace faceq::cli
