#include "gallery_support.hpp"

namespace faceq::cli {

void add_calibration_flags(CLI::App* sub, CalibrationChoice& choice) {
    auto* far = sub->add_option("--far", choice.far,
                                "Name a stranger as a known person in at most this fraction of cases (e.g. 0.01), "
                                "at the gallery's current size; sets the threshold")
                    ->check(CLI::Range(1e-6, 0.5));
    auto* threshold = sub->add_option("--threshold", choice.threshold,
                                      "Raw distance threshold instead of the calibration's (experts; see --far)")
                          ->check(CLI::Range(0.05, 1.5));
    far->excludes(threshold);
}

}  // namespace faceq::cli
