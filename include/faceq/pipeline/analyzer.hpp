// faceq/pipeline/analyzer.hpp — the analysis pipeline: detect, align, describe and
// classify the faces in one decoded image.
//
//   image ─► Detector (detector.hpp: YuNet | HOG | CNN) ─► landmarks (YuNet's 5 or dlib's 68)
//         ─► aligned chips ─► Embedder (embedder.hpp: ResNet descriptors, batched)
//         ─► gender CNN          └─► attribute features ─► age/gender head
//
// Age (and gender, when the head beat the CC0 gender CNN on validation) comes
// from the deployed age/gender head (attributes.hpp) when the ModelSet names
// one: the ResNet's forward pass also yields the last residual block's
// activations, over the chip and its mirror image, which the head reads. A
// head trained for another embedder is refused (Error{model}).
//
// An Analyzer is built from a ModelSet (which model files, each with its
// version) and AnalyzeOptions. Building one loads the networks; copying one
// copies them (cheap compared with loading). dlib networks are not safe for
// concurrent forward passes, so an Analyzer is NOT thread-safe: each worker
// thread uses its own copy.
//
// Detection scale: the detector owns it (detector.hpp). For HOG and the CNN
// the image is resized by one factor f = 2^N: N = --upsample when given, else
// the smallest N that makes a face of `min_face` pixels as large as the
// detector's smallest window (80 px for HOG and the CNN), capped so
// that the longest side stays within max_side. Boxes are mapped back to
// original pixels and clipped to the image; landmarks and chips come from the
// original pixels.
//
// Confidence. HOG and CNN scores are SVM/MMOD margins (0 = the detection
// threshold). They map to 0..1 by a logistic: confidence = 1/(1+exp(-2·score));
// a face at the threshold has 0.5.
//
// Errors: the constructor throws Error{usage} for an unknown detector,
// Error{model} for missing or broken model files and for an age/gender head
// trained for another embedder. analyze() throws Error{internal} only on
// bugs; an image without faces is a result with no faces.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/home.hpp"
#include "faceq/models/models.hpp"

namespace faceq {

struct Box {
    int x = 0, y = 0, width = 0, height = 0;
};

// Intersection over union of two boxes (0 when they do not overlap).
double iou(const Box& a, const Box& b);

struct Point {
    float x = 0, y = 0;
};

struct Face {
    Box bbox;                           // original image pixels
    double confidence = 0;              // 0..1, see the header comment
    double detector_score = 0;          // the detector's raw margin
    std::vector<Point> landmarks;       // 5 or 68 points, original pixels
    std::optional<std::string> gender;  // "male" | "female"
    std::optional<double> gender_confidence;
    std::optional<double> age;  // null until an age model is deployed
    std::array<float, 128> descriptor{};
    bool has_descriptor = false;
    // Attribute features (AnalyzeOptions::features): the descriptor followed by
    // the last residual block's activations, each averaged over the chip and
    // its mirror image; what age/gender heads read. Empty unless requested.
    std::vector<float> features;
    // JPEG bytes of the face (pipeline/thumbnail.hpp), made by the session
    // only when the analysis is to be stored; empty = none.
    std::string thumbnail_jpeg;
};

// How long each stage took for one image, in milliseconds.
struct StageTimes {
    double decode = 0, detect = 0, landmarks = 0, descriptor = 0, gender = 0;
    double attributes = 0;  // the age/gender head (its features are in `descriptor`)
};

// A deployed age/gender head: where its files are and the version outputs
// name ("age-gender@<registry version>:<sha256 prefix of its weights>").
struct DeployedHead {
    std::filesystem::path dir;
    std::string version;
};

// The model files an Analyzer uses, each with the version outputs name.
struct ModelSet {
    std::optional<InstalledModel> detector_cnn;    // needed only for the CNN detector
    std::optional<InstalledModel> detector_yunet;  // needed only for YuNet
    std::optional<InstalledModel> landmarks;       // needed only for 68-point alignment
    InstalledModel embedder;
    std::optional<InstalledModel> gender;
    std::optional<DeployedHead> age_gender;  // the registry's production age/gender head
};

// (Which files: models/resolve.hpp, installed_models() and resolve_models().)

struct AnalyzeOptions {
    std::string detector = "yunet";  // "yunet" | "hog" | "cnn" (yunet: docs/benchmarks.md, "Detection")
    std::string landmarks = "auto";  // "auto" | "68" | "5": see chip_alignment()
    int upsample = -1;               // -1 = derived from min_face (see above)
    int max_side = 2048;             // longest side the detector sees
    int min_face = 0;                // smallest face (px, original image) to find and report;
                                     // 0 = the detector's default (detector_default_min_face())
    int jitter = 0;                  // descriptor jittering (0 = off)
    bool descriptors = true;         // compute 128-D descriptors
    bool gender = true;              // classify gender when a gender model is installed
    bool features = false;           // fill Face::features (see attribute_feature_size())
    int batch_size = 16;             // chips per forward pass
};

struct AnalysisResult {
    int width = 0, height = 0;
    std::vector<Face> faces;
    StageTimes times;
};

// How the chips of these options are aligned: "68" (dlib's 68-point model,
// whose points the records then carry) or "5" (the detector's own 5 points,
// no landmark model loaded). "auto" takes the detector's points when it gives
// them (YuNet), else 68. Throws Error{usage} for landmarks "5" with a
// detector that gives no points, or an unknown value.
std::string chip_alignment(const AnalyzeOptions& options);

// Model versions, named as in output records: {"detector": ..., "landmarks": ...}.
struct ModelVersions {
    std::string detector, landmarks, embedder, gender;
    std::string age;  // empty when no age/gender head is deployed
};

class Analyzer {
public:
    Analyzer(const ModelSet& models, const AnalyzeOptions& options);
    Analyzer(const Analyzer& other);
    Analyzer& operator=(const Analyzer& other);
    Analyzer(Analyzer&& other) noexcept;  // leaves `other` empty: only destroy or assign it
    Analyzer& operator=(Analyzer&& other) noexcept;
    ~Analyzer();

    // `bgr` is CV_8UC3 (as image_io decodes it).
    AnalysisResult analyze(const cv::Mat& bgr);

    const AnalyzeOptions& options() const;
    const ModelVersions& versions() const;

    // Detection scale factor for an image of this size (the detector's,
    // see the header comment).
    double detection_scale(int width, int height) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Length of Face::features: 128 + the last residual block's pooled activations.
std::size_t attribute_feature_size();

// Euclidean distance between two descriptors.
float descriptor_distance(const std::array<float, 128>& a, const std::array<float, 128>& b);

}  // namespace faceq
