// tests/test_cli_analyze.cpp — `faceq analyze` end to end: the real binary on
// real photos (../shared/data) with the real models (test_home()), checking
// the records on stdout, the one-line errors on stderr and the exit codes.
// Broken inputs are made in a TempDir. Each run loads the models (~1 s), so
// the cases share runs where they can and keep to a few small images.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "json_lines.hpp"
#include "test_models.hpp"
#include "test_png.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

std::string photo(const std::string& relative) { return (data_dir() / relative).string(); }

const std::string obama_jpg = "face_recognition_examples/tests/test_images/obama.jpg";        // 910x1137, one face
const std::string lfw_jpg = "lfw-dev/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0001.jpg";  // 250x250
const std::string group_jpg = "dlib_faces/2008_002470.jpg";                                   // several faces
const std::string no_face_jpg = "negatives/clean/dlib_dog.jpg";
const std::string bbt_images = "faceapi_bbt/examples/images";  // 12 photos + 8 subfolders of face crops

// `faceq --home <test home> analyze ARGS...`
CommandResult analyze(const std::vector<std::string>& args, const std::string& stdin_text = {},
                      std::chrono::milliseconds timeout = std::chrono::minutes(2)) {
    std::vector<std::string> argv{"--home", test_home().root.string(), "analyze"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_faceq(argv, stdin_text, {}, timeout);
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

double iou(const json& a, const json& b) {
    const int ax = a["x"], ay = a["y"], aw = a["width"], ah = a["height"];
    const int bx = b["x"], by = b["y"], bw = b["width"], bh = b["height"];
    const int x0 = std::max(ax, bx), y0 = std::max(ay, by);
    const int x1 = std::min(ax + aw, bx + bw), y1 = std::min(ay + ah, by + bh);
    const double inter = std::max(0, x1 - x0) * static_cast<double>(std::max(0, y1 - y0));
    const double uni = static_cast<double>(aw) * ah + static_cast<double>(bw) * bh - inter;
    return uni > 0 ? inter / uni : 0.0;
}

// One analysed face of a width x height image: box, landmarks (5 from YuNet,
// the default; 68 from dlib's model), scores in range.
void check_face(const json& face, int width, int height, std::size_t points = 5) {
    INFO("face: " << face.dump());
    const auto& box = face.at("bbox");
    REQUIRE(box.at("x").is_number_integer());
    REQUIRE(box.at("y").is_number_integer());
    const int x = box["x"], y = box["y"], w = box.at("width"), h = box.at("height");
    CHECK(w > 0);
    CHECK(h > 0);
    CHECK(x >= 0);
    CHECK(y >= 0);
    CHECK(x + w <= width);
    CHECK(y + h <= height);
    const double confidence = face.at("confidence");
    CHECK(confidence > 0.5);
    CHECK(confidence <= 1.0);
    const auto& landmarks = face.at("landmarks");
    REQUIRE(landmarks.size() == points);
    for (const auto& p : landmarks) {
        REQUIRE(p.size() == 2);
        CHECK(p[0].get<int>() >= 0);
        CHECK(p[0].get<int>() < width);
        CHECK(p[1].get<int>() >= 0);
        CHECK(p[1].get<int>() < height);
    }
    CHECK(face.at("age").is_null());
}

// RFC 4180 fields of one line (no line breaks inside fields in these tests).
std::vector<std::string> csv_fields(const std::string& line) {
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                fields.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                fields.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            fields.emplace_back();
        } else {
            fields.back() += c;
        }
    }
    return fields;
}

bool is_integer(const std::string& s) { return std::regex_match(s, std::regex("-?[0-9]+")); }

// Mean absolute difference (all channels) between two same-sized images
// inside `rect`.
double mean_abs_diff(const cv::Mat& a, const cv::Mat& b, const cv::Rect& rect) {
    cv::Mat diff;
    cv::absdiff(a(rect), b(rect), diff);
    const cv::Scalar m = cv::mean(diff);
    return (m[0] + m[1] + m[2]) / 3.0;
}

}  // namespace

