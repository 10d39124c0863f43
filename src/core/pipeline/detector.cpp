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
    int points;  // landmark points each detection carries
};

// A new detector is one line here (and its own file).
constexpr Entry detectors[] = {
    {"hog", detail::make_hog_detector, 0},
    {"cnn", detail::make_cnn_detector, 0},
    {"yunet", detail::make_yunet_detector, 5},
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
    return entry(name).make(models, options);
}

int detector_landmark_count(const std::string& name) { return entry(name).points; }

}  // namespace faceq
