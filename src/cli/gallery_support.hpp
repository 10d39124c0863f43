// gallery_support.hpp — what the gallery commands (enroll, search, stats,
// persons, prune, cluster), analyze and serve share on the command line: the
// --far / --threshold flags. Opening the gallery and choosing the calibration
// are the core's (session/identification.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include "faceq/models/resolve.hpp"

namespace faceq::cli {

// --far and --threshold (mutually exclusive) on `sub`.
void add_calibration_flags(CLI::App* sub, CalibrationChoice& choice);

}  // namespace faceq::cli
