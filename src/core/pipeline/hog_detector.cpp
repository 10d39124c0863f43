// hog_detector.cpp — dlib's frontal face detector (HOG features + a linear
// SVM over 80x80 windows, built into dlib: no model file) behind the Detector
// interface. Its version names the dlib release it comes with.
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/revision.h>
#include <fmt/format.h>

#include "pipeline/dlib_detector.hpp"

namespace faceq::detail {
namespace {

class HogDetector final : public DlibDetector {
public:
    explicit HogDetector(const DetectorOptions& options)
        : DlibDetector("hog", fmt::format("dlib_hog_frontal_face@{}.{}", DLIB_MAJOR_VERSION, DLIB_MINOR_VERSION), 80,
                       options),
          hog_(dlib::get_frontal_face_detector()) {}

    std::unique_ptr<Detector> clone() const override { return std::make_unique<HogDetector>(*this); }

private:
    std::vector<RawDetection> run(const dlib::array2d<dlib::bgr_pixel>& scaled) override {
        std::vector<dlib::rect_detection> found;
        hog_(scaled, found, 0.0);
        std::vector<RawDetection> out;
        for (const auto& d : found) out.push_back({d.rect, d.detection_confidence});
        return out;
    }

    dlib::frontal_face_detector hog_;
};

}  // namespace

std::unique_ptr<Detector> make_hog_detector(const ModelSet&, const DetectorOptions& options) {
    return std::make_unique<HogDetector>(options);
}

}  // namespace faceq::detail
