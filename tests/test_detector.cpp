// tests/test_detector.cpp — the Detector and Embedder seams on their own:
// make_detector() gives the detectors the Analyzer runs (same boxes, scores
// and versions, pinned to the figures the pipeline gave before the seam
// existed), their scale policy, their clones, and refuses unknown names;
// make_embedder() gives the ResNet with its chip geometry, id and features.
#include <dlib/revision.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <opencv2/core.hpp>

#include "faceq/base/error.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/detector.hpp"
#include "faceq/pipeline/embedder.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

DetectorOptions detector_options(const AnalyzeOptions& o) { return {o.upsample, o.max_side, o.min_face}; }

Box clip(const Box& b, int width, int height) {
    const int x0 = std::max(b.x, 0), y0 = std::max(b.y, 0);
    const int x1 = std::min(b.x + b.width, width), y1 = std::min(b.y + b.height, height);
    return {x0, y0, std::max(0, x1 - x0), std::max(0, y1 - y0)};
}

bool same_box(const Box& a, const Box& b) {
    return a.x == b.x && a.y == b.y && a.width == b.width && a.height == b.height;
}

ErrorKind kind_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.kind();
    }
    FAIL("no faceq::Error thrown");
    return ErrorKind::internal;
}

}  // namespace

TEST_CASE("make_detector: HOG and CNN find the Analyzer's faces on dlib_faces photos", "[detector][dataset]") {
    REQUIRE_MODELS();
    const auto dir = data_dir() / "dlib_faces";
    for (const std::string name : {"hog", "cnn"}) {
        INFO("detector " << name);
        const ModelSet models = test_model_set(name == "cnn");
        AnalyzeOptions options;
        options.detector = name;
        options.descriptors = false;
        options.gender = false;
        Analyzer analyzer(models, options);
        const auto detector = make_detector(name, models, detector_options(options));
        const auto copy = detector->clone();
        CHECK(detector->name() == name);
        CHECK(detector->version() == analyzer.versions().detector);
        std::size_t total = 0;
        for (const char* file : {"2008_002470.jpg", "2008_002506.jpg", "2008_007676.jpg", "2009_004587.jpg"}) {
            INFO(file);
            const cv::Mat bgr = load_image_file(dir / file).bgr;
            const auto result = analyzer.analyze(bgr);
            const auto found = detector->detect(bgr);
            const auto again = copy->detect(bgr);
            REQUIRE(found.size() == result.faces.size());
            REQUIRE(again.size() == found.size());
            for (std::size_t i = 0; i < found.size(); ++i) {
                CHECK(same_box(clip(found[i].box, bgr.cols, bgr.rows), result.faces[i].bbox));
                CHECK(found[i].score == result.faces[i].detector_score);
                CHECK(found[i].confidence == result.faces[i].confidence);
                CHECK(found[i].confidence == Approx(1.0 / (1.0 + std::exp(-2.0 * found[i].score))));
                CHECK(std::max(found[i].box.width, found[i].box.height) >= options.min_face);
                CHECK(found[i].landmarks.empty());
                CHECK(same_box(again[i].box, found[i].box));
                CHECK(again[i].score == found[i].score);
            }
            total += found.size();
        }
        CHECK(total >= (name == "hog" ? 12u : 5u));  // measured: 12 and 5
    }
}