TEST_CASE("analyze: one record per image, in input order, with faces, landmarks, gender and models", "[cli]") {
    REQUIRE_MODELS();
    const auto r = analyze({photo(obama_jpg), photo(lfw_jpg)});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 2);

    struct Expected {
        std::string file;
        int width, height;
    };
    const Expected expected[] = {{photo(obama_jpg), 910, 1137}, {photo(lfw_jpg), 250, 250}};
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& rec = records[i];
        INFO("record: " << rec.dump().substr(0, 300));
        CHECK(rec.at("file") == expected[i].file);
        CHECK(rec.at("width") == expected[i].width);
        CHECK(rec.at("height") == expected[i].height);
        CHECK_FALSE(rec.contains("error"));
        CHECK_FALSE(rec.contains("drawn"));
        REQUIRE(rec.at("faces").size() == 1);
        const auto& face = rec["faces"][0];
        check_face(face, expected[i].width, expected[i].height);
        CHECK(face.at("gender") == "male");
        const double gender_confidence = face.at("gender_confidence");
        CHECK(gender_confidence >= 0.5);
        CHECK(gender_confidence <= 1.0);
        CHECK_FALSE(face.contains("embedding"));
        for (const char* model : {"detector", "landmarks", "embedder", "gender"}) {
            INFO("models." << model);
            REQUIRE(rec.at("models").at(model).is_string());
            CHECK_FALSE(rec["models"][model].get<std::string>().empty());
        }
        CHECK(rec.at("elapsed_ms").get<double>() > 0);
        // The default pipeline: YuNet's boxes and 5 points, chips aligned by them.
        CHECK(rec["models"]["detector"].get<std::string>().rfind("face_detection_yunet_2023mar@", 0) == 0);
        CHECK(rec["models"]["landmarks"] == rec["models"]["detector"]);
        const std::string embedder = rec["models"]["embedder"];
        CHECK(embedder.substr(embedder.size() - 9) == "+5pt+flip");
    }
    // The LFW crop is centred on its subject.
    const auto& box = records[1]["faces"][0]["bbox"];
    const double cx = box["x"].get<int>() + box["width"].get<int>() / 2.0;
    const double cy = box["y"].get<int>() + box["height"].get<int>() / 2.0;
    CHECK(std::abs(cx - 125) < 30);
    CHECK(std::abs(cy - 125) < 30);
}

TEST_CASE("analyze --embeddings adds each face's 128-D descriptor", "[cli]") {
    REQUIRE_MODELS();
    const auto r = analyze({"--embeddings", photo(lfw_jpg)});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 1);
    REQUIRE(records[0].at("faces").size() == 1);
    const auto& embedding = records[0]["faces"][0].at("embedding");
    REQUIRE(embedding.is_array());
    REQUIRE(embedding.size() == 128);
    double sum_sq = 0;
    for (const auto& v : embedding) {
        REQUIRE(v.is_number());
        REQUIRE(std::isfinite(v.get<double>()));
        sum_sq += v.get<double>() * v.get<double>();
    }
    // dlib's ResNet descriptors are not unit vectors: face-api.js's reference
    // descriptors (faceapi_bbt/test/data) have norms 1.37..1.56, ours 1.39..1.59.
    const double norm = std::sqrt(sum_sq);
    CHECK(norm > 1.0);
    CHECK(norm < 2.0);
}

