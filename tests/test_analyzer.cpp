// tests/test_analyzer.cpp — the pipeline on real photos: detection recall and
// false positives, the converted descriptor network's verification accuracy
// on LFW (View 1 dev pairs), reference distances, gender on labelled faces.
#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "faceq/base/batch.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "lfw_descriptors.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

struct TruthBox {
    int x, y, w, h;
};

std::map<std::string, std::vector<TruthBox>> read_imglab(const std::filesystem::path& xml) {
    std::ifstream in(xml);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    std::map<std::string, std::vector<TruthBox>> out;
    const std::regex image_re("<image file='([^']+)'[^>]*>([\\s\\S]*?)</image>");
    const std::regex box_re("<box top='(-?\\d+)' left='(-?\\d+)' width='(\\d+)' height='(\\d+)'");
    for (std::sregex_iterator it(text.begin(), text.end(), image_re), end; it != end; ++it) {
        const std::string body = (*it)[2];
        auto& boxes = out[(*it)[1]];
        for (std::sregex_iterator b(body.begin(), body.end(), box_re); b != end; ++b)
            boxes.push_back({std::stoi((*b)[2]), std::stoi((*b)[1]), std::stoi((*b)[3]), std::stoi((*b)[4])});
    }
    return out;
}

double iou(const Box& a, const TruthBox& b) {
    const int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
    const int x1 = std::min(a.x + a.width, b.x + b.w), y1 = std::min(a.y + a.height, b.y + b.h);
    const double inter = std::max(0, x1 - x0) * static_cast<double>(std::max(0, y1 - y0));
    const double uni = static_cast<double>(a.width) * a.height + static_cast<double>(b.w) * b.h - inter;
    return uni > 0 ? inter / uni : 0.0;
}

AnalysisResult analyze_file(Analyzer& analyzer, const std::filesystem::path& path) {
    return analyzer.analyze(load_image_file(path).bgr);
}

// The face nearest the image centre (the LFW subject).
const Face* central_face(const AnalysisResult& r) {
    const Face* best = nullptr;
    double best_d = 1e18;
    for (const auto& f : r.faces) {
        const double cx = f.bbox.x + f.bbox.width / 2.0 - r.width / 2.0;
        const double cy = f.bbox.y + f.bbox.height / 2.0 - r.height / 2.0;
        const double d = cx * cx + cy * cy;
        if (d < best_d) {
            best_d = d;
            best = &f;
        }
    }
    return best;
}

struct Pair {
    std::string a, b;
    bool same;
};

std::vector<Pair> read_pairs(const std::filesystem::path& file) {
    std::ifstream in(file);
    int n = 0;
    in >> n;
    auto image = [](const std::string& name, int k) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%04d", k);
        return name + "/" + name + "_" + buf + ".jpg";
    };
    std::vector<Pair> pairs;
    for (int i = 0; i < n; ++i) {
        std::string name;
        int k1, k2;
        in >> name >> k1 >> k2;
        pairs.push_back({image(name, k1), image(name, k2), true});
    }
    for (int i = 0; i < n; ++i) {
        std::string n1, n2;
        int k1, k2;
        in >> n1 >> k1 >> n2 >> k2;
        pairs.push_back({image(n1, k1), image(n2, k2), false});
    }
    return pairs;
}

}  // namespace

namespace {

// A detector's run over dlib's boxed testing.xml (at `on_boxes`) and over the
// 56 clean negatives (at `on_negatives`).
struct DlibSetsScore {
    std::size_t faces = 0, found = 0, unmatched = 0;  // testing.xml
    std::size_t negatives = 0, false_detections = 0;  // negatives/clean
};

DlibSetsScore score_on_dlib_sets(const AnalyzeOptions& on_boxes, const AnalyzeOptions& on_negatives) {
    Analyzer analyzer(test_model_set(), on_boxes);
    const auto truth = read_imglab(data_dir() / "dlib_faces" / "testing.xml");
    REQUIRE(truth.size() == 5);
    DlibSetsScore s;
    for (const auto& [file, boxes] : truth) {
        const auto r = analyze_file(analyzer, data_dir() / "dlib_faces" / file);
        std::vector<bool> used(r.faces.size(), false);
        for (const auto& t : boxes) {
            ++s.faces;
            for (std::size_t i = 0; i < r.faces.size(); ++i) {
                if (!used[i] && iou(r.faces[i].bbox, t) >= 0.5) {
                    used[i] = true;
                    ++s.found;
                    break;
                }
            }
        }
        s.unmatched += static_cast<std::size_t>(std::count(used.begin(), used.end(), false));
    }
    // Clean negatives: landscapes, objects, animals — no human face at all.
    Analyzer plain(test_model_set(), on_negatives);
    for (const auto& e : std::filesystem::directory_iterator(data_dir() / "negatives" / "clean")) {
        if (!has_image_extension(e.path())) continue;
        ++s.negatives;
        s.false_detections += analyze_file(plain, e.path()).faces.size();
    }
    INFO("found " << s.found << "/" << s.faces << ", unmatched detections " << s.unmatched << "; " << s.false_detections
                  << " detections on " << s.negatives << " clean negatives");
    CHECK(s.faces == 25);
    CHECK(s.negatives == 56);
    return s;
}

}  // namespace

