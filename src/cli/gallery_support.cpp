#include "gallery_support.hpp"

#include <fmt/format.h>

#include "faceq/base/error.hpp"
#include "faceq/session/identification.hpp"

namespace faceq::cli {

std::unique_ptr<Gallery> require_home_gallery(const Context& ctx) {
    auto gallery = open_gallery(ctx.home, false, log_to(ctx));
    if (!gallery)
        throw Error(ErrorKind::not_found, fmt::format("no gallery at '{}' (enroll or analyze --store make one)",
                                                      Gallery::describe_location(ctx.home.gallery_location())));
    return gallery;
}

void add_calibration_flags(CLI::App* sub, CalibrationChoice& choice) {
    auto* far = sub->add_option("--far", choice.far,
                                "Name a stranger as a known person in at most this fraction of cases (e.g. 0.01), "
                                "at the gallery's current size; sets the threshold")
                    ->check(CLI::Range(1e-6, 0.5));
    auto* threshold = sub->add_option("--threshold", choice.threshold,
                                      "Raw distance threshold instead of the calibration's (experts; see --far)")
                          ->check(CLI::Range(0.05, 1.5));
    far->excludes(threshold);
    sub->add_option("--stranger-threshold", choice.stranger_threshold,
                    "How far a face may lie from a stranger (unknown person) and still be that stranger, when no "
                    "known person is within the threshold; also how near a stranger must be to a known person to be "
                    "a merge candidate. Used as max(this, threshold) (experts; docs/identification.md)")
        ->check(CLI::Range(0.0, 1.5));
}

}  // namespace faceq::cli
