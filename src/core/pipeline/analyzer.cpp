#include "faceq/pipeline/analyzer.hpp"

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/opencv/cv_image.h>
#include <dlib/revision.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "faceq/base/error.hpp"
#include "faceq/pipeline/attributes.hpp"
#include "pipeline/dnn_nets.hpp"

namespace faceq {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

constexpr double hog_window = 80.0;  // dlib's frontal face detector: 80x80 windows
constexpr double cnn_window = 40.0;  // mmod_human_face_detector: faces >= ~40x40

double score_to_confidence(double score) { return 1.0 / (1.0 + std::exp(-2.0 * score)); }

}  // namespace

struct Analyzer::Impl {
    AnalyzeOptions options;
    ModelVersions versions;
    dlib::frontal_face_detector hog;
    std::optional<detail::CnnDetectorNet> cnn;
    // Read-only during prediction, and the 68-point model is ~100 MB: shared.
    std::shared_ptr<const dlib::shape_predictor> predictor;
    std::optional<detail::EmbedderNet> embedder;
    std::optional<detail::GenderNet> gender;
    std::optional<AgeGenderHead> head;  // immutable; copies share its weights
    bool head_gender = false;           // the head, not the CNN, gives gender
};

Analyzer::Analyzer(const ModelSet& models, const AnalyzeOptions& options) : impl_(std::make_unique<Impl>()) {
    auto& m = *impl_;
    m.options = options;
    if (options.detector != "hog" && options.detector != "cnn")
        throw Error(ErrorKind::usage, fmt::format("unknown detector '{}' (hog or cnn)", options.detector));
    if (options.detector == "cnn") {
        if (!models.detector_cnn)
            throw Error(ErrorKind::model, "the CNN detector model is not installed; run: faceq download models");
        m.cnn.emplace(models.detector_cnn->path);
        m.versions.detector = models.detector_cnn->version();
    } else {
        m.hog = dlib::get_frontal_face_detector();
        m.versions.detector = fmt::format("dlib_hog_frontal_face@{}.{}", DLIB_MAJOR_VERSION, DLIB_MINOR_VERSION);
    }
    try {
        auto predictor = std::make_shared<dlib::shape_predictor>();
        dlib::deserialize(models.landmarks.path.string()) >> *predictor;
        m.predictor = std::move(predictor);
    } catch (const std::exception& e) {
        throw Error(ErrorKind::model,
                    fmt::format("landmark model '{}' cannot be loaded: {}", models.landmarks.path.string(), e.what()));
    }
    m.versions.landmarks = models.landmarks.version();
    m.embedder.emplace(models.embedder.path);
    m.versions.embedder = models.embedder.version();
    if (models.age_gender) {
        m.head = AgeGenderHead::load(models.age_gender->dir);
        m.head->check_embedder({models.embedder.version(), models.embedder.sha256}, models.age_gender->version);
        m.versions.age = models.age_gender->version;
        m.head_gender = m.head->gives_gender() && options.gender;
        if (m.head_gender) m.versions.gender = models.age_gender->version;
    }
    if (models.gender && options.gender && !m.head_gender) {
        m.gender.emplace(models.gender->path);
        m.versions.gender = models.gender->version();
    }
}

