// dlib_detector.hpp (private) — what dlib's two face detectors (HOG and the
// MMOD CNN) share behind the Detector interface: the scale policy and the
// mapping of boxes back to the original image (see detector.hpp).
//
// detect() resizes the image by one factor f (scale()): powers of two >= 1
// with dlib's pyramid_up, as dlib's own tools do, so that boxes match theirs;
// any other factor with OpenCV (area averaging when shrinking). The subclass
// detects on that copy (run()); boxes come back divided by f, and faces whose
// longer side is under min_face are dropped. Scores are SVM / MMOD margins
// (0 = the detection threshold), mapped to a confidence by a logistic,
// 1 / (1 + exp(-2 * score)): a face at the threshold has 0.5.
#pragma once

#include <dlib/array2d.h>
#include <dlib/geometry/rectangle.h>
#include <dlib/pixel.h>

#include <memory>
#include <string>
#include <vector>

#include "faceq/pipeline/detector.hpp"

namespace faceq::detail {

class DlibDetector : public Detector {
public:
    // `window`: the smallest face the detector finds, in pixels of its input.
    DlibDetector(std::string name, std::string version, int window, const DetectorOptions& options);

    std::vector<Detection> detect(const cv::Mat& bgr) final;
    double scale(int width, int height) const final;
    const std::string& name() const final { return name_; }
    const std::string& version() const final { return version_; }
    FaceSizeRange native_face_sizes() const final { return {window_, 0}; }

protected:
    struct RawDetection {
        dlib::rectangle rect;  // pixels of the resized image
        double score = 0;
    };
    // Detects on the resized image.
    virtual std::vector<RawDetection> run(const dlib::array2d<dlib::bgr_pixel>& scaled) = 0;

private:
    std::string name_, version_;
    int window_;
    DetectorOptions options_;
};

// Factories for the table in detector.cpp (hog_detector.cpp, cnn_detector.cpp).
std::unique_ptr<Detector> make_hog_detector(const ModelSet& models, const DetectorOptions& options);
std::unique_ptr<Detector> make_cnn_detector(const ModelSet& models, const DetectorOptions& options);

}  // namespace faceq::detail