TEST_CASE("analyze --jobs 2 delivers records in input order", "[cli]") {
    REQUIRE_MODELS();
    // One photo each of 24 people, fed through stdin in a scrambled order
    // (neither sorted nor reverse-sorted), with one photo given twice.
    std::vector<std::string> people;
    for (const auto& e : std::filesystem::directory_iterator(data_dir() / "lfw-dev" / "lfw-deepfunneled"))
        if (e.is_directory()) people.push_back(e.path().string());
    std::sort(people.begin(), people.end());
    REQUIRE(people.size() >= 24);
    std::vector<std::string> sorted;
    for (std::size_t i = 0; i < 24; ++i) {
        std::vector<std::string> files;
        for (const auto& e : std::filesystem::directory_iterator(people[i])) files.push_back(e.path().string());
        REQUIRE_FALSE(files.empty());
        sorted.push_back(*std::min_element(files.begin(), files.end()));
    }
    std::vector<std::string> inputs;
    for (std::size_t i = 0; i < sorted.size(); ++i) inputs.push_back(sorted[(i * 7 + 5) % sorted.size()]);
    const std::string repeated = inputs[3];
    inputs.insert(inputs.begin() + 10, repeated);
    std::string stdin_text;
    for (const auto& p : inputs) stdin_text += p + "\n";

    const auto r = analyze({"--jobs", "2", "-"}, stdin_text);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == inputs.size());
    std::size_t with_faces = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        INFO("record " << i);
        CHECK(records[i].at("file") == inputs[i]);
        CHECK(records[i].at("width") == 250);
        CHECK(records[i].at("height") == 250);
        if (!records[i].at("faces").empty()) ++with_faces;
    }
    CHECK(with_faces >= inputs.size() - 2);
    // The same photo twice gives the same faces.
    CHECK(records[10]["faces"] == records[3]["faces"]);
}

TEST_CASE("analyze - reads one path per line from stdin, between the other arguments", "[cli]") {
    REQUIRE_MODELS();
    const std::string a = photo("lfw-dev/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0002.jpg");
    const std::string b = photo("lfw-dev/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0003.jpg");
    // CRLF line ends, a blank line and no final newline are all fine.
    const auto r = analyze({photo(lfw_jpg), "-", photo(obama_jpg)}, b + "\r\n\n" + a);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 4);
    CHECK(records[0].at("file") == photo(lfw_jpg));
    CHECK(records[1].at("file") == b);
    CHECK(records[2].at("file") == a);
    CHECK(records[3].at("file") == photo(obama_jpg));
    for (const auto& rec : records) CHECK(rec.at("faces").size() == 1);
}

TEST_CASE("analyze takes a folder's own images; -r descends into subfolders", "[cli]") {
    REQUIRE_MODELS();
    const std::filesystem::path dir = data_dir() / bbt_images;
    std::vector<std::string> own, nested;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        const auto ext = lower(e.path().extension().string());
        if (!e.is_regular_file() || (ext != ".jpg" && ext != ".png")) continue;
        (e.path().parent_path() == dir ? own : nested).push_back(e.path().string());
    }
    std::vector<std::string> all = own;
    all.insert(all.end(), nested.begin(), nested.end());
    std::sort(own.begin(), own.end());
    std::sort(all.begin(), all.end());
    REQUIRE(own.size() >= 5);
    REQUIRE(nested.size() >= 20);

    // Only the file list matters here: a tiny detector input and a huge
    // minimum face keep the runs fast.
    const std::vector<std::string> fast{"--jobs", "2", "--max-side", "64", "--min-face", "2000"};
    auto files_of = [](const CommandResult& r) {
        std::vector<std::string> files;
        for (const auto& rec : json_lines(r.out)) {
            CHECK_FALSE(rec.contains("error"));
            files.push_back(rec.at("file"));
        }
        return files;
    };

    auto args = fast;
    args.push_back(dir.string());
    const auto flat = analyze(args);
    INFO("stderr: " << flat.err);
    REQUIRE(flat.exit_code == 0);
    CHECK(files_of(flat) == own);

    args.insert(args.begin(), "-r");
    const auto deep = analyze(args);
    INFO("stderr: " << deep.err);
    REQUIRE(deep.exit_code == 0);
    const auto found = files_of(deep);
    CHECK(found == all);
    CHECK(std::count(found.begin(), found.end(), (dir / "raj" / "raj1.png").string()) == 1);
}

