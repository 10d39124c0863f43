// yunet_detector.cpp — YuNet (OpenCV Zoo face_detection_yunet_2023mar.onnx,
// MIT, (c) 2020 Shiqi Yu) behind the Detector interface, through OpenCV 4.6's
// dnn module.
//
// OpenCV 4.6's cv::FaceDetectorYN only understands the 2022 model's outputs,
// so this file runs the 2023 model with cv::dnn::readNetFromONNX and decodes
// its cls/obj/bbox/kps outputs itself: input padded bottom/right to a multiple
// of 32, raw BGR 0..255; per grid cell (c, r) at stride s, score =
// sqrt(clamp(cls) * clamp(obj)), centre ((c + bx) s, (r + by) s), size
// (exp(bw) s, exp(bh) s), 5 landmarks ((c + kx) s, (r + ky) s): right eye,
// left eye, nose tip, right and left mouth corner (the person's right: the
// image's left); then NMS.
//
// Scale policy (measured on wider-dev and lfw-dev, docs/benchmarks.md): the
// photo is shrunk (INTER_AREA) so that its longer side is at most 1024 px (or
// DetectorOptions::max_side when smaller); one pass scores faces well up to
// ~400 px and loses them from ~500 px, so a second pass on a 0.4x copy finds
// the larger ones (its faces under 100 main-pass px are dropped: the main pass
// finds those better), and both passes' candidates are merged by one NMS.
// YuNet needs no upsampling for faces of 10-300 px. Faces whose longer side is
// under DetectorOptions::min_face (original pixels) are dropped.
//
// After NMS each kept box is the score-weighted mean of the candidates that
// overlap it (box voting: YuNet's best-scored anchor is often a few pixels off,
// and the mean of its neighbours matches the face better), and uncertain faces
// get a second look at their mirror image: a real face scores about the same
// mirrored, while the face-like objects that reach 0.55-0.7 (a galaxy, a
// headlight, the patches of a painting) mostly do not. Measured on wider-dev,
// negatives/clean and lfw-dev: docs/benchmarks.md, "Detection".
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/pipeline/detector.hpp"

namespace faceq::detail {
namespace {

// One detected face, in pixels of the image passed to detect(). The box is YuNet's own box (not
// clipped to the image; it can reach slightly outside near the borders).
struct YunetFace {
    float x = 0, y = 0, w = 0, h = 0;  // top-left corner, width, height
    float score = 0;                   // sqrt(cls * obj), in [0, 1]
    // right eye, left eye, nose tip, right mouth corner, left mouth corner; "right" as seen from
    // the person, i.e. the point on the image's left side.
    std::array<cv::Point2f, 5> landmarks{};
    bool second_pass = false;  // found by the second (0.4x) pass
};

// Defaults chosen on wider-dev / lfw-dev / negatives (REPORT.md).
inline constexpr float kYunetDefaultScoreThreshold = 0.55f;
inline constexpr float kYunetDefaultNmsIou = 0.4f;

// How the detector sees the image. Defaults are the ones chosen by measurement (REPORT.md).
struct YunetOptions {
    // The image is downscaled (cv::INTER_AREA) so that its longer side is at most max_side before
    // the main pass; 0 = never downscale. Boxes are mapped back to the original pixels. Faces
    // narrower than ~20 px after this shrink are mostly lost (~10 px at best).
    int max_side = 1024;
    // If > 0, a second pass runs on a copy of the main-pass image scaled by this factor, and both
    // passes' candidates are merged by NMS. One pass scores faces well up to ~400 px wide and
    // loses them from ~500 px; the 0.4 pass covers faces up to ~1000 main-pass px, for ~16% of
    // the main pass's cost.
    float second_pass_scale = 0.4f;
    // The second pass is skipped when the main-pass image's longer side is below this many pixels
    // (in small images no face is too large for the main pass).
    int second_pass_min_side = 320;
    // Second-pass faces narrower than this many main-pass pixels are dropped before the merge: the
    // main pass finds those better, and small second-pass hits are mostly false positives.
    float second_pass_min_face = 100;
    // Second-pass faces must score at least this (and the caller's threshold); those under
    // second_pass_confirm_below must also pass the mirrored-crop check below. Unchecked, its hits
    // between 0.55 and 0.7 are half false positives on wider-dev and mostly false positives on
    // portraits (painted or textured backgrounds: 2 on biden2.jpg, which a user then cannot
    // enroll from); checked, biden2.jpg keeps its one face and wider-dev gains 3 large faces.
    float second_pass_score_threshold = 0.55f;
    float second_pass_confirm_below = 0.7f;
    // The second pass's check: a square crop of this many face widths around the face, resized so
    // the face is second_pass_confirm_face px wide, mirrored; YuNet must find the face there again
    // (IoU >= 0.4) with a score >= confirm_score.
    float second_pass_confirm_context = 2.5f;
    float second_pass_confirm_face = 112;
    // Main-pass faces scoring under this get the mirror check at the main pass's own scale: a
    // square crop of confirm_context face widths (at least confirm_min_side px) of the main-pass
    // image, mirrored. On wider-dev the real faces under 0.71 mostly score >= 0.4 mirrored; the
    // negatives' galaxy and motorcycle headlights score 0.12-0.22.
    float confirm_below = 0.71f;
    float confirm_score = 0.4f;
    float confirm_context = 4.0f;
    int confirm_min_side = 128;
    // Box voting: candidates scoring at least vote_floor (also below the caller's threshold) that
    // overlap a kept box by IoU >= vote_iou are averaged into it, weighted by score; 0 = off.
    float vote_iou = 0.5f;
    float vote_floor = 0.5f;
    // At most this many candidates (best scores first) enter NMS; 0 = no limit.
    int top_k = 5000;
};

class YunetDetector {
public:
    // Loads the ONNX file. Throws std::runtime_error naming the path if the file cannot be read,
    // cannot be parsed, or is not a YuNet 2023 model (missing cls_8 ... kps_32 outputs).
    explicit YunetDetector(const std::string& onnx_path, YunetOptions options = {});

