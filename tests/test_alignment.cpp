// Alignment from YuNet's 5 points (src/core/pipeline/stages.hpp): the
// template five_point_template is re-derived on lfw-dev photos — where
// YuNet's points fall, on average, in the chips that dlib's 68-point alignment
// cuts of the same face — and the chips the two alignments cut are compared.
#include <dlib/image_transforms.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "faceq/pipeline/detector.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "pipeline/stages.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

// The detection nearest the image centre (the LFW subject), or null.
const Detection* central(const std::vector<Detection>& found, int width, int height) {
    const Detection* best = nullptr;
    double best_d = 1e18;
    for (const auto& d : found) {
        const double dx = d.box.x + d.box.width / 2.0 - width / 2.0, dy = d.box.y + d.box.height / 2.0 - height / 2.0;
        if (dx * dx + dy * dy < best_d) best_d = dx * dx + dy * dy, best = &d;
    }
    return best;
}

// Every `step`-th lfw-dev photo, in a fixed order.
std::vector<std::filesystem::path> lfw_sample(std::size_t step) {
    std::vector<std::filesystem::path> all;
    for (const auto& e : std::filesystem::recursive_directory_iterator(data_dir() / "lfw-dev" / "lfw-deepfunneled"))
        if (e.path().extension() == ".jpg") all.push_back(e.path());
    std::sort(all.begin(), all.end());
    std::vector<std::filesystem::path> out;
    for (std::size_t i = 0; i < all.size(); i += step) out.push_back(all[i]);
    return out;
}

}  // namespace

TEST_CASE("5-point template: YuNet's points where dlib's 68-point chips put them, on lfw-dev", "[alignment]") {
    REQUIRE_MODELS();
    const ModelSet models = test_model_set();
    REQUIRE(models.detector_yunet);
    auto hog = make_detector("hog", models, {});
    REQUIRE(models.landmarks);
    const faceq::detail::Landmarker landmarker(*models.landmarks);
    auto yunet = make_detector("yunet", models, {});
    const ChipGeometry unit{1000, 0.0};  // chip pixels / 1000 = the template's frame

    std::array<std::array<double, 2>, 5> sum{};
    std::size_t n = 0;
    double chip_shift = 0;  // mean distance between the two alignments' chip centres, in 150-px chip pixels
    for (const auto& path : lfw_sample(10)) {
        const cv::Mat bgr = load_image_file(path).bgr;
        const auto by_hog = hog->detect(bgr);
        const auto by_yunet = yunet->detect(bgr);
        const auto* h = central(by_hog, bgr.cols, bgr.rows);
        const auto* y = central(by_yunet, bgr.cols, bgr.rows);
        if (!h || !y) continue;
        const faceq::detail::OriginalImage image(bgr);
        const auto shape = landmarker.locate(image, {*h}).at(0);
        const auto to_chip = dlib::get_mapping_to_chip(dlib::get_face_chip_details(shape, unit.size, unit.padding));
        for (std::size_t k = 0; k < 5; ++k) {
            const auto p = to_chip(dlib::dpoint(y->landmarks[k].x, y->landmarks[k].y));
            sum[k][0] += p.x() / unit.size;
            sum[k][1] += p.y() / unit.size;
        }
        // Where the centre of the 68-point chip lands in the 5-point chip.
        const ChipGeometry g{150, 0.25};
        const auto from68 = dlib::get_face_chip_details(shape, g.size, g.padding);
        const auto c = dlib::get_mapping_to_chip(faceq::detail::five_point_chip(y->landmarks, g))(
            dlib::inv(dlib::get_mapping_to_chip(from68))(dlib::dpoint(75, 75)));
        chip_shift += std::hypot(c.x() - 75, c.y() - 75);
        ++n;
    }
    REQUIRE(n >= 450);  // ~499 photos, each with the subject found by both detectors
    for (std::size_t k = 0; k < 5; ++k) {
        const double x = sum[k][0] / n, y = sum[k][1] / n;
        INFO("point " << k << ": derived (" << x << ", " << y << "), template ("
                      << faceq::detail::five_point_template[k][0] << ", " << faceq::detail::five_point_template[k][1]
                      << ")");
        CHECK(std::abs(x - faceq::detail::five_point_template[k][0]) < 0.01);
        CHECK(std::abs(y - faceq::detail::five_point_template[k][1]) < 0.01);
    }
    // The two alignments cut nearly the same chip: the centres agree within
    // a few of the chip's 150 pixels.
    INFO("mean shift of the chip centre: " << chip_shift / n << " px");
    CHECK(chip_shift / n < 4.5);  // measured 3.97 px (per-face scatter; the mean offset is fitted away)
}

TEST_CASE("analyze --detector yunet: 5 points and a +5pt embedder id; --landmarks 68 and bad combinations",
          "[alignment][cli]") {
    REQUIRE_MODELS();
    const std::string photo = (data_dir() / "face_recognition_examples" / "examples" / "obama.jpg").string();
    auto analyze = [&](std::vector<std::string> args) {
        std::vector<std::string> argv{"--home", test_home().root.string(), "analyze", photo};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_faceq(argv);
    };
    const auto five = analyze({"--detector", "yunet"});
    INFO(five.err);
    REQUIRE(five.exit_code == 0);
    const auto r5 = nlohmann::json::parse(five.out);
    REQUIRE(r5["faces"].size() == 1);
    CHECK(r5["faces"][0]["landmarks"].size() == 5);
    CHECK(r5["models"]["landmarks"] == r5["models"]["detector"]);
    const std::string id5 = r5["models"]["embedder"];
    CHECK(id5.substr(id5.size() - 9) == "+5pt+flip");

    const auto sixty_eight = analyze({"--detector", "yunet", "--landmarks", "68"});
    REQUIRE(sixty_eight.exit_code == 0);
    const auto r68 = nlohmann::json::parse(sixty_eight.out);
    CHECK(r68["faces"][0]["landmarks"].size() == 68);
    CHECK(r68["models"]["embedder"] == id5.substr(0, id5.size() - 9) + "+flip");

    const auto bad = analyze({"--detector", "hog", "--landmarks", "5"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("--landmarks 5 needs a detector that gives 5 points"));
    CHECK(bad.out.empty());
}