TEST_CASE("analyze reports each bad input on stderr and as an error record, and goes on", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    std::filesystem::create_directories(tmp / "no_images");
    write_text(tmp / "no_images" / "notes.txt", "not a photo\n");
    write_text(tmp / "empty.jpg", "");
    write_text(tmp / "x.jpg", "this is a text file, not a JPEG\n");
    const auto jpeg = read_bytes(photo(obama_jpg));
    write_bytes(tmp / "truncated.jpg", jpeg.data(), jpeg.size() / 2);
    write_bytes(tmp / "zero.png", png_declaring(0, 0));
    const auto bomb = png_declaring(50000, 50000);
    REQUIRE(bomb.size() < 100);
    write_bytes(tmp / "bomb.png", bomb);

    struct Bad {
        std::string path;
        std::string kind;
    };
    const std::vector<Bad> bad{
        {(tmp / "missing.jpg").string(), "not_found"},       {(tmp / "no_images").string(), "invalid_input"},
        {(tmp / "empty.jpg").string(), "invalid_input"},     {(tmp / "x.jpg").string(), "invalid_input"},
        {(tmp / "truncated.jpg").string(), "invalid_input"}, {(tmp / "zero.png").string(), "invalid_input"},
        {(tmp / "bomb.png").string(), "too_large"},
    };
    // Each bad input is followed by a good one, which must still be analysed.
    std::vector<std::string> args{"--jobs", "2"};
    for (const auto& b : bad) {
        args.push_back(b.path);
        args.push_back(photo(lfw_jpg));
    }
    const auto r = analyze(args);
    INFO("stderr: " << r.err);
    CHECK_FALSE(r.timed_out);
    REQUIRE(r.exit_code == 1);  // exactly 1: a partly failed batch, not a signal

    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 2 * bad.size());
    const auto err_lines = split_lines(r.err);
    REQUIRE(err_lines.size() == bad.size());
    for (std::size_t i = 0; i < bad.size(); ++i) {
        INFO("bad input " << bad[i].path);
        const auto& rec = records[2 * i];
        CHECK(rec.size() == 3);  // file, error and the record's type: nothing of an analysis
        CHECK(rec.at("type") == "error");
        CHECK(rec.at("file") == bad[i].path);
        CHECK(rec.at("error").at("kind") == bad[i].kind);
        const std::string message = rec["error"].at("message");
        CHECK(message.find(bad[i].path) != std::string::npos);
        CHECK(err_lines[i] == "faceq: error: " + message);

        const auto& good = records[2 * i + 1];
        CHECK(good.at("file") == photo(lfw_jpg));
        CHECK_FALSE(good.contains("error"));
        CHECK(good.at("faces").size() == 1);
    }
}

TEST_CASE("analyze refuses a decompression bomb from its header, fast", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    const auto bomb = (tmp / "bomb.png").string();
    write_bytes(bomb, png_declaring(50000, 50000));

    using clock = std::chrono::steady_clock;
    auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
    // Startup (loading the models) is the baseline: a missing file costs nothing more.
    auto t = clock::now();
    const auto baseline = analyze({(tmp / "missing.png").string()});
    const double baseline_s = seconds_since(t);
    REQUIRE(baseline.exit_code == 1);

    // Over our default limit (100 MP); with ours raised, OpenCV's own
    // (2^30 pixels) must still stop it before decoding 7.5 GB.
    for (const std::string max_pixels : {"100000000", "4000000000"}) {
        t = clock::now();
        const auto r = analyze({"--max-pixels", max_pixels, bomb}, {}, std::chrono::seconds(60));
        const double took = seconds_since(t);
        INFO("--max-pixels " << max_pixels << ": took " << took << " s (baseline " << baseline_s
                             << " s), stderr: " << r.err);
        CHECK_FALSE(r.timed_out);
        REQUIRE(r.exit_code == 1);
        CHECK(took < baseline_s + 5.0);  // a hang, not load noise
        const auto records = json_lines(r.out);
        REQUIRE(records.size() == 1);
        CHECK(records[0].at("file") == bomb);
        CHECK(records[0].at("error").at("kind") == "too_large");
        CHECK(records[0]["error"].at("message").get<std::string>().find("50000x50000") != std::string::npos);
    }
}