    // Deep copies: each copy owns its own cv::dnn::Net (built from the shared model bytes).
    YunetDetector(const YunetDetector& other);
    YunetDetector& operator=(const YunetDetector& other) = delete;
    YunetDetector(YunetDetector&&) = default;
    YunetDetector& operator=(YunetDetector&&) = delete;
    ~YunetDetector() = default;

    const YunetOptions& options() const noexcept { return options_; }

    // Full pipeline: shrink (options().max_side), main pass, optional second pass, NMS, box
    // voting, mirror checks of the uncertain faces (the caller applies --min-face). Accepts 8-bit
    // BGR, BGRA or grayscale; an empty image gives no faces. Result sorted by score, best first,
    // in the input image's pixel coordinates.
    std::vector<YunetFace> detect(const cv::Mat& bgr, float score_threshold, float nms_iou);

    // All passes of the shrink policy, decoded candidates with score >= score_threshold (second
    // pass included, whatever second_pass_score_threshold), before NMS, in `bgr`'s pixels,
    // unsorted.
    std::vector<YunetFace> candidates(const cv::Mat& bgr, float score_threshold);
    // Greedy NMS (cv::dnn::NMSBoxes), best scores first. top_k = 0: no limit.
    static std::vector<YunetFace> nms(const std::vector<YunetFace>& cands, float score_threshold, float nms_iou,
                                      int top_k = 0);

private:
    // One cv::dnn::Net per pass: a Net re-allocates its buffers whenever its input size changes,
    // so the main and the second pass each keep their own (and their own scratch buffers).
    struct Pass {
        cv::dnn::Net net;
        cv::Mat padded;
        cv::Mat blob;
    };
    void build_nets();
    std::vector<YunetFace> run_pass(Pass& pass, const cv::Mat& bgr, float score_threshold);

    // The best score YuNet gives `face` (IoU >= 0.4) in a mirrored side x side crop around it of
    // `image` scaled by `zoom`; 0 if it does not find it there.
    float mirrored_score(const cv::Mat& image, const YunetFace& face, int side, double zoom);
    void vote(std::vector<YunetFace>& kept, const std::vector<YunetFace>& cands) const;