TEST_CASE("HOG detection recall on dlib_faces/testing.xml and no faces on clean negatives", "[analyzer][dataset]") {
    REQUIRE_MODELS();
    AnalyzeOptions options;
    options.detector = "hog";
    options.upsample = 1;
    options.min_face = 20;
    options.descriptors = false;
    AnalyzeOptions defaults;  // HOG at its defaults
    defaults.detector = "hog";
    defaults.descriptors = false;
    const DlibSetsScore s = score_on_dlib_sets(options, defaults);
    CHECK(s.found == 25);            // measured: 25/25
    CHECK(s.unmatched == 0);         // measured: 0
    CHECK(s.false_detections == 0);  // measured: 0
}

TEST_CASE("YuNet: every testing.xml face, 5 landmarks; few detections on clean negatives",
          "[analyzer][yunet][dataset]") {
    REQUIRE_MODELS();
    AnalyzeOptions options;
    options.detector = "yunet";
    options.min_face = 20;
    options.descriptors = false;
    AnalyzeOptions defaults;  // the default pipeline: YuNet, --min-face 10
    REQUIRE(defaults.detector == "yunet");
    defaults.descriptors = false;
    const DlibSetsScore s = score_on_dlib_sets(options, defaults);
    CHECK(s.found == 25);     // measured: 25/25
    CHECK(s.unmatched <= 1);  // measured: 1 (a face dlib's set does not box)
    // Issue 10 asks for at most 1. The mirror check drops the galaxy and the
    // motorcycle's headlights (0.59-0.70); what is left is a coin-operated
    // binocular viewer scoring 0.81, above the check.
    CHECK(s.false_detections <= 1);  // measured: 1 at the default --min-face 10

    // Its points are the face's: inside the box, eyes above the mouth.
    Analyzer analyzer(test_model_set(), options);
    const auto r = analyze_file(analyzer, data_dir() / "face_recognition_examples" / "examples" / "obama.jpg");
    REQUIRE(r.faces.size() == 1);
    const Face& f = r.faces[0];
    REQUIRE(f.landmarks.size() == 5);
    for (const auto& p : f.landmarks) {
        CHECK(p.x >= f.bbox.x);
        CHECK(p.x <= f.bbox.x + f.bbox.width);
        CHECK(p.y >= f.bbox.y);
        CHECK(p.y <= f.bbox.y + f.bbox.height);
    }
    CHECK(f.landmarks[0].x < f.landmarks[1].x);  // the person's right eye is on the image's left
    CHECK(f.landmarks[0].y < f.landmarks[3].y);
    CHECK(f.confidence >= 0.55);
    CHECK(analyzer.versions().embedder.size() > 9);
    CHECK(analyzer.versions().embedder.substr(analyzer.versions().embedder.size() - 9) == "+5pt+flip");

    // A portrait before a painted lake: the 0.4x second pass scores two patches
    // of the painting 0.64 and 0.69; mirrored, they score under 0.4.
    Analyzer at_defaults(test_model_set(), defaults);
    const auto biden = analyze_file(at_defaults, data_dir() / "face_recognition_examples" / "examples" /
                                                     "knn_examples" / "train" / "biden" / "biden2.jpg");
    CHECK(biden.faces.size() == 1);
}