TEST_CASE("analyze --format csv: a header, one row per face, empty face columns, errors last", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    const auto missing = (tmp / "no,such \"photo\".jpg").string();  // needs quoting
    const auto r = analyze({"--format", "csv", "--jobs", "2", photo(group_jpg), photo(no_face_jpg), missing});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 1);
    const auto lines = split_lines(r.out);
    REQUIRE(lines.size() >= 5);
    const auto header = csv_fields(lines[0]);
    REQUIRE(header.size() == 13);
    CHECK(header[0] == "file");
    CHECK(header[4] == "x");
    CHECK(header[12] == "error");

    std::vector<std::vector<std::string>> rows;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        rows.push_back(csv_fields(lines[i]));
        INFO("row: " << lines[i]);
        REQUIRE(rows.back().size() == header.size());
    }
    // The group photo: one row per face, numbered from 0.
    std::size_t faces = 0;
    while (faces < rows.size() && rows[faces][0] == photo(group_jpg)) {
        const auto& row = rows[faces];
        INFO("row: " << lines[faces + 1]);
        CHECK(row[1] == "500");
        CHECK(row[2] == "332");
        CHECK(row[3] == std::to_string(faces));
        for (int c = 4; c < 8; ++c) CHECK(is_integer(row[static_cast<std::size_t>(c)]));
        CHECK(std::stoi(row[4]) + std::stoi(row[6]) <= 500);
        CHECK(std::stoi(row[5]) + std::stoi(row[7]) <= 332);
        const double confidence = std::stod(row[8]);
        CHECK(confidence > 0.5);
        CHECK(confidence <= 1.0);
        CHECK((row[9] == "male" || row[9] == "female"));
        CHECK(row[11].empty());  // age
        CHECK(row[12].empty());  // error
        ++faces;
    }
    CHECK(faces >= 3);
    REQUIRE(rows.size() == faces + 2);

    // No face: one row with the size and the face columns empty.
    const auto& none = rows[faces];
    CHECK(none[0] == photo(no_face_jpg));
    CHECK(is_integer(none[1]));
    CHECK(is_integer(none[2]));
    for (std::size_t c = 3; c < 13; ++c) CHECK(none[c].empty());

    // An error: everything empty but the file and the message.
    const auto& error = rows[faces + 1];
    CHECK(error[0] == missing);
    for (std::size_t c = 1; c < 12; ++c) CHECK(error[c].empty());
    CHECK(error[12].find("no such file") != std::string::npos);
    CHECK(error[12].find(missing) != std::string::npos);

    // The same photos as JSON: one array, one element per input, same faces.
    const auto j = analyze({"--format", "json", "--jobs", "2", photo(group_jpg), photo(no_face_jpg), missing});
    REQUIRE(j.exit_code == 1);
    REQUIRE(json::accept(j.out));
    const auto array = json::parse(j.out);
    REQUIRE(array.is_array());
    REQUIRE(array.size() == 3);
    CHECK(array[0].at("file") == photo(group_jpg));
    CHECK(array[0].at("faces").size() == faces);
    CHECK(array[1].at("faces").empty());
    CHECK(array[2].at("error").at("kind") == "not_found");
}

TEST_CASE("analyze reads a BMP and a WebP through OpenCV's imgcodecs, which the binary loads on demand", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    const cv::Mat original = cv::imread(photo(lfw_jpg), cv::IMREAD_COLOR);
    REQUIRE(cv::imwrite((tmp / "a.bmp").string(), original));
    REQUIRE(cv::imwrite((tmp / "b.webp").string(), original, {cv::IMWRITE_WEBP_QUALITY, 101}));
    const auto r = analyze({(tmp / "a.bmp").string(), (tmp / "b.webp").string()});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 2);
    for (const auto& rec : records) {
        CHECK(rec.at("width") == 250);
        CHECK(rec.at("faces").size() == 1);
    }
}