TEST_CASE("HOG and CNN boxes and scores are the pipeline's figures from before the seam", "[detector]") {
    REQUIRE_MODELS();
    // Measured with the pre-seam Analyzer (default options) on
    // dlib_faces/2008_002506.jpg: (x, y, width, height) and the raw score.
    struct Expected {
        Box box;
        double score;
    };
    const std::vector<Expected> hog = {
        {{117, 57, 108, 108}, 1.8625}, {{332, 81, 108, 108}, 1.5902}, {{227, 97, 90, 90}, 1.1297}};
    const std::vector<Expected> cnn = {
        {{120, 61, 96, 96}, 1.0672}, {{228, 92, 80, 80}, 1.0618}, {{317, 70, 115, 115}, 1.0407}};
    const cv::Mat bgr = load_image_file(data_dir() / "dlib_faces" / "2008_002506.jpg").bgr;
    for (const auto& [name, expected] : {std::pair{"hog", hog}, std::pair{"cnn", cnn}}) {
        INFO("detector " << name);
        // At the scale of those days: since the CNN's window is 80 px (issue
        // 10), its default upsamples; the figures are its 1x ones.
        DetectorOptions o;
        if (std::string(name) == "cnn") o.upsample = 0;
        const auto found = make_detector(name, test_model_set(true), o)->detect(bgr);
        REQUIRE(found.size() == expected.size());
        for (std::size_t i = 0; i < found.size(); ++i) {
            CHECK(same_box(found[i].box, expected[i].box));
            CHECK(found[i].score == Approx(expected[i].score).margin(5e-5));
        }
    }
    CHECK(make_detector("hog", ModelSet{}, {})->version() ==
          fmt::format("dlib_hog_frontal_face@{}.{}", DLIB_MAJOR_VERSION, DLIB_MINOR_VERSION));
    CHECK(make_detector("cnn", test_model_set(true), {})->version() == test_model_set(true).detector_cnn->version());
}

TEST_CASE("the HOG detector's scale policy: powers of two from min_face, capped by max_side", "[detector]") {
    auto scale = [](const DetectorOptions& o, int w, int h) {
        return make_detector("hog", ModelSet{}, o)->scale(w, h);
    };
    DetectorOptions o;  // upsample -1, max_side 2048, min_face 0 = HOG's 40: a 40 px face up to the 80 px window
    CHECK(scale(o, 500, 375) == 2.0);
    CHECK(scale(o, 1986, 1545) == Approx(2048.0 / 1986));  // pyramid_up would exceed max_side
    CHECK(scale(o, 4000, 3000) == Approx(2048.0 / 4000));
    o.min_face = 80;
    CHECK(scale(o, 500, 375) == 1.0);
    o.min_face = 20;
    CHECK(scale(o, 500, 375) == 4.0);
    o.min_face = 41;
    CHECK(scale(o, 500, 375) == 2.0);
    o.upsample = 0;
    CHECK(scale(o, 500, 375) == 1.0);
    o.upsample = 3;
    CHECK(scale(o, 100, 100) == 8.0);
    CHECK(scale(o, 0, 0) == 1.0);  // an empty image is not resized
    o.max_side = 300;
    CHECK(scale(o, 100, 100) == 3.0);
}

TEST_CASE("--min-face defaults to the detector's smallest reliable face", "[detector]") {
    CHECK(detector_default_min_face("hog") == 40);
    CHECK(detector_default_min_face("cnn") == 40);
    CHECK(detector_default_min_face("yunet") == 10);
    CHECK_THROWS_AS(detector_default_min_face("sift"), Error);
    CHECK(AnalyzeOptions{}.min_face == 0);  // 0 = the detector's
    CHECK(AnalyzeOptions{}.detector == "yunet");
    // HOG at 0 scales as at 40 px.
    DetectorOptions zero, forty;
    forty.min_face = 40;
    CHECK(make_detector("hog", ModelSet{}, zero)->scale(500, 375) ==
          make_detector("hog", ModelSet{}, forty)->scale(500, 375));
}

TEST_CASE("the CNN detector's factor comes from its 80 px window, as HOG's; the Analyzer reports it", "[detector]") {
    REQUIRE_MODELS();
    const ModelSet models = test_model_set(true);
    DetectorOptions o;
    const auto cnn = make_detector("cnn", models, o);
    // dlib's MMOD model finds few faces under ~80 px (wider-dev, docs/benchmarks.md):
    // --min-face 40 upsamples once, as for HOG.
    CHECK(cnn->native_face_sizes().smallest == 80);
    CHECK(cnn->scale(500, 375) == 2.0);
    o.min_face = 80;
    CHECK(make_detector("cnn", models, o)->scale(500, 375) == 1.0);
    o.min_face = 20;
    CHECK(make_detector("cnn", models, o)->scale(500, 375) == 4.0);
    CHECK(make_detector("hog", models, o)->native_face_sizes().smallest == 80);

    // The Analyzer reports its detector's factor.
    AnalyzeOptions a;
    a.detector = "hog";
    a.min_face = 20;
    a.descriptors = false;
    CHECK(Analyzer(models, a).detection_scale(500, 375) == 4.0);
    a.detector = "cnn";
    CHECK(Analyzer(models, a).detection_scale(500, 375) == 4.0);
    a.max_side = 700;
    CHECK(Analyzer(models, a).detection_scale(500, 375) == Approx(1.4));
}