TEST_CASE("YuNet's mirror check: face-like objects dropped, uncertain real faces kept", "[analyzer][yunet]") {
    REQUIRE_MODELS();
    AnalyzeOptions options;  // the default pipeline
    options.descriptors = false;
    options.gender = false;
    Analyzer analyzer(test_model_set(), options);

    // A galaxy and a motorcycle's headlight (both photos of a stereo pair) score
    // 0.59-0.70 and look like faces to YuNet at every scale, but not mirrored.
    const auto negatives = data_dir() / "negatives" / "clean";
    for (const char* name :
         {"skimage_hubble_deep_field.jpg", "skimage_motorcycle_left.jpg", "skimage_motorcycle_right.jpg"}) {
        INFO(name);
        CHECK(analyze_file(analyzer, negatives / name).faces.empty());
    }

    // Real faces under the check's 0.71 (main pass) and 0.7 (second pass) score
    // about the same mirrored, and stay.
    const auto wider = data_dir() / "wider-dev" / "images";
    const auto found = [&](const char* name, const Box& truth) -> std::optional<Face> {
        for (const auto& f : analyze_file(analyzer, wider / name).faces)
            if (iou(f.bbox, truth) >= 0.5) return f;
        return std::nullopt;
    };
    // A 29x61 px face in a crowd, main pass: measured 0.564.
    const auto small = found("17_Ceremony_Ceremony_17_211.jpg", {135, 203, 29, 61});
    REQUIRE(small);
    CHECK(small->confidence < 0.71);
    // A 84x150 px face only the 0.4x second pass finds: measured 0.641.
    const auto large = found("13_Interview_Interview_On_Location_13_394.jpg", {262, 102, 84, 150});
    REQUIRE(large);
    CHECK(large->confidence < 0.7);
}

TEST_CASE("Known detections and reference distances on face_recognition examples", "[analyzer][dataset]") {
    REQUIRE_MODELS();
    // face_recognition's settings: HOG, one pyramid_up, no downscaling.
    AnalyzeOptions options;
    options.detector = "hog";
    options.upsample = 1;
    options.max_side = 4096;
    Analyzer analyzer(test_model_set(), options);
    const auto dir = data_dir() / "face_recognition_examples" / "tests" / "test_images";

    // face_recognition's own test: HOG finds exactly one face at
    // (top, right, bottom, left) = (142, 617, 409, 349).
    const auto obama = analyze_file(analyzer, dir / "obama.jpg");
    REQUIRE(obama.faces.size() == 1);
    const Box b = obama.faces[0].bbox;
    CHECK(std::abs(b.y - 142) <= 4);
    CHECK(std::abs(b.x - 349) <= 4);
    CHECK(std::abs(b.x + b.width - 617) <= 4);
    CHECK(std::abs(b.y + b.height - 409) <= 4);
    CHECK(obama.faces[0].landmarks.size() >= 5);
    CHECK(obama.faces[0].confidence > 0.5);
    REQUIRE(obama.faces[0].has_descriptor);

    // RGBA input
    const auto rgba = analyze_file(analyzer, dir / "32bit.png");
    REQUIRE(rgba.faces.size() == 1);
    CHECK(std::abs(rgba.faces[0].bbox.y - 290) <= 4);
    CHECK(std::abs(rgba.faces[0].bbox.y + rgba.faces[0].bbox.height - 558) <= 4);

    auto desc = [&](const char* name) {
        const auto r = analyze_file(analyzer, dir / name);
        REQUIRE(r.faces.size() == 1);
        return r.faces[0].descriptor;
    };
    const auto o1 = obama.faces[0].descriptor, o2 = desc("obama2.jpg"), o3 = desc("obama3.jpg"), bi = desc("biden.jpg");
    CHECK(descriptor_distance(o1, o2) < 0.6f);
    CHECK(descriptor_distance(o1, o3) < 0.6f);
    CHECK(descriptor_distance(o1, bi) > 0.6f);
    CHECK(descriptor_distance(o2, bi) > 0.6f);

    // Same-person pairs in knn_examples/train are under 0.6.
    const auto train = data_dir() / "face_recognition_examples" / "examples" / "knn_examples" / "train";
    for (const char* person : {"biden", "obama", "kit_harington", "rose_leslie"}) {
        std::vector<std::array<float, 128>> ds;
        for (const auto& e : std::filesystem::directory_iterator(train / person)) {
            const auto r = analyze_file(analyzer, e.path());
            REQUIRE(!r.faces.empty());
            ds.push_back(central_face(r)->descriptor);
        }
        REQUIRE(ds.size() == 2);
        INFO(person << " distance " << descriptor_distance(ds[0], ds[1]));
        CHECK(descriptor_distance(ds[0], ds[1]) < 0.6f);
    }
}