    std::string path_;
    std::shared_ptr<const std::vector<std::uint8_t>> model_bytes_;  // shared, immutable
    YunetOptions options_;
    std::vector<std::string> out_names_;
    Pass main_, second_, confirm_;
};

namespace {

constexpr int kStrides[3] = {8, 16, 32};
constexpr int kAlign = 32;  // input sides must be multiples of the largest stride

// Output order used by forward(): cls_8 cls_16 cls_32 obj_8 ... kps_32.
std::vector<std::string> output_names() {
    std::vector<std::string> names;
    for (const char* kind : {"cls", "obj", "bbox", "kps"})
        for (int s : kStrides) names.push_back(std::string(kind) + "_" + std::to_string(s));
    return names;
}

std::shared_ptr<const std::vector<std::uint8_t>> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("yunet: cannot open model file '" + path + "'");
    auto bytes = std::make_shared<std::vector<std::uint8_t>>(std::istreambuf_iterator<char>(in),
                                                             std::istreambuf_iterator<char>());
    if (in.bad() || bytes->empty())
        throw std::runtime_error("yunet: cannot read model file '" + path + "' (empty or I/O error)");
    return bytes;
}

// 8-bit 1/3/4-channel image -> 8-bit BGR (no copy when it already is).
cv::Mat to_bgr(const cv::Mat& img) {
    if (img.depth() != CV_8U)
        throw std::invalid_argument("yunet: expected an 8-bit image, got depth " + std::to_string(img.depth()));
    cv::Mat bgr;
    switch (img.channels()) {
        case 3:
            return img;
        case 1:
            cv::cvtColor(img, bgr, cv::COLOR_GRAY2BGR);
            return bgr;
        case 4:
            cv::cvtColor(img, bgr, cv::COLOR_BGRA2BGR);
            return bgr;
        default:
            throw std::invalid_argument("yunet: expected 1, 3 or 4 channels, got " + std::to_string(img.channels()));
    }
}

// Resize so that the image is `scale` times its size (per-axis exact factors returned).
cv::Mat scaled(const cv::Mat& img, double scale, double& fx, double& fy) {
    const int w = std::max(1, static_cast<int>(std::lround(img.cols * scale)));
    const int h = std::max(1, static_cast<int>(std::lround(img.rows * scale)));
    fx = static_cast<double>(img.cols) / w;
    fy = static_cast<double>(img.rows) / h;
    if (w == img.cols && h == img.rows) return img;
    cv::Mat out;
    cv::resize(img, out, cv::Size(w, h), 0, 0, scale < 1.0 ? cv::INTER_AREA : cv::INTER_LINEAR);
    return out;
}

float overlap(const YunetFace& a, const YunetFace& b) {
    const float x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
    const float x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
    if (x1 <= x0 || y1 <= y0) return 0;
    const float inter = (x1 - x0) * (y1 - y0);
    return inter / (a.w * a.h + b.w * b.h - inter);
}

void map_back(std::vector<YunetFace>& faces, double fx, double fy) {
    if (fx == 1.0 && fy == 1.0) return;
    for (auto& f : faces) {
        f.x = static_cast<float>(f.x * fx);
        f.y = static_cast<float>(f.y * fy);
        f.w = static_cast<float>(f.w * fx);
        f.h = static_cast<float>(f.h * fy);
        for (auto& p : f.landmarks) p = cv::Point2f(static_cast<float>(p.x * fx), static_cast<float>(p.y * fy));
    }
}

}  // namespace

YunetDetector::YunetDetector(const std::string& onnx_path, YunetOptions options)
    : path_(onnx_path), model_bytes_(read_file(onnx_path)), options_(options), out_names_(output_names()) {
    build_nets();
}

YunetDetector::YunetDetector(const YunetDetector& other)
    : path_(other.path_), model_bytes_(other.model_bytes_), options_(other.options_), out_names_(other.out_names_) {
    build_nets();
}

void YunetDetector::build_nets() {
    for (Pass* pass : {&main_, &second_, &confirm_}) {
        cv::dnn::Net net;
        try {
            net = cv::dnn::readNetFromONNX(reinterpret_cast<const char*>(model_bytes_->data()), model_bytes_->size());
        } catch (const cv::Exception& e) {
            throw std::runtime_error("yunet: cannot load ONNX model '" + path_ + "': " + e.what());
        }
        if (net.empty()) throw std::runtime_error("yunet: cannot load ONNX model '" + path_ + "'");
        net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
        net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
        const auto have = net.getUnconnectedOutLayersNames();
        for (const auto& name : out_names_)
            if (std::find(have.begin(), have.end(), name) == have.end())
                throw std::runtime_error("yunet: '" + path_ + "' is not a YuNet 2023 model (no output '" + name + "')");
        pass->net = net;
    }
}

std::vector<YunetFace> YunetDetector::run_pass(Pass& pass, const cv::Mat& image, float score_threshold) {
    std::vector<YunetFace> faces;
    if (image.empty()) return faces;
    const cv::Mat bgr = to_bgr(image);
    const int W = (bgr.cols + kAlign - 1) / kAlign * kAlign;
    const int H = (bgr.rows + kAlign - 1) / kAlign * kAlign;
    const cv::Mat* input = &bgr;
    if (W != bgr.cols || H != bgr.rows) {
        cv::copyMakeBorder(bgr, pass.padded, 0, H - bgr.rows, 0, W - bgr.cols, cv::BORDER_CONSTANT, cv::Scalar::all(0));
        input = &pass.padded;
    }
    // BGR, scale 1, no mean, no channel swap: the model takes raw 0..255 BGR.
    cv::dnn::blobFromImage(*input, pass.blob, 1.0, cv::Size(), cv::Scalar(), false, false, CV_32F);
    pass.net.setInput(pass.blob);
    std::vector<cv::Mat> outs;
    pass.net.forward(outs, out_names_);
    if (outs.size() != 12) throw std::runtime_error("yunet: unexpected number of outputs");

    const float thr = std::max(0.0f, score_threshold);
    for (int k = 0; k < 3; ++k) {
        const int s = kStrides[k];
        const int cols = W / s, rows = H / s, n = cols * rows;
        const cv::Mat &cls = outs[k], &obj = outs[3 + k], &box = outs[6 + k], &kps = outs[9 + k];
        if (cls.total() != static_cast<size_t>(n) || obj.total() != static_cast<size_t>(n) ||
            box.total() != static_cast<size_t>(n) * 4 || kps.total() != static_cast<size_t>(n) * 10 ||
            !cls.isContinuous() || !obj.isContinuous() || !box.isContinuous() || !kps.isContinuous())
            throw std::runtime_error("yunet: unexpected output shape at stride " + std::to_string(s));
        const float* pc = cls.ptr<float>();
        const float* po = obj.ptr<float>();
        const float* pb = box.ptr<float>();
        const float* pk = kps.ptr<float>();
        for (int i = 0; i < n; ++i) {
            const float c = std::min(std::max(pc[i], 0.0f), 1.0f);
            const float o = std::min(std::max(po[i], 0.0f), 1.0f);
            const float score = std::sqrt(c * o);
            if (score < thr || score <= 0.0f) continue;
            const int r = i / cols, col = i % cols;
            const float* b = pb + 4 * static_cast<size_t>(i);
            const float* q = pk + 10 * static_cast<size_t>(i);
            YunetFace f;
            const float cx = (col + b[0]) * s, cy = (r + b[1]) * s;
            f.w = std::exp(b[2]) * s;
            f.h = std::exp(b[3]) * s;
            f.x = cx - f.w / 2;
            f.y = cy - f.h / 2;
            f.score = score;
            for (int j = 0; j < 5; ++j) f.landmarks[j] = cv::Point2f((col + q[2 * j]) * s, (r + q[2 * j + 1]) * s);
            faces.push_back(f);
        }
    }
    return faces;
}

std::vector<YunetFace> YunetDetector::nms(const std::vector<YunetFace>& cands, float score_threshold, float nms_iou,
                                          int top_k) {
    std::vector<cv::Rect2d> boxes;
    std::vector<float> scores;
    boxes.reserve(cands.size());
    scores.reserve(cands.size());
    for (const auto& f : cands) {
        boxes.emplace_back(f.x, f.y, f.w, f.h);
        scores.push_back(f.score);
    }
    std::vector<int> keep;
    cv::dnn::NMSBoxes(boxes, scores, score_threshold, nms_iou, keep, 1.0f, std::max(0, top_k));
    std::vector<YunetFace> out;
    out.reserve(keep.size());
    for (int i : keep) out.push_back(cands[static_cast<size_t>(i)]);
    // NMSBoxes already returns best-first; keep that order stable for equal scores.
    std::stable_sort(out.begin(), out.end(), [](const YunetFace& a, const YunetFace& b) { return a.score > b.score; });
    return out;
}

std::vector<YunetFace> YunetDetector::candidates(const cv::Mat& image, float score_threshold) {
    if (image.empty()) return {};
    const cv::Mat bgr = to_bgr(image);

    // Main pass, on a copy shrunk to max_side if needed.
    const int longest = std::max(bgr.cols, bgr.rows);
    double fx = 1.0, fy = 1.0;
    cv::Mat main_img = bgr;
    if (options_.max_side > 0 && longest > options_.max_side)
        main_img = scaled(bgr, static_cast<double>(options_.max_side) / longest, fx, fy);
    std::vector<YunetFace> cands = run_pass(main_, main_img, score_threshold);
    map_back(cands, fx, fy);

    // Optional second pass on a smaller copy, for faces too large for the main pass.
    const float s2 = options_.second_pass_scale;
    if (s2 > 0.0f && s2 < 1.0f && std::max(main_img.cols, main_img.rows) >= options_.second_pass_min_side) {
        double gx = 1.0, gy = 1.0;
        const cv::Mat small = scaled(main_img, s2, gx, gy);
        std::vector<YunetFace> more = run_pass(second_, small, score_threshold);
        for (auto& f : more) f.second_pass = true;
        map_back(more, gx, gy);  // -> main-pass pixels
        if (options_.second_pass_min_face > 0)
            more.erase(std::remove_if(more.begin(), more.end(),
                                      [&](const YunetFace& f) { return f.w < options_.second_pass_min_face; }),
                       more.end());
        map_back(more, fx, fy);  // -> original pixels
        cands.insert(cands.end(), more.begin(), more.end());
    }
    return cands;
}

void YunetDetector::vote(std::vector<YunetFace>& kept, const std::vector<YunetFace>& cands) const {
    for (auto& k : kept) {
        const YunetFace ref = k;
        double sum = 0, x = 0, y = 0, w = 0, h = 0;
        std::array<cv::Point2d, 5> lm{};
        for (const auto& c : cands) {
            if (c.score < options_.vote_floor || overlap(c, ref) < options_.vote_iou) continue;
            sum += c.score;
            x += c.score * c.x, y += c.score * c.y, w += c.score * c.w, h += c.score * c.h;
            for (int j = 0; j < 5; ++j) lm[j] += c.score * cv::Point2d(c.landmarks[j]);
        }
        if (sum <= 0) continue;  // `ref` scores under vote_floor: nothing to average
        k.x = static_cast<float>(x / sum), k.y = static_cast<float>(y / sum);
        k.w = static_cast<float>(w / sum), k.h = static_cast<float>(h / sum);
        for (int j = 0; j < 5; ++j) k.landmarks[j] = cv::Point2f(lm[j] * (1.0 / sum));
    }
}

float YunetDetector::mirrored_score(const cv::Mat& bgr, const YunetFace& face, int side, double zoom) {
    // The crop in `bgr`'s pixels: n x n around the face's centre, black outside the image.
    const int n = std::max(1, static_cast<int>(std::lround(side / zoom)));
    const int ox = static_cast<int>(std::lround(face.x + face.w / 2 - n / 2.0));
    const int oy = static_cast<int>(std::lround(face.y + face.h / 2 - n / 2.0));
    cv::Mat canvas(n, n, bgr.type(), cv::Scalar::all(0));
    const cv::Rect inside = cv::Rect(ox, oy, n, n) & cv::Rect(0, 0, bgr.cols, bgr.rows);
    if (inside.area() > 0) bgr(inside).copyTo(canvas(inside - cv::Point(ox, oy)));
    cv::Mat crop;
    cv::resize(canvas, crop, cv::Size(side, side), 0, 0, side < n ? cv::INTER_AREA : cv::INTER_LINEAR);
    cv::flip(crop, crop, 1);
    float best = 0;
    const double back = static_cast<double>(n) / side;
    for (YunetFace g : run_pass(confirm_, crop, options_.confirm_score)) {
        g.x = static_cast<float>((side - g.x - g.w) * back + ox);
        g.y = static_cast<float>(g.y * back + oy);
        g.w = static_cast<float>(g.w * back);
        g.h = static_cast<float>(g.h * back);
        if (overlap(g, face) >= 0.4f) best = std::max(best, g.score);
    }
    return best;
}

std::vector<YunetFace> YunetDetector::detect(const cv::Mat& image, float score_threshold, float nms_iou) {
    if (image.empty()) return {};
    const cv::Mat bgr = to_bgr(image);
    const bool voting = options_.vote_iou > 0;
    const std::vector<YunetFace> cands =
        candidates(bgr, voting ? std::min(score_threshold, options_.vote_floor) : score_threshold);
    const float second_threshold = std::max(options_.second_pass_score_threshold, score_threshold);
    std::vector<YunetFace> eligible;
    for (const auto& f : cands)
        if (f.score >= (f.second_pass ? second_threshold : score_threshold)) eligible.push_back(f);
    std::vector<YunetFace> kept = nms(eligible, score_threshold, nms_iou, options_.top_k);
    if (voting) vote(kept, cands);

    const int longest = std::max(bgr.cols, bgr.rows);
    const double main_zoom =
        options_.max_side > 0 && longest > options_.max_side ? static_cast<double>(options_.max_side) / longest : 1.0;
    const auto doubtful = [&](const YunetFace& f) {
        const double size = std::max(f.w, f.h);
        if (size <= 0) return true;
        if (f.second_pass) {
            if (f.score >= options_.second_pass_confirm_below) return false;
            const int side =
                static_cast<int>(std::lround(options_.second_pass_confirm_context * options_.second_pass_confirm_face));
            return mirrored_score(bgr, f, side, options_.second_pass_confirm_face / size) < options_.confirm_score;
        }
        if (f.score >= options_.confirm_below) return false;
        // At the main pass's scale, rounded to YuNet's 32 px grid, and never larger than the
        // main-pass image (a large face's check costs at most one more main pass).
        const int widest = (static_cast<int>(std::lround(longest * main_zoom)) + kAlign - 1) / kAlign * kAlign;
        const int side = std::min(
            widest,
            std::max(options_.confirm_min_side,
                     static_cast<int>(std::lround(options_.confirm_context * size * main_zoom / kAlign)) * kAlign));
        return mirrored_score(bgr, f, side, main_zoom) < options_.confirm_score;
    };
    kept.erase(std::remove_if(kept.begin(), kept.end(), doubtful), kept.end());
    return kept;
}

// ---------------------------------------------------------------- Detector

// Score threshold and NMS overlap chosen on wider-dev and lfw-dev; with box
// voting and the mirror checks: recall 0.922, AP 0.918, 0.29 false positives per
// photo, 1 detection on 56 clean negatives, no lfw-dev photo without a face.
constexpr float score_threshold = kYunetDefaultScoreThreshold;
constexpr float nms_iou = kYunetDefaultNmsIou;

class YunetFaceDetector final : public Detector {
public:
    YunetFaceDetector(const InstalledModel& model, const DetectorOptions& options)
        : version_(model.version()), options_(options), net_(load(model, options)) {}

