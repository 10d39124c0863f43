// landmarks.cpp — the landmark and alignment stage (see stages.hpp): dlib's
// shape predictor on the original pixels, and aligned chips cut by dlib.
#include <dlib/image_processing.h>
#include <dlib/image_transforms.h>
#include <dlib/opencv/to_open_cv.h>
#include <fmt/format.h>

#include <opencv2/imgproc.hpp>

#include "faceq/base/error.hpp"
#include "pipeline/stages.hpp"

namespace faceq::detail {

Landmarker::Landmarker(const InstalledModel& model) {
    try {
        auto predictor = std::make_shared<dlib::shape_predictor>();
        dlib::deserialize(model.path.string()) >> *predictor;
        predictor_ = std::move(predictor);
    } catch (const std::exception& e) {
        throw Error(ErrorKind::model,
                    fmt::format("landmark model '{}' cannot be loaded: {}", model.path.string(), e.what()));
    }
}

std::vector<dlib::full_object_detection> Landmarker::locate(const OriginalImage& image,
                                                            const std::vector<Detection>& detections) const {
    std::vector<dlib::full_object_detection> shapes;
    shapes.reserve(detections.size());
    for (const auto& d : detections) shapes.push_back((*predictor_)(image, to_rectangle(d.box)));
    return shapes;
}

std::vector<Point> landmark_points(const dlib::full_object_detection& shape) {
    std::vector<Point> points;
    points.reserve(shape.num_parts());
    for (unsigned long p = 0; p < shape.num_parts(); ++p)
        points.push_back({static_cast<float>(shape.part(p).x()), static_cast<float>(shape.part(p).y())});
    return points;
}

dlib::chip_details five_point_chip(const std::vector<Point>& points, const ChipGeometry& geometry) {
    // As get_face_chip_details() places the mean face: padded, then scaled.
    std::vector<dlib::dpoint> from, to;
    const double pad = geometry.padding, size = static_cast<double>(geometry.size);
    for (std::size_t i = 0; i < 5; ++i) {
        from.emplace_back((pad + five_point_template[i][0]) / (2 * pad + 1) * size,
                          (pad + five_point_template[i][1]) / (2 * pad + 1) * size);
        to.emplace_back(points.at(i).x, points.at(i).y);
    }
    return dlib::chip_details(from, to, dlib::chip_dims(geometry.size, geometry.size));
}

std::vector<dlib::chip_details> FaceShapes::details(const ChipGeometry& geometry) const {
    std::vector<dlib::chip_details> details;
    details.reserve(size());
    for (const auto& s : shapes68) details.push_back(dlib::get_face_chip_details(s, geometry.size, geometry.padding));
    for (const auto& p : points5) details.push_back(five_point_chip(p, geometry));
    return details;
}

std::vector<RgbImage> cut_chips(const OriginalImage& image, const FaceShapes& shapes, const ChipGeometry& geometry) {
    dlib::array<RgbImage> cut;
    dlib::extract_image_chips(image, shapes.details(geometry), cut);
    return std::vector<RgbImage>(cut.begin(), cut.end());
}

std::vector<cv::Mat> extract_chips(const OriginalImage& image, const FaceShapes& shapes, const ChipGeometry& geometry) {
    auto cut = cut_chips(image, shapes, geometry);
    // A lossless channel swap: BGR like every other image in faceq.
    std::vector<cv::Mat> chips(cut.size());
    for (std::size_t i = 0; i < cut.size(); ++i) cv::cvtColor(dlib::toMat(cut[i]), chips[i], cv::COLOR_RGB2BGR);
    return chips;
}

}  // namespace faceq::detail