TEST_CASE("Converted ResNet agrees with face-api.js's own descriptors", "[analyzer]") {
    REQUIRE_MODELS();
    Analyzer analyzer(test_model_set(), AnalyzeOptions{});
    const auto base = data_dir() / "faceapi_bbt" / "test";
    auto reference = [&](const char* json) {
        std::ifstream in(base / "data" / json);
        nlohmann::json j;
        in >> j;
        std::array<float, 128> d{};
        for (std::size_t i = 0; i < 128; ++i) d[i] = j.at(i).get<float>();
        return d;
    };
    // face-api.js aligns with its own 68-point net, we with dlib's: the same
    // person's descriptors must still be near, and far from the other person.
    const auto f1 = analyze_file(analyzer, base / "images" / "face1.png");
    const auto f2 = analyze_file(analyzer, base / "images" / "face2.png");
    REQUIRE(f1.faces.size() == 1);
    REQUIRE(f2.faces.size() == 1);
    const auto r1 = reference("faceDescriptor1.json"), r2 = reference("faceDescriptor2.json");
    const float d11 = descriptor_distance(f1.faces[0].descriptor, r1);
    const float d22 = descriptor_distance(f2.faces[0].descriptor, r2);
    const float d12 = descriptor_distance(f1.faces[0].descriptor, r2);
    INFO("same image vs face-api: " << d11 << ", " << d22 << "; cross: " << d12);
    CHECK(d11 < 0.3f);
    CHECK(d22 < 0.3f);
    CHECK(d12 > 0.6f);
}

namespace {

// LFW View 1 verification with the pipeline of `options`: the central face of
// each photo, the threshold chosen on DevTrain, the accuracy on DevTest. A pair
// with an undetected face counts as a wrong answer.
struct LfwView1 {
    std::size_t photos = 0, missing = 0;
    float threshold = 0;
    double train_accuracy = 0, test_accuracy = 0, test_accuracy_at_06 = 0;
};

// With `flip_average`, a photo's descriptor is the mean of its chip's and its
// mirror image's (what the ResNet computes anyway when a head reads features).
// Picks the threshold on DevTrain and measures DevTest with it (and at 0.6).
LfwView1 score(LfwView1 out, const std::map<std::string, std::array<float, 128>>& descs, const std::vector<Pair>& train,
               const std::vector<Pair>& test) {
    auto distance = [&](const Pair& p) {
        auto a = descs.find(p.a), b = descs.find(p.b);
        if (a == descs.end() || b == descs.end()) return p.same ? 10.0f : -1.0f;
        return descriptor_distance(a->second, b->second);
    };
    auto accuracy = [&](const std::vector<Pair>& pairs, float threshold) {
        std::size_t right = 0;
        for (const auto& p : pairs) right += ((distance(p) < threshold) == p.same) ? 1 : 0;
        return static_cast<double>(right) / static_cast<double>(pairs.size());
    };
    out.threshold = 0.6f;
    for (float t = 0.30f; t <= 0.80f; t += 0.005f) {
        const double acc = accuracy(train, t);
        if (acc > out.train_accuracy) out.train_accuracy = acc, out.threshold = t;
    }
    out.test_accuracy = accuracy(test, out.threshold);
    out.test_accuracy_at_06 = accuracy(test, 0.6f);
    return out;
}

// `shared`: the default pipeline's descriptors from lfw_descriptors() (options
// and flip_average must then be the defaults).
LfwView1 lfw_view1(AnalyzeOptions options, bool flip_average = false, bool shared = false) {
    const auto lfw = data_dir() / "lfw-dev";
    const auto train = read_pairs(lfw / "pairsDevTrain.txt");
    const auto test = read_pairs(lfw / "pairsDevTest.txt");
    REQUIRE(train.size() == 2200);
    REQUIRE(test.size() == 1000);

    std::set<std::string> names;
    for (const auto* list : {&train, &test})
        for (const auto& p : *list) names.insert(p.a), names.insert(p.b);
    const std::vector<std::string> files(names.begin(), names.end());

    std::map<std::string, std::array<float, 128>> descs;
    LfwView1 out;
    out.photos = files.size();
    if (shared) {
        // The default pipeline's descriptors (gender off, the central face):
        // those the gallery's LFW tests use, computed once per build tree
        // (lfw_descriptors.hpp) instead of a second pass over ~3,500 photos.
        std::map<std::string, const LfwPhoto*> by_file;
        for (const auto& p : lfw_descriptors()) by_file[p.file] = &p;
        for (const auto& f : files) {
            const auto it = by_file.find(f);
            REQUIRE(it != by_file.end());
            if (it->second->descriptor)
                descs[f] = *it->second->descriptor;
            else
                ++out.missing;
        }
        return score(out, descs, train, test);
    }
    options.gender = false;
    options.features = flip_average;
    const Analyzer prototype(test_model_set(), options);
    ordered_parallel<std::optional<std::array<float, 128>>>(
        files.size(), 2,
        [&] {
            return [&, analyzer = Analyzer(prototype)](std::size_t i) mutable {
                const auto r = analyze_file(analyzer, lfw / "lfw-deepfunneled" / files[i]);
                const Face* f = central_face(r);
                if (!f) return std::optional<std::array<float, 128>>();
                std::array<float, 128> d = f->descriptor;
                if (flip_average) std::copy_n(f->features.begin(), d.size(), d.begin());  // features start with it
                return std::optional<std::array<float, 128>>(d);
            };
        },
        [&](std::size_t i, std::optional<std::array<float, 128>>&& d) {
            if (d)
                descs[files[i]] = *d;
            else
                ++out.missing;
        });
    return score(out, descs, train, test);
}

std::string describe(const LfwView1& v) {
    std::ostringstream s;
    s << v.missing << " of " << v.photos << " photos without a face; threshold " << v.threshold
      << " (DevTrain accuracy " << v.train_accuracy << "), DevTest accuracy " << v.test_accuracy
      << ", at 0.6: " << v.test_accuracy_at_06;
    return s.str();
}

}  // namespace