TEST_CASE("analyze --draw writes an annotated copy of each input", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    // Two inputs named obama.jpg, and one already named like the second's copy.
    std::filesystem::create_directories(tmp / "a");
    std::filesystem::create_directories(tmp / "b");
    std::filesystem::copy_file(photo(lfw_jpg), tmp / "a" / "obama.jpg");
    std::filesystem::copy_file(photo("lfw-dev/lfw-deepfunneled/Aaron_Peirsol/Aaron_Peirsol_0002.jpg"),
                               tmp / "b" / "obama_2.jpg");
    const std::vector<std::string> inputs{photo(obama_jpg), (tmp / "a" / "obama.jpg").string(),
                                          (tmp / "b" / "obama_2.jpg").string(),
                                          photo("faceapi_bbt/examples/images/raj/raj1.png")};
    const auto out_dir = tmp / "out";
    std::vector<std::string> args{"--jobs", "2", "--draw", out_dir.string()};
    args.insert(args.end(), inputs.begin(), inputs.end());
    const auto r = analyze(args);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == inputs.size());

    std::set<std::string> drawn;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const auto& rec = records[i];
        INFO("input " << inputs[i]);
        CHECK(rec.at("file") == inputs[i]);
        REQUIRE(rec.contains("drawn"));
        const std::filesystem::path path = rec["drawn"].get<std::string>();
        drawn.insert(path.string());
        CHECK(path.parent_path() == out_dir);
        CHECK(path.extension() == std::filesystem::path(inputs[i]).extension());
        REQUIRE(std::filesystem::is_regular_file(path));

        const cv::Mat original = cv::imread(inputs[i], cv::IMREAD_COLOR);
        const cv::Mat annotated = cv::imread(path.string(), cv::IMREAD_COLOR);
        REQUIRE_FALSE(original.empty());
        REQUIRE_FALSE(annotated.empty());
        CHECK(annotated.cols == original.cols);
        CHECK(annotated.rows == original.rows);
        CHECK(rec.at("width") == original.cols);
        CHECK(rec.at("height") == original.rows);
        REQUIRE(annotated.size() == original.size());

        // The box outline and the landmarks change the face region far more
        // than re-encoding does (JPEG at quality 92: ~0.7 on average here;
        // the drawing: 3.95 on obama_2.jpg's 1080p face, more on the others),
        // and the box's left edge is painted over.
        REQUIRE(rec.at("faces").size() == 1);
        const auto& box = rec["faces"][0]["bbox"];
        const cv::Rect face(box["x"].get<int>(), box["y"].get<int>(), box["width"].get<int>(),
                            box["height"].get<int>());
        const cv::Rect inside = face & cv::Rect(0, 0, original.cols, original.rows);
        CHECK(mean_abs_diff(original, annotated, inside) > 2.5);
        const cv::Rect left_edge(inside.x, inside.y + inside.height / 4, 1, inside.height / 2);
        CHECK(mean_abs_diff(original, annotated, left_edge) > 25.0);
    }
    CHECK(drawn.size() == inputs.size());
    CHECK(records[0]["drawn"] == (out_dir / "obama.jpg").string());
}

TEST_CASE("analyze --draw into the inputs' own folder never overwrites an input", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    const auto input = tmp / "face.jpg";
    std::filesystem::copy_file(photo(lfw_jpg), input);
    const auto before = read_bytes(input);
    const auto r = analyze({"--draw", tmp.path().string(), input.string()});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 1);
    const std::filesystem::path drawn = records[0].at("drawn").get<std::string>();
    CHECK(drawn != input);
    CHECK(std::filesystem::is_regular_file(drawn));
    CHECK(read_bytes(input) == before);
}

TEST_CASE("analyze usage errors exit 2", "[cli]") {
    REQUIRE_SHARED();
    TempDir empty_home;
    const std::vector<std::string> home{"--home", empty_home.path().string(), "analyze"};
    auto with_home = [&home](std::vector<std::string> args) {
        args.insert(args.begin(), home.begin(), home.end());
        return args;
    };
    const std::vector<std::vector<std::string>> cases{
        with_home({"--no-such-option", photo(lfw_jpg)}),
        with_home({"--detector", "foo", photo(lfw_jpg)}),
        with_home({"--format", "xml", photo(lfw_jpg)}),
        with_home({"--jobs", "0", photo(lfw_jpg)}),
        with_home({}),
    };
    for (const auto& args : cases) {
        const auto r = run_faceq(args);
        INFO("args: " << args.back() << " stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK_FALSE(r.err.empty());
    }
    // "-" with nothing on stdin: no inputs at all.
    const auto r = run_faceq(with_home({"-"}));
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("no input images") != std::string::npos);
}

