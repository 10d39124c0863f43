// faceq/pipeline/detector.hpp — the face detector seam: one interface that the
// Analyzer runs, whatever finds the faces (dlib's HOG detector, dlib's MMOD
// CNN, and later detectors that also give landmarks, e.g. YuNet's 5 points).
//
// A detector takes a decoded image (CV_8UC3, BGR, original pixels) and returns
// the faces in it, in the original image's pixels: the box as the detector
// drew it (not clipped to the image: a landmark model expects the detector's
// own box), its raw score, a confidence in 0..1 and, when the detector gives
// them, landmark points.
//
// Scale policy. Each detector owns how it resizes an image before detecting,
// given DetectorOptions (upsample, max_side, min_face), and maps its boxes
// back: a detector knows its smallest window and whether upsampling helps it.
// The two dlib detectors share one policy (src/core/pipeline/dlib_detector.hpp):
// one factor f = 2^N, N = `upsample` when given (>= 0), else the smallest N
// that brings a face of `min_face` pixels up to the detector's window (80 px
// for HOG and for the CNN: dlib's MMOD model finds few faces under ~80 px,
// measured on wider-dev); f = max_side / longest side instead when f
// would make the longest side exceed `max_side`. scale() reports the factor
// for an image size, so callers and tests can see it without running the
// detector.
//
// Invariants: every Detection that detect() returns has a box whose longer
// side is at least DetectorOptions::min_face (pixels of the original image;
// make_detector() applies detector_min_face(), so 0 means the detector's default);
// confidence is in 0..1; landmarks are empty or in original pixels.
//
// Adding a detector: one file under src/core/pipeline/ that implements this
// interface and a factory, one line in the factory table (detector.cpp), and
// the manifest entry of its model file (data/models.json).
//
// Errors: make_detector() throws Error{usage} for an unknown name and
// Error{model} when the detector's model file is missing or broken. detect()
// throws Error{internal} only on bugs; an image without faces gives an empty
// vector.
// Thread-safety: a Detector is NOT safe for concurrent detect() calls (dlib
// and OpenCV networks keep per-call state): each worker thread uses its own
// clone(). Clones are independent; cloning a loaded detector is much cheaper
// than loading it.
#pragma once

#include <memory>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

struct Detection {
    Box box;                       // original image pixels, unclipped
    double score = 0;              // the detector's raw score (margin for HOG and MMOD)
    double confidence = 0;         // 0..1
    std::vector<Point> landmarks;  // the detector's own points (e.g. 5 for YuNet); empty for HOG and CNN
};

struct DetectorOptions {
    int upsample = -1;    // -1 = the detector's choice from min_face (see the header comment)
    int max_side = 2048;  // longest side the detector's input may have
    int min_face = 0;     // smallest face (px, original image) to report; 0 = the detector's default
};

// The face sizes a detector finds natively, in pixels of its own input
// (before the scale policy maps them to the original image).
struct FaceSizeRange {
    int smallest = 0;  // its smallest window
    int largest = 0;   // 0 = no upper bound (it scans an image pyramid downwards)
};

class Detector {
public:
    virtual ~Detector() = default;

    // Requires: `bgr` is CV_8UC3 and not empty.
    virtual std::vector<Detection> detect(const cv::Mat& bgr) = 0;

    // The factor an image of this size is resized by before detection.
    virtual double scale(int width, int height) const = 0;

    virtual const std::string& name() const = 0;     // as AnalyzeOptions::detector names it ("hog", "cnn", "yunet")
    virtual const std::string& version() const = 0;  // the records' models.detector
    virtual FaceSizeRange native_face_sizes() const = 0;

    // A deep copy for another worker thread.
    virtual std::unique_ptr<Detector> clone() const = 0;
};

// The detector called `name` ("hog" | "cnn" | "yunet"), with its model file from
// `models` when it needs one.
std::unique_ptr<Detector> make_detector(const std::string& name, const ModelSet& models,
                                        const DetectorOptions& options);

// How many landmark points the detector `name` gives with each face (0 for
// HOG and the CNN, 5 for YuNet). Throws Error{usage} for an unknown name.
int detector_landmark_count(const std::string& name);

// The smallest face (px) the detector `name` reports when --min-face is not
// given: 40 for HOG and the CNN, 10 for YuNet (detector.cpp says why).
// Throws Error{usage} for an unknown name.
int detector_default_min_face(const std::string& name);
// The --min-face the detector `name` runs at: `requested` when > 0, else its default.
int detector_min_face(const std::string& name, int requested);

}  // namespace faceq
