// gallery_support.hpp — what the gallery commands (enroll, search, stats,
// persons, prune, cluster), analyze and serve share on the command line: the
// --far / --threshold flags, and the existing gallery of the home or the
// error saying there is none. Opening the gallery and choosing the
// calibration are the core's (session/identification.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

#include "context.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/models/resolve.hpp"

namespace faceq::cli {

// The home's gallery (open_gallery, its log to stderr), never created:
// Error{not_found} "no gallery at '<where>' (enroll or analyze --store make one)".
std::unique_ptr<Gallery> require_home_gallery(const Context& ctx);

// --far and --threshold (mutually exclusive) on `sub`.
void add_calibration_flags(CLI::App* sub, CalibrationChoice& choice);

}  // namespace faceq::cli
