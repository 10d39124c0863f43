// dlib_detector.cpp — the scale policy of dlib's detectors (see dlib_detector.hpp).
#include "pipeline/dlib_detector.hpp"

#include <dlib/image_transforms.h>
#include <dlib/opencv/cv_image.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <utility>

namespace faceq::detail {

DlibDetector::DlibDetector(std::string name, std::string version, int window, const DetectorOptions& options)
    : name_(std::move(name)), version_(std::move(version)), window_(window), options_(options) {}

double DlibDetector::scale(int width, int height) const {
    const double longest = std::max(width, height);
    const double cap = longest > 0 ? options_.max_side / longest : 1.0;
    int n = options_.upsample;
    if (n < 0) {
        // Smallest power of two that brings a min_face face up to the window.
        n = std::max(0, static_cast<int>(std::ceil(
                            std::log2(static_cast<double>(window_) / std::max(1, options_.min_face)) - 1e-9)));
    }
    return std::min(std::ldexp(1.0, n), cap);
}

std::vector<Detection> DlibDetector::detect(const cv::Mat& bgr) {
    const double f = scale(bgr.cols, bgr.rows);
    dlib::array2d<dlib::bgr_pixel> scaled;
    int exponent = 0;
    const bool power_of_two = std::frexp(f, &exponent) == 0.5 && f >= 1.0;
    if (power_of_two) {
        dlib::assign_image(scaled, dlib::cv_image<dlib::bgr_pixel>(bgr));
        for (int i = 1; i < exponent; ++i) dlib::pyramid_up(scaled);
    } else {
        cv::Mat resized;
        cv::resize(bgr, resized, cv::Size(), f, f, f < 1.0 ? cv::INTER_AREA : cv::INTER_LINEAR);
        dlib::assign_image(scaled, dlib::cv_image<dlib::bgr_pixel>(resized));
    }
    std::vector<Detection> out;
    for (const auto& d : run(scaled)) {
        const dlib::rectangle r(static_cast<long>(std::lround(d.rect.left() / f)),
                                static_cast<long>(std::lround(d.rect.top() / f)),
                                static_cast<long>(std::lround((d.rect.right() + 1) / f)) - 1,
                                static_cast<long>(std::lround((d.rect.bottom() + 1) / f)) - 1);
        if (static_cast<int>(std::max(r.width(), r.height())) < options_.min_face) continue;
        Detection det;
        // right - left + 1, not r.width(): the box converts back to exactly r.
        det.box = {static_cast<int>(r.left()), static_cast<int>(r.top()), static_cast<int>(r.right() - r.left() + 1),
                   static_cast<int>(r.bottom() - r.top() + 1)};
        det.score = d.score;
        det.confidence = 1.0 / (1.0 + std::exp(-2.0 * d.score));
        out.push_back(std::move(det));
    }
    return out;
}

}  // namespace faceq::detail
