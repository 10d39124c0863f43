// analyzer.cpp — the Analyzer: builds the stages from a ModelSet and runs them
// in turn (see faceq/pipeline/analyzer.hpp and src/core/pipeline/stages.hpp).
#include "faceq/pipeline/analyzer.hpp"

#include <dlib/geometry/rectangle.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "faceq/base/error.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/attributes.hpp"
#include "faceq/pipeline/detector.hpp"
#include "faceq/pipeline/embedder.hpp"
#include "pipeline/dnn_nets.hpp"
#include "pipeline/stages.hpp"

namespace faceq {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A record's face from a detection: the box clipped to the image.
Face face_of(const Detection& d, int width, int height) {
    const dlib::rectangle clipped = detail::to_rectangle(d.box).intersect(dlib::rectangle(0, 0, width - 1, height - 1));
    Face face;
    face.bbox = {static_cast<int>(clipped.left()), static_cast<int>(clipped.top()), static_cast<int>(clipped.width()),
                 static_cast<int>(clipped.height())};
    face.detector_score = d.score;
    face.confidence = d.confidence;
    return face;
}

}  // namespace

struct Analyzer::Impl {
    AnalyzeOptions options;
    ModelVersions versions;
    std::unique_ptr<Detector> detector;
    bool five_points = false;                     // chips from the detector's 5 points
    std::optional<detail::Landmarker> landmarks;  // the 68-point model, unless five_points
    std::unique_ptr<Embedder> embedder;
    std::optional<detail::GenderClassifier> gender;
    std::optional<AgeGenderHead> head;  // immutable; copies share its weights
    bool head_gender = false;           // the head, not the CNN, gives gender

    Impl() = default;
    // Networks are deep-copied: each copy runs on its own thread.
    Impl(const Impl& o)
        : options(o.options),
          versions(o.versions),
          detector(o.detector->clone()),
          five_points(o.five_points),
          landmarks(o.landmarks),
          embedder(o.embedder->clone()),
          gender(o.gender),
          head(o.head),
          head_gender(o.head_gender) {}
};

Analyzer::Analyzer(const ModelSet& models, const AnalyzeOptions& options) : impl_(std::make_unique<Impl>()) {
    auto& m = *impl_;
    m.options = options;
    m.detector = make_detector(options.detector, models, {options.upsample, options.max_side, options.min_face});
    m.versions.detector = m.detector->version();
    m.five_points = chip_alignment(options) == "5";
    if (m.five_points) {
        m.versions.landmarks = m.detector->version();
    } else {
        if (!models.landmarks)
            throw Error(ErrorKind::model, "the 68-point landmark model is not installed; run: faceq download models");
        m.landmarks.emplace(*models.landmarks);
        m.versions.landmarks = models.landmarks->version();
    }
    m.embedder = make_embedder(models.embedder);
    if (m.embedder->dimension() != Descriptor().size())
        throw Error(ErrorKind::model, fmt::format("embedder {} gives {}-D descriptors; faceq stores {}-D ones",
                                                  m.embedder->id(), m.embedder->dimension(), Descriptor().size()));
    const EmbedderIdentity identity = embedder_identity(models, options);
    m.versions.embedder = identity.id;
    if (models.age_gender) {
        m.head = AgeGenderHead::load(models.age_gender->dir);
        m.head->check_embedder(identity, models.age_gender->version);
        m.versions.age = models.age_gender->version;
        m.head_gender = m.head->gives_gender() && options.gender;
        if (m.head_gender) m.versions.gender = models.age_gender->version;
    }
    if (models.gender && options.gender && !m.head_gender) {
        m.gender.emplace(*models.gender);
        m.versions.gender = models.gender->version();
    }
}

Analyzer::Analyzer(const Analyzer& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
Analyzer& Analyzer::operator=(const Analyzer& other) {
    if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
    return *this;
}
Analyzer::Analyzer(Analyzer&& other) noexcept = default;
Analyzer& Analyzer::operator=(Analyzer&& other) noexcept = default;
Analyzer::~Analyzer() = default;

const AnalyzeOptions& Analyzer::options() const { return impl_->options; }
const ModelVersions& Analyzer::versions() const { return impl_->versions; }

double Analyzer::detection_scale(int width, int height) const { return impl_->detector->scale(width, height); }

AnalysisResult Analyzer::analyze(const cv::Mat& bgr) {
    auto& m = *impl_;
    AnalysisResult result;
    result.width = bgr.cols;
    result.height = bgr.rows;
    if (bgr.empty() || bgr.type() != CV_8UC3) throw Error(ErrorKind::internal, "analyze: image must be CV_8UC3");

    auto t0 = Clock::now();
    const std::vector<Detection> detections = m.detector->detect(bgr);
    for (const auto& d : detections) result.faces.push_back(face_of(d, bgr.cols, bgr.rows));
    result.times.detect = ms_since(t0);
    if (result.faces.empty()) return result;

    t0 = Clock::now();
    const detail::OriginalImage original(bgr);
    detail::FaceShapes shapes;
    if (m.five_points) {
        for (std::size_t i = 0; i < detections.size(); ++i) {
            shapes.points5.push_back(detections[i].landmarks);
            result.faces[i].landmarks = detections[i].landmarks;
        }
    } else {
        shapes.shapes68 = m.landmarks->locate(original, detections);
        for (std::size_t i = 0; i < detections.size(); ++i)
            result.faces[i].landmarks = detail::landmark_points(shapes.shapes68[i]);
    }
    result.times.landmarks = ms_since(t0);

    const bool features = m.options.features || m.head.has_value();
    if (m.options.descriptors || features) {
        t0 = Clock::now();
        const auto chips = detail::extract_chips(original, shapes, m.embedder->geometry());
        detail::describe_faces(*m.embedder, chips, m.options, features, result.faces);
        result.times.descriptor = ms_since(t0);
    }
    if (m.head) {
        t0 = Clock::now();
        detail::apply_head(*m.head, m.head_gender, m.options.features, result.faces);
        result.times.attributes = ms_since(t0);
    }
    if (m.gender) {
        t0 = Clock::now();
        m.gender->classify(original, shapes, result.faces);
        result.times.gender = ms_since(t0);
    }
    return result;
}

double iou(const Box& a, const Box& b) {
    const int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
    const int x1 = std::min(a.x + a.width, b.x + b.width), y1 = std::min(a.y + a.height, b.y + b.height);
    if (x1 <= x0 || y1 <= y0) return 0;
    const double inter = static_cast<double>(x1 - x0) * (y1 - y0);
    return inter / (static_cast<double>(a.width) * a.height + static_cast<double>(b.width) * b.height - inter);
}

std::string chip_alignment(const AnalyzeOptions& options) {
    const int points = detector_landmark_count(options.detector);
    if (options.landmarks == "68") return "68";
    if (options.landmarks == "5") {
        if (points != 5)
            throw Error(ErrorKind::usage, fmt::format("--landmarks 5 needs a detector that gives 5 points (yunet), "
                                                      "not '{}'",
                                                      options.detector));
        return "5";
    }
    if (options.landmarks == "auto") return points == 5 ? "5" : "68";
    throw Error(ErrorKind::usage, fmt::format("unknown --landmarks '{}' (auto, 68 or 5)", options.landmarks));
}

std::size_t attribute_feature_size() { return 128 + detail::EmbedderNet::feature_size(); }

float descriptor_distance(const std::array<float, 128>& a, const std::array<float, 128>& b) {
    float sum = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const float d = a[i] - b[i];
        sum += d * d;
    }
    return std::sqrt(sum);
}

}  // namespace faceq
