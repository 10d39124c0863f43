// detector.cpp — make_detector(): the table of detectors by name.
#include "faceq/pipeline/detector.hpp"

#include <fmt/format.h>

#include <iterator>
#include <memory>
#include <string>

#include "faceq/base/error.hpp"
#include "pipeline/dlib_detector.hpp"

namespace faceq {
namespace detail {
std::unique_ptr<Detector> make_yunet_detector(const ModelSet& models, const DetectorOptions& options);
}
namespace {

using Factory = std::unique_ptr<Detector> (*)(const ModelSet&, const DetectorOptions&);

struct Entry {
    const char* name;
    Factory make;
    int points;    // landmark points each detection carries
    int min_face;  // default --min-face (px): the smallest face it finds reliably
};

// A new detector is one line here (and its own file).
constexpr Entry detectors[] = {
    // HOG and the CNN: 40 px, one upsampling of their 80 px window (more costs 4x
    // per step). YuNet: 10 px, its stride-8 grid's smallest face; a larger
    // default loses the 20-40 px faces of group photos (wider-dev recall 0.92 at
    // 10, 0.91 at 20, 0.73 at 34: docs/benchmarks.md, "Detection").
    {"hog", detail::make_hog_detector, 0, 40},
    {"cnn", detail::make_cnn_detector, 0, 40},
    {"yunet", detail::make_yunet_detector, 5, 10},
};

std::string known_names() {
    std::string out;
    const std::size_t n = std::size(detectors);
    for (std::size_t i = 0; i < n; ++i)
        out += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + detectors[i].name;
    return out;
}

const Entry& entry(const std::string& name) {
    for (const auto& e : detectors)
        if (name == e.name) return e;
    throw Error(ErrorKind::usage, fmt::format("unknown detector '{}' ({})", name, known_names()));
}

}  // namespace

std::unique_ptr<Detector> make_detector(const std::string& name, const ModelSet& models,
                                        const DetectorOptions& options) {
    DetectorOptions resolved = options;
    resolved.min_face = detector_min_face(name, options.min_face);
    return entry(name).make(models, resolved);
}

int detector_landmark_count(const std::string& name) { return entry(name).points; }

int detector_default_min_face(const std::string& name) { return entry(name).min_face; }

int detector_min_face(const std::string& name, int requested) {
    return requested > 0 ? requested : detector_default_min_face(name);
}

}  // namespace faceq
