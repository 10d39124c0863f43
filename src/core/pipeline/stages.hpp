// stages.hpp (private) — the Analyzer's stages after detection, each a small
// piece that analyze() calls in turn (analyzer.cpp):
//
//   detections ─► Landmarker (landmarks.cpp): points, from the original pixels
//              ─► extract_chips (landmarks.cpp): aligned chips of a geometry
//              ─► describe_faces (descriptors.cpp): descriptors + attribute features
//              ─► apply_head (attribute_stages.cpp): age (and gender) from the head
//              ─► GenderClassifier (attribute_stages.cpp): the CC0 gender CNN
//
// Alignment: dlib's get_face_chip_details() maps a 68-point shape onto its
// chip template (a similarity transform); a detector's own 5 points (YuNet)
// are mapped by the same kind of transform onto those points' place in that
// template (FaceShapes), so both feed the networks the same chips.
//
// Errors: constructors throw Error{model} for missing or broken model files.
// Thread-safety: as the Analyzer's: a Landmarker is immutable (copies share
// the predictor, ~100 MB for 68 points); a GenderClassifier is NOT safe for
// concurrent calls (copy it per worker).
#pragma once

#include <dlib/image_processing/full_object_detection.h>
#include <dlib/image_processing/shape_predictor.h>
#include <dlib/image_transforms/interpolation.h>
#include <dlib/opencv/cv_image.h>

#include <memory>
#include <opencv2/core/mat.hpp>
#include <vector>

#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/attributes.hpp"
#include "faceq/pipeline/detector.hpp"
#include "faceq/pipeline/embedder.hpp"
#include "pipeline/dnn_nets.hpp"

namespace faceq::detail {

using OriginalImage = dlib::cv_image<dlib::bgr_pixel>;

// dlib's inclusive rectangle of a box (exactly the detector's rectangle).
inline dlib::rectangle to_rectangle(const Box& b) {
    return dlib::rectangle(b.x, b.y, b.x + b.width - 1, b.y + b.height - 1);
}

class Landmarker {
public:
    explicit Landmarker(const InstalledModel& model);

    // One shape per detection; the detection's unclipped box seeds the
    // predictor, as it expects the detector's own box.
    std::vector<dlib::full_object_detection> locate(const OriginalImage& image,
                                                    const std::vector<Detection>& detections) const;

private:
    std::shared_ptr<const dlib::shape_predictor> predictor_;
};

std::vector<Point> landmark_points(const dlib::full_object_detection& shape);

// YuNet's 5 points (right eye, left eye, nose tip, right and left mouth
// corner; "right" is the person's) in the frame of dlib's mean face, the
// template get_face_chip_details() maps 68-point shapes onto (0..1 across the
// face, before padding). Derived on lfw-dev as the mean position of YuNet's
// points in the chips the 68-point alignment cuts (tests/test_alignment.cpp
// re-derives and checks them).
inline constexpr float five_point_template[5][2] = {
    {0.2170f, 0.1965f}, {0.7853f, 0.2067f}, {0.4970f, 0.5249f}, {0.2566f, 0.7704f}, {0.7404f, 0.7765f}};

// How each face's chips are placed: from its 68-point shape (dlib's
// get_face_chip_details), or from its detector's 5 points by a similarity
// transform onto five_point_template (the same transform family, so both
// cut chips of the geometry the networks were trained on). Exactly one of
// the two vectors is filled, one entry per face.
struct FaceShapes {
    std::vector<dlib::full_object_detection> shapes68;
    std::vector<std::vector<Point>> points5;

    std::size_t size() const { return shapes68.empty() ? points5.size() : shapes68.size(); }
    std::vector<dlib::chip_details> details(const ChipGeometry& geometry) const;
};

// The chip of 5 points (in the order of five_point_template).
dlib::chip_details five_point_chip(const std::vector<Point>& points, const ChipGeometry& geometry);

// One aligned chip per face, geometry.size square: RGB as dlib's networks
// read them (cut_chips), or CV_8UC3 BGR for the Embedder seam (extract_chips).
std::vector<RgbImage> cut_chips(const OriginalImage& image, const FaceShapes& shapes, const ChipGeometry& geometry);
std::vector<cv::Mat> extract_chips(const OriginalImage& image, const FaceShapes& shapes, const ChipGeometry& geometry);

// The plausible norms of a descriptor. The ResNet's descriptors of real
// faces measured 1.25-1.60 (326 faces of LFW, WIDER, CelebA and the BBT
// crops, YuNet chips); a damaged network gave ~1e21. A wide margin either
// side: the check is for broken weights, not odd faces.
inline constexpr double min_descriptor_norm = 0.3, max_descriptor_norm = 3.0;

// Throws Error{model} naming face `face` (0-based) when `d` is not finite or
// its norm is outside [min_descriptor_norm, max_descriptor_norm]: such a
// descriptor is never stored nor matched, and the image is an error.
void check_descriptor(const Descriptor& d, std::size_t face);

// Fills the faces' descriptors (when options.descriptors) and attribute
// features (when `features`) from their chips (one per face, in order);
// check_descriptor() on each.
void describe_faces(Embedder& embedder, const std::vector<cv::Mat>& chips, const AnalyzeOptions& options, bool features,
                    std::vector<Face>& faces);

// Age, and gender when `head_gender`, from each face's features; clears the
// features unless `keep_features`.
void apply_head(const AgeGenderHead& head, bool head_gender, bool keep_features, std::vector<Face>& faces);

class GenderClassifier {
public:
    explicit GenderClassifier(const InstalledModel& model) : net_(model.path) {}

    // Gender and its confidence for each face (one shape per face, in order).
    void classify(const OriginalImage& image, const FaceShapes& shapes, std::vector<Face>& faces);

private:
    GenderNet net_;
};

}  // namespace faceq::detail