TEST_CASE("analyze without models says how to get them", "[cli]") {
    REQUIRE_SHARED();
    TempDir empty_home;
    const auto r = run_faceq({"--home", empty_home.path().string(), "analyze", photo(lfw_jpg)});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    const auto lines = split_lines(r.err);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].rfind("faceq: error: ", 0) == 0);
    CHECK(lines[0].find("faceq download models") != std::string::npos);
}

TEST_CASE("analyze --detector cnn finds the face the HOG detector finds", "[cli]") {
    REQUIRE_MODELS();
    const auto hog = analyze({"--detector", "hog", photo(obama_jpg)});
    // The CNN is slow on big photos; at 320 px the face is still ~90 px, over
    // its 40 px window.
    const auto cnn = analyze({"--detector", "cnn", "--max-side", "320", photo(obama_jpg)});
    INFO("stderr: " << hog.err << cnn.err);
    REQUIRE(hog.exit_code == 0);
    REQUIRE(cnn.exit_code == 0);
    const auto h = json_lines(hog.out), c = json_lines(cnn.out);
    REQUIRE(h.size() == 1);
    REQUIRE(c.size() == 1);
    REQUIRE(h[0].at("faces").size() == 1);
    REQUIRE(c[0].at("faces").size() == 1);
    const auto& face = c[0]["faces"][0];
    check_face(face, 910, 1137, 68);
    CHECK(face.at("gender") == "male");
    CHECK(iou(face.at("bbox"), h[0]["faces"][0].at("bbox")) > 0.5);
    CHECK(c[0].at("models").at("detector") != h[0].at("models").at("detector"));
}

TEST_CASE("--version -v names the BLAS library", "[cli]") {
    const auto r = run_faceq({"--version", "-v"});
    INFO("stdout: " << r.out << " stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto lines = split_lines(r.out);
    REQUIRE_FALSE(lines.empty());
    CHECK(lines[0].rfind("faceq ", 0) == 0);
    const auto blas =
        std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("blas: ", 0) == 0; });
    REQUIRE(blas != lines.end());
    CHECK(lower(*blas).find("openblas") != std::string::npos);

    const auto plain = run_faceq({"--version"});
    REQUIRE(plain.exit_code == 0);
    CHECK(split_lines(plain.out).size() == 1);
    CHECK(plain.out.find("blas:") == std::string::npos);
}

namespace {

// A field of /proc/self/status in kB ("VmRSS", "VmHWM").
long status_kb(const std::string& field) {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    return -1;
}

}  // namespace

TEST_CASE("analyze: a JPEG whose header claims 9000x9000 is a corrupt image, quietly, in bounded memory", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    auto jpeg = read_bytes(photo(lfw_jpg));
    // The frame header (SOF0..SOF2) rewritten; the data is still 250x250's.
    std::size_t at = 2;
    while (at + 9 < jpeg.size() && !(jpeg[at + 1] >= 0xC0 && jpeg[at + 1] <= 0xC2))
        at += 2 + (std::size_t{jpeg[at + 2]} << 8 | jpeg[at + 3]);
    REQUIRE(at + 9 < jpeg.size());
    for (std::size_t field : {at + 5, at + 7}) {
        jpeg[field] = 9000 >> 8;
        jpeg[field + 1] = 9000 & 0xFF;
    }
    const auto lying = (tmp / "lying.jpg").string();
    write_bytes(lying, jpeg);

    const auto r = analyze({lying});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 1);
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 1);
    CHECK(records[0].at("error").at("kind") == "invalid_input");
    const std::string message = records[0]["error"].at("message");
    CHECK_THAT(message, Catch::Contains("lying.jpg") && Catch::Contains("corrupt"));
    CHECK(r.err == "faceq: error: " + message + "\n");  // libjpeg's own words never reach stderr raw

    // The peak resident set while decoding it, measured in this process
    // (a child's ru_maxrss would include this test binary's own pages): the
    // 9000x9000 frame would be 243 MB if its rows were written.
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5" << std::flush;  // resets VmHWM to the current RSS
    if (!clear) {
        WARN("cannot reset the peak RSS (/proc/self/clear_refs): memory not checked");
        return;
    }
    const long before = status_kb("VmRSS");
    CHECK_THROWS_AS(load_image_file(lying), faceq::Error);
    const long grew = status_kb("VmHWM") - before;
    INFO("peak RSS grew by " << grew << " kB");
    CHECK(grew < 64 * 1024);
}

