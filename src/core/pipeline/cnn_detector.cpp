// cnn_detector.cpp — dlib's MMOD CNN face detector (mmod_human_face_detector,
// faces from about 40x40 pixels) behind the Detector interface. The network
// itself lives in dnn_nets.cpp with dlib's other DNN templates.
#include <dlib/image_transforms.h>

#include "faceq/base/error.hpp"
#include "pipeline/dlib_detector.hpp"
#include "pipeline/dnn_nets.hpp"

namespace faceq::detail {
namespace {

class CnnDetector final : public DlibDetector {
public:
    CnnDetector(const InstalledModel& model, const DetectorOptions& options)
        : DlibDetector("cnn", model.version(), 80, options), net_(model.path) {}

    std::unique_ptr<Detector> clone() const override { return std::make_unique<CnnDetector>(*this); }

private:
    std::vector<RawDetection> run(const dlib::array2d<dlib::bgr_pixel>& scaled) override {
        RgbImage img;
        dlib::assign_image(img, scaled);
        std::vector<RawDetection> out;
        for (const auto& d : net_.detect(img, 0)) out.push_back({d.rect, d.score});
        return out;
    }

    CnnDetectorNet net_;
};

}  // namespace

std::unique_ptr<Detector> make_cnn_detector(const ModelSet& models, const DetectorOptions& options) {
    if (!models.detector_cnn)
        throw Error(ErrorKind::model, "the CNN detector model is not installed; run: faceq download models");
    return std::make_unique<CnnDetector>(*models.detector_cnn, options);
}

}  // namespace faceq::detail