TEST_CASE("unknown detectors are usage errors; a missing CNN or YuNet model is a model error", "[detector]") {
    CHECK(kind_of([] { make_detector("nope", ModelSet{}, {}); }) == ErrorKind::usage);
    CHECK_THROWS_WITH(make_detector("nope", ModelSet{}, {}), Catch::Contains("hog, cnn or yunet"));
    CHECK(kind_of([] { make_detector("cnn", ModelSet{}, {}); }) == ErrorKind::model);
    CHECK(kind_of([] { make_detector("yunet", ModelSet{}, {}); }) == ErrorKind::model);
    CHECK_THROWS_WITH(make_detector("yunet", ModelSet{}, {}), Catch::Contains("faceq download models"));
    AnalyzeOptions a;
    a.detector = "nope";
    CHECK(kind_of([&] { (void)Analyzer(ModelSet{}, a); }) == ErrorKind::usage);
}

TEST_CASE("the default pipeline needs no 68-point model; 68-point alignment asks for it by name", "[detector]") {
    REQUIRE_MODELS();
    ModelSet models = test_model_set();
    models.landmarks.reset();  // as on a machine without Debian's libdlib-data
    AnalyzeOptions options;
    options.gender = false;
    Analyzer yunet(models, options);
    const auto r =
        yunet.analyze(load_image_file(data_dir() / "face_recognition_examples" / "examples" / "obama.jpg").bgr);
    REQUIRE(r.faces.size() == 1);
    CHECK(r.faces[0].landmarks.size() == 5);
    options.detector = "hog";
    CHECK(kind_of([&] { (void)Analyzer(models, options); }) == ErrorKind::model);
    CHECK_THROWS_WITH(Analyzer(models, options),
                      Catch::Contains("68-point") && Catch::Contains("faceq download models"));
}

TEST_CASE("make_embedder: the ResNet's geometry, id, and mirror-symmetric features", "[embedder]") {
    REQUIRE_MODELS();
    const ModelSet models = test_model_set();
    const auto embedder = make_embedder(models.embedder);
    CHECK(embedder->id() == models.embedder.version());
    CHECK(embedder->geometry().size == 150);
    CHECK(embedder->geometry().padding == 0.25);
    CHECK(embedder->dimension() == 128);
    CHECK(embedder->feature_size() == attribute_feature_size());

    // A chip with a left/right asymmetry, and its mirror image.
    cv::Mat chip(150, 150, CV_8UC3);
    for (int y = 0; y < 150; ++y)
        for (int x = 0; x < 150; ++x)
            chip.at<cv::Vec3b>(y, x) =
                cv::Vec3b(static_cast<uchar>(x), static_cast<uchar>(y), static_cast<uchar>(x + y));
    cv::Mat mirror;
    cv::flip(chip, mirror, 1);
    const auto copy = embedder->clone();
    const auto plain = copy->embed({chip, mirror}, 0, 16);
    std::vector<Descriptor> descs;
    const auto rows = embedder->features({chip, mirror}, descs, 16);
    REQUIRE(rows.size() == 2);
    REQUIRE(descs.size() == 2);
    REQUIRE(rows[0].size() == embedder->feature_size());
    float norm = 0, diff = 0, mirrored = 0;
    for (std::size_t k = 0; k < 128; ++k) {
        norm += plain[0][k] * plain[0][k];
        diff = std::max(diff, std::abs(descs[0][k] - plain[0][k]));
        mirrored = std::max(mirrored, std::abs(plain[0][k] - plain[1][k]));
    }
    CHECK(std::sqrt(norm) == Approx(1.0).margin(0.5));
    CHECK(diff < 1e-4f);  // the features' pass gives the same descriptors
    // The chip is not symmetric, but descriptors (the "+flip" identity) and
    // features both average it with its mirror image: the two agree.
    CHECK(mirrored < 1e-4f);
    float sym = 0;
    for (std::size_t k = 0; k < rows[0].size(); ++k) sym = std::max(sym, std::abs(rows[0][k] - rows[1][k]));
    CHECK(sym < 1e-4f);
}