    std::vector<Detection> detect(const cv::Mat& bgr) override {
        std::vector<Detection> out;
        for (const auto& f : net_.detect(bgr, score_threshold, nms_iou)) {
            Detection d;
            d.box = Box{static_cast<int>(std::lround(f.x)), static_cast<int>(std::lround(f.y)),
                        static_cast<int>(std::lround(f.w)), static_cast<int>(std::lround(f.h))};
            if (std::max(d.box.width, d.box.height) < options_.min_face) continue;
            d.score = f.score;
            d.confidence = std::clamp<double>(f.score, 0.0, 1.0);
            for (const auto& p : f.landmarks) d.landmarks.push_back(Point{p.x, p.y});
            out.push_back(std::move(d));
        }
        return out;
    }

    double scale(int width, int height) const override {
        const int longest = std::max(width, height);
        const int max_side = net_.options().max_side;
        return max_side > 0 && longest > max_side ? static_cast<double>(max_side) / longest : 1.0;
    }

    const std::string& name() const override { return name_; }
    const std::string& version() const override { return version_; }
    FaceSizeRange native_face_sizes() const override { return {10, 400}; }
    std::unique_ptr<Detector> clone() const override { return std::make_unique<YunetFaceDetector>(*this); }

private:
    static YunetDetector load(const InstalledModel& model, const DetectorOptions& options) {
        YunetOptions o;
        o.max_side = std::min(o.max_side, options.max_side);
        try {
            return YunetDetector(model.path.string(), o);
        } catch (const std::exception& e) {
            throw Error(ErrorKind::model, e.what());
        }
    }

    std::string name_ = "yunet";
    std::string version_;
    DetectorOptions options_;
    YunetDetector net_;
};

}  // namespace

// For the table in detector.cpp.
std::unique_ptr<Detector> make_yunet_detector(const ModelSet& models, const DetectorOptions& options) {
    if (!models.detector_yunet)
        throw Error(ErrorKind::model, "the YuNet detector model is not installed; run: faceq download models");
    return std::make_unique<YunetFaceDetector>(*models.detector_yunet, options);
}

}  // namespace faceq::detail
