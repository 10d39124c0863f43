// detector.cpp — make_detector(): the table of detectors by name.
#include "faceq/pipeline/detector.hpp"

#include <fmt/format.h>

#include <iterator>
#include <memory>
#include <string>

#include "faceq/base/error.hpp"
#include "pipeline/dlib_detector.hpp"

namespace faceq {
namespace {

using Factory = std::unique_ptr<Detector> (*)(const ModelSet&, const DetectorOptions&);

struct Entry {
    const char* name;
    Factory make;
};

// A new detector is one line here (and its own file).
constexpr Entry detectors[] = {
    {"hog", detail::make_hog_detector},
    {"cnn", detail::make_cnn_detector},
};

std::string known_names() {
    std::string out;
    const std::size_t n = std::size(detectors);
    for (std::size_t i = 0; i < n; ++i)
        out += std::string(i == 0 ? "" : i + 1 == n ? " or " : ", ") + detectors[i].name;
    return out;
}

}  // namespace

std::unique_ptr<Detector> make_detector(const std::string& name, const ModelSet& models,
                                        const DetectorOptions& options) {
    for (const auto& e : detectors)
        if (name == e.name) return e.make(models, options);
    throw Error(ErrorKind::usage, fmt::format("unknown detector '{}' ({})", name, known_names()));
}

}  // namespace faceq