TEST_CASE("LFW View 1: verification accuracy of the converted descriptor network", "[analyzer][.slow]") {
    REQUIRE_MODELS();
    const LfwView1 v = lfw_view1(AnalyzeOptions{}, false, true);
    INFO(describe(v));
    CHECK(v.missing <= 5);  // measured: 0 with YuNet (HOG + 68: 30, profile, occluded or tiny faces)
    CHECK(v.threshold > 0.5f);
    CHECK(v.threshold < 0.7f);
    CHECK(v.test_accuracy >= 0.98);
    WARN("LFW DevTest: " << describe(v));
}

// The alignment measurement of issue 10 (docs/benchmarks.md): each detector
// with 68-point alignment, and YuNet with its own 5 points.
TEST_CASE("bench: LFW View 1 by detector and alignment", "[.bench][analyzer]") {
    REQUIRE_MODELS();
    for (const auto& [detector, landmarks] :
         std::vector<std::pair<std::string, std::string>>{{"hog", "68"}, {"yunet", "68"}, {"yunet", "5"}}) {
        AnalyzeOptions options;
        options.detector = detector;
        options.landmarks = landmarks;
        WARN(detector << " + " << landmarks << " points: " << describe(lfw_view1(options)));
    }
    WARN("yunet + 5 points, flip-averaged descriptors: " << describe(lfw_view1(AnalyzeOptions{}, true)));
}

TEST_CASE("Gender on labelled faces", "[analyzer][dataset]") {
    REQUIRE_MODELS();
    Analyzer analyzer(test_model_set(), AnalyzeOptions{});
    if (!test_model_set().gender) FAIL("gender model not installed");
    // The Big Bang Theory crops: 5 per character, 150x150 grayscale.
    const std::map<std::string, std::string> truth = {{"amy", "female"},   {"bernadette", "female"}, {"howard", "male"},
                                                      {"leonard", "male"}, {"penny", "female"},      {"raj", "male"},
                                                      {"sheldon", "male"}, {"stuart", "male"}};
    std::size_t right = 0, total = 0;
    for (const auto& [who, gender] : truth) {
        for (int k = 1; k <= 5; ++k) {
            const auto r = analyze_file(analyzer, data_dir() / "faceapi_bbt" / "examples" / "images" / who /
                                                      (who + std::to_string(k) + ".png"));
            if (r.faces.empty()) continue;
            ++total;
            REQUIRE(r.faces[0].gender);
            CHECK(*r.faces[0].gender_confidence >= 0.5);
            CHECK(*r.faces[0].gender_confidence <= 1.0);
            right += *r.faces[0].gender == gender ? 1 : 0;
        }
    }
    INFO("gender right " << right << " of " << total);
    CHECK(total >= 35);
    CHECK(static_cast<double>(right) / total >= 0.85);
}