Analyzer::Analyzer(const Analyzer& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
Analyzer& Analyzer::operator=(const Analyzer& other) {
    if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
    return *this;
}
Analyzer::~Analyzer() = default;

const AnalyzeOptions& Analyzer::options() const { return impl_->options; }
const ModelVersions& Analyzer::versions() const { return impl_->versions; }

double Analyzer::detection_scale(int width, int height) const {
    const auto& o = impl_->options;
    const double longest = std::max(width, height);
    const double cap = longest > 0 ? o.max_side / longest : 1.0;
    int n = o.upsample;
    if (n < 0) {
        // Smallest power of two that brings a min_face face up to the window.
        const double window = o.detector == "cnn" ? cnn_window : hog_window;
        n = std::max(0, static_cast<int>(std::ceil(std::log2(window / std::max(1, o.min_face)) - 1e-9)));
    }
    return std::min(std::ldexp(1.0, n), cap);
}

AnalysisResult Analyzer::analyze(const cv::Mat& bgr) {
    auto& m = *impl_;
    AnalysisResult result;
    result.width = bgr.cols;
    result.height = bgr.rows;
    if (bgr.empty() || bgr.type() != CV_8UC3) throw Error(ErrorKind::internal, "analyze: image must be CV_8UC3");

    // ---- detect on a resized copy
    auto t0 = Clock::now();
    const double f = detection_scale(bgr.cols, bgr.rows);
    // Upsampling by powers of two uses dlib's pyramid_up, as dlib's own tools
    // do, so boxes match theirs; downscaling a large photo uses area averaging.
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
    struct Det {
        dlib::rectangle rect;
        double score;
    };
    std::vector<Det> dets;
    if (m.cnn) {
        detail::RgbImage img;
        dlib::assign_image(img, scaled);
        for (const auto& d : m.cnn->detect(img, 0)) dets.push_back({d.rect, d.score});
    } else {
        std::vector<dlib::rect_detection> found;
        m.hog(scaled, found, 0.0);
        for (const auto& d : found) dets.push_back({d.rect, d.detection_confidence});
    }
    const dlib::rectangle bounds(0, 0, bgr.cols - 1, bgr.rows - 1);
    std::vector<dlib::rectangle> rects;
    for (const auto& d : dets) {
        dlib::rectangle r(static_cast<long>(std::lround(d.rect.left() / f)),
                          static_cast<long>(std::lround(d.rect.top() / f)),
                          static_cast<long>(std::lround((d.rect.right() + 1) / f)) - 1,
                          static_cast<long>(std::lround((d.rect.bottom() + 1) / f)) - 1);
        if (static_cast<int>(std::max(r.width(), r.height())) < m.options.min_face) continue;
        Face face;
        const dlib::rectangle clipped = r.intersect(bounds);
        face.bbox = {static_cast<int>(clipped.left()), static_cast<int>(clipped.top()),
                     static_cast<int>(clipped.width()), static_cast<int>(clipped.height())};
        face.detector_score = d.score;
        face.confidence = score_to_confidence(d.score);
        result.faces.push_back(face);
        rects.push_back(r);  // unclipped: the landmark model expects the detector's box
    }
    result.times.detect = ms_since(t0);
    if (result.faces.empty()) return result;

    // ---- landmarks and chips from the original pixels
    t0 = Clock::now();
    dlib::cv_image<dlib::bgr_pixel> original(bgr);
    std::vector<dlib::full_object_detection> shapes;
    shapes.reserve(rects.size());
    for (std::size_t i = 0; i < rects.size(); ++i) {
        shapes.push_back((*m.predictor)(original, rects[i]));
        auto& pts = result.faces[i].landmarks;
        for (unsigned long p = 0; p < shapes.back().num_parts(); ++p)
            pts.push_back(
                {static_cast<float>(shapes.back().part(p).x()), static_cast<float>(shapes.back().part(p).y())});
    }
    result.times.landmarks = ms_since(t0);

    const bool features = m.options.features || m.head.has_value();
    if (m.options.descriptors || features) {
        t0 = Clock::now();
        std::vector<dlib::chip_details> details;
        for (const auto& s : shapes)
            details.push_back(
                dlib::get_face_chip_details(s, detail::EmbedderNet::chip_size, detail::EmbedderNet::chip_padding));
        dlib::array<detail::RgbImage> chips_arr;
        dlib::extract_image_chips(original, details, chips_arr);
        std::vector<detail::RgbImage> chips(chips_arr.begin(), chips_arr.end());
        if (features) {
            // One forward pass over the chips and their mirror images gives the
            // descriptors and the block activations; features average the two
            // views so that a head sees no left/right bias.
            const std::size_t n = chips.size();
            for (std::size_t i = 0; i < n; ++i) {
                detail::RgbImage flipped;
                dlib::flip_image_left_right(chips[i], flipped);
                chips.push_back(std::move(flipped));
            }
            std::vector<std::vector<float>> block;
            const auto descs = m.embedder->embed_with_features(chips, block, m.options.batch_size);
            for (std::size_t i = 0; i < n; ++i) {
                auto& feat = result.faces[i].features;
                feat.resize(descs[i].size() + block[i].size());
                for (std::size_t k = 0; k < descs[i].size(); ++k) feat[k] = 0.5f * (descs[i][k] + descs[n + i][k]);
                for (std::size_t k = 0; k < block[i].size(); ++k)
                    feat[descs[i].size() + k] = 0.5f * (block[i][k] + block[n + i][k]);
            }
            chips.resize(n);
            if (m.options.jitter <= 0) {
                for (std::size_t i = 0; i < n; ++i) {
                    result.faces[i].descriptor = descs[i];
                    result.faces[i].has_descriptor = true;
                }
            }
        }
        if (!features || m.options.jitter > 0) {
            const auto descs = m.embedder->embed(chips, m.options.jitter, m.options.batch_size);
            for (std::size_t i = 0; i < descs.size(); ++i) {
                result.faces[i].descriptor = descs[i];
                result.faces[i].has_descriptor = true;
            }
        }
        result.times.descriptor = ms_since(t0);
    }

    if (m.head) {
        t0 = Clock::now();
        for (auto& face : result.faces) {
            const AttributePrediction p = m.head->predict(face.features);
            face.age = p.age;
            if (m.head_gender && p.p_male) {
                face.gender = *p.p_male >= 0.5 ? "male" : "female";
                face.gender_confidence = *p.p_male >= 0.5 ? *p.p_male : 1.0 - *p.p_male;
            }
            if (!m.options.features) face.features.clear();
        }
        result.times.attributes = ms_since(t0);
    }

    if (m.gender) {
        t0 = Clock::now();
        std::vector<dlib::chip_details> details;
        for (const auto& s : shapes) details.push_back(dlib::get_face_chip_details(s, detail::GenderNet::chip_size));
        dlib::array<detail::RgbImage> chips_arr;
        dlib::extract_image_chips(original, details, chips_arr);
        std::vector<detail::RgbImage> chips(chips_arr.begin(), chips_arr.end());
        const auto p = m.gender->p_male(chips);
        for (std::size_t i = 0; i < p.size(); ++i) {
            result.faces[i].gender = p[i] >= 0.5f ? "male" : "female";
            result.faces[i].gender_confidence = p[i] >= 0.5f ? p[i] : 1.0f - p[i];
        }
        result.times.gender = ms_since(t0);
    }
    return result;
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