TEST_CASE("analyze escapes control characters of file names in its error lines", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    const std::string name = "a\nfaceq: fine\x1b]0;pwned\x07.jpg";
    write_text(tmp / name, "not a JPEG\n");
    const auto r = analyze({(tmp / name).string()});
    REQUIRE(r.exit_code == 1);
    const auto lines = split_lines(r.err);
    REQUIRE(lines.size() == 1);
    CHECK(r.err.find('\x1b') == std::string::npos);
    CHECK(r.err.find('\x07') == std::string::npos);
    CHECK_THAT(lines[0],
               Catch::StartsWith("faceq: error: ") && Catch::Contains("a\\nfaceq: fine\\x1b]0;pwned\\x07.jpg"));
    // The record keeps the name as it is (JSON escapes it).
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 1);
    CHECK(records[0].at("file") == (tmp / name).string());
}

TEST_CASE("analyze -r reports each unreadable entry by name and goes on", "[cli]") {
    REQUIRE_MODELS();
    TempDir tmp;
    namespace fs = std::filesystem;
    const fs::path top = tmp / "top";
    fs::create_directories(top / "sub");
    fs::copy_file(photo(lfw_jpg), top / "sub" / "face.jpg");
    fs::create_symlink(tmp / "nowhere.jpg", top / "dangling.jpg");
    fs::create_symlink(top / "loop.jpg", top / "loop.jpg");
    fs::create_directories(top / "locked");
    fs::copy_file(photo(lfw_jpg), top / "locked" / "hidden.jpg");
    fs::permissions(top / "locked", fs::perms::none);
    // chmod 000 does not stop root: that sub-case is checked only when it can fail.
    std::error_code ec;
    fs::directory_iterator probe(top / "locked", ec);
    const bool locked_is_unreadable = static_cast<bool>(ec);
    if (!locked_is_unreadable) WARN("running as root: the unreadable-subfolder case is not checked");

    const auto r = analyze({"-r", "--jobs", "1", top.string()});
    fs::permissions(top / "locked", fs::perms::owner_all);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 1);
    std::map<std::string, json> by_file;
    for (const auto& rec : json_lines(r.out)) by_file[rec.at("file")] = rec;
    CHECK(by_file.at((top / "sub" / "face.jpg").string()).at("faces").size() == 1);
    const std::string dangling = (top / "dangling.jpg").string(), loop = (top / "loop.jpg").string();
    CHECK_THAT(by_file.at(dangling).at("error").at("message").get<std::string>(),
               Catch::Contains("cannot read '" + dangling + "'"));
    CHECK_THAT(by_file.at(loop).at("error").at("message").get<std::string>(),
               Catch::Contains("cannot read '" + loop + "'") && Catch::Contains("symbolic links"));
    CHECK_THAT(r.err, Catch::Contains(dangling) && Catch::Contains(loop));
    if (locked_is_unreadable) {
        const std::string locked = (top / "locked").string();
        CHECK_THAT(by_file.at(locked).at("error").at("message").get<std::string>(),
                   Catch::Contains("cannot read directory '" + locked + "'"));
        // Named on the command line, it says it is unreadable, not "no images".
        fs::permissions(top / "locked", fs::perms::none);
        const auto named = analyze({locked});
        fs::permissions(top / "locked", fs::perms::owner_all);
        CHECK(named.exit_code == 1);
        CHECK_THAT(named.err, Catch::Contains("cannot read directory '" + locked + "'"));
    } else {
        CHECK(by_file.at((top / "locked" / "hidden.jpg").string()).at("faces").size() == 1);
    }
}
