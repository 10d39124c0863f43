// tests/test_xmp.cpp — XMP face regions (photo/xmp_regions.hpp,
// session/xmp_faces.hpp, docs/xmp.md): the orientation arithmetic against
// OpenCV's own flips; then the real faceq binary on real photos
// (../shared/data, copied into a TempDir so that sidecars can be written
// beside them): analyze --xmp read back by exiftool and by exiv2, reruns
// replacing faceq's regions and keeping a foreign region and foreign tags, an
// EXIF-rotated photos (orientations 6, 3, 8), embedded XMP, export xmp on both gallery engines, the
// round trip analyze --xmp -> enroll --from-xmp, and hostile sidecars.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "base/fsutil.hpp"
#include "faceq/photo/xmp_regions.hpp"
#include "json_lines.hpp"
#include "test_gallery_db.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

const auto bbt = [] { return data_dir() / "faceapi_bbt" / "examples" / "images"; };
const std::vector<std::string> characters = {"amy",   "bernadette", "howard",  "leonard",
                                             "penny", "raj",        "sheldon", "stuart"};

std::filesystem::path bbt_crop(const std::string& who, int k) {
    return bbt() / who / (who + std::to_string(k) + ".png");
}

// A fresh home sharing the test home's models, its gallery on `engine`.
class XmpHome {
public:
    explicit XmpHome(const std::string& engine = "sqlite") : db_(engine, dir_.path()) {
        std::filesystem::create_directory_symlink(test_home().models_dir(), dir_ / "models");
    }
    std::filesystem::path operator/(const std::string& name) const { return dir_ / name; }
    CommandResult run(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--home", dir_.path().string()});
        return run_faceq(args, {}, db_.env(), std::chrono::minutes(3));
    }
    // Enrolls the characters from their crops 1..per_person.
    void enroll(int per_person) const {
        const auto root = dir_ / "people";
        for (const auto& name : characters) {
            std::filesystem::create_directories(root / name);
            for (int k = 1; k <= per_person; ++k)
                std::filesystem::create_symlink(bbt_crop(name, k), root / name / bbt_crop(name, k).filename());
        }
        const auto r = run({"enroll", "--dir", root.string(), "--jobs", "2"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
    }

private:
    TempDir dir_;
    TestGalleryDb db_;
};

// exiftool's reading of a file's XMP, structures kept (-struct), numbers as numbers.
json exiftool(const std::filesystem::path& file) {
    const auto r = run_command({"exiftool", "-j", "-n", "-struct", "-XMP:all", file.string()});
    INFO("exiftool: " << r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out).at(0);
}

void exiftool_write(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"exiftool", "-q", "-overwrite_original"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run_command(argv);
    INFO("exiftool: " << r.err);
    REQUIRE(r.exit_code == 0);
}

// The regions of exiftool's reading with this name.
std::vector<json> regions_named(const json& xmp, const std::string& name) {
    std::vector<json> out;
    for (const auto& r : xmp["RegionInfo"]["RegionList"])
        if (r.value("Name", "") == name) out.push_back(r);
    return out;
}

// The named faces of an analysis record: name -> bboxes.
std::multimap<std::string, json> known_faces(const json& record) {
    std::multimap<std::string, json> out;
    for (const auto& f : record["faces"])
        if (f["decision"] == "known") out.emplace(f["identity"].get<std::string>(), f["bbox"]);
    return out;
}

// A box of an image `w` x `h` as MWG's normalized centre and size.
json area_of(const json& box, double w, double h) {
    const double x = box["x"], y = box["y"], bw = box["width"], bh = box["height"];
    return {{"X", (x + bw / 2) / w}, {"Y", (y + bh / 2) / h}, {"W", bw / w}, {"H", bh / h}};
}

void check_area(const json& got, const json& expected, double tolerance) {
    INFO("area " << got.dump() << ", expected " << expected.dump());
    for (const char* k : {"X", "Y", "W", "H"})
        CHECK(std::abs(got[k].get<double>() - expected[k].get<double>()) <= tolerance);
}

std::string sha(const std::filesystem::path& p) { return sha256_file(p); }

}  // namespace

TEST_CASE("orientation: areas move between the stored and the displayed frame as OpenCV's flips move pixels", "[xmp]") {
    // A 40x30 stored image with one bright block; each orientation applied
    // with the OpenCV calls image_io.cpp makes (EXIF's definition), the block
    // found in the result and compared with to_displayed().
    cv::Mat stored(30, 40, CV_8UC1, cv::Scalar(0));
    stored(cv::Rect(4, 6, 10, 8)).setTo(255);  // x 4..14, y 6..14
    const NormalizedArea block{9.0 / 40, 10.0 / 30, 10.0 / 40, 8.0 / 30};
    for (int o = 1; o <= 8; ++o) {
        INFO("orientation " << o);
        cv::Mat d;
        switch (o) {
            case 2:
                cv::flip(stored, d, 1);
                break;
            case 3:
                cv::flip(stored, d, -1);
                break;
            case 4:
                cv::flip(stored, d, 0);
                break;
            case 5:
                cv::transpose(stored, d);
                break;
            case 6:
                cv::transpose(stored, d), cv::flip(d, d, 1);
                break;
            case 7:
                cv::transpose(stored, d), cv::flip(d, d, -1);
                break;
            case 8:
                cv::transpose(stored, d), cv::flip(d, d, 0);
                break;
            default:
                d = stored;
        }
        const cv::Rect found = cv::boundingRect(d);
        const PhotoFrame frame{40, 30, o};
        CHECK(frame.displayed_width() == d.cols);
        CHECK(frame.displayed_height() == d.rows);
        const auto shown = to_displayed(block, o);
        CHECK(shown.x == Approx((found.x + found.width / 2.0) / d.cols));
        CHECK(shown.y == Approx((found.y + found.height / 2.0) / d.rows));
        CHECK(shown.w == Approx(double(found.width) / d.cols));
        CHECK(shown.h == Approx(double(found.height) / d.rows));
        const auto back = to_stored(shown, o);
        CHECK(back.x == Approx(block.x));
        CHECK(back.y == Approx(block.y));
        CHECK(back.w == Approx(block.w));
        CHECK(back.h == Approx(block.h));
        const Box box = area_to_box(shown, d.cols, d.rows);
        CHECK(box.x == found.x);
        CHECK(box.y == found.y);
        CHECK(box.width == found.width);
        CHECK(box.height == found.height);
    }
}

TEST_CASE(
    "analyze --xmp: named faces in the sidecar, read by exiftool and exiv2; a rerun replaces faceq's regions "
    "and keeps a foreign region and foreign tags; the photo is untouched",
    "[xmp][cli]") {
    REQUIRE_MODELS();
    XmpHome home;
    home.enroll(2);
    const auto photos = home / "photos";
    std::filesystem::create_directories(photos);
    const auto group = photos / "bbt4.jpg";
    std::filesystem::copy_file(bbt() / "bbt4.jpg", group);
    const std::string photo_sha = sha(group);
    // A region a user drew in digiKam (top left corner, no face there) and two other tags.
    const auto sidecar = photos / "bbt4.jpg.xmp";
    exiftool_write({"-XMP-dc:Subject=holiday", "-XMP-xmp:Rating=4",
                    "-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=710,H=473,Unit=pixel},RegionList=[{Name=Lamp,"
                    "Type=Face,Area={X=0.05,Y=0.05,W=0.04,H=0.04,Unit=normalized}}]}",
                    "-o", sidecar.string(), group.string()});

    const auto first = home.run({"analyze", "--xmp", "--jobs", "2", group.string()});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto record = json_lines(first.out).at(0);
    const auto named = known_faces(record);
    REQUIRE(named.size() >= 3);  // measured: 5 of 6 faces named
    CHECK(record["xmp"]["sidecar"] == sidecar.string());
    CHECK(record["xmp"]["written"] == named.size());
    CHECK(record["xmp"]["kept"] == 1);
    CHECK(record["xmp"]["created"] == false);
    CHECK(sha(group) == photo_sha);

    const auto check_sidecar = [&] {
        const json xmp = exiftool(sidecar);
        INFO(xmp.dump());
        CHECK(xmp["Subject"] == json::array({"holiday"}));
        CHECK(xmp["Rating"] == 4);
        CHECK(xmp["RegionInfo"]["AppliedToDimensions"]["W"] == 710);
        CHECK(xmp["RegionInfo"]["AppliedToDimensions"]["H"] == 473);
        CHECK(xmp["RegionInfo"]["RegionList"].size() == named.size() + 1);
        CHECK(regions_named(xmp, "Lamp").size() == 1);
        for (const auto& [name, box] : named) {
            const auto regions = regions_named(xmp, name);
            REQUIRE(regions.size() == named.count(name));
            CHECK(regions[0]["Type"] == "Face");
            CHECK(regions[0]["Area"]["Unit"] == "normalized");
            if (named.count(name) == 1) check_area(regions[0]["Area"], area_of(box, 710, 473), 1e-5);
        }
        // exiv2 (faceq's reader) sees the same: faceq's regions marked, the user's not.
        const auto read = read_face_regions(group);
        REQUIRE(read);
        CHECK(read->source == sidecar);
        REQUIRE(read->faces.size() == named.size() + 1);
        for (const auto& f : read->faces) {
            CHECK(f.problem.empty());
            CHECK(f.by_faceq == (f.name != "Lamp"));
            if (f.by_faceq) CHECK(std::regex_match(f.person_id, std::regex("person_[0-9]+_[0-9]{4}")));
        }
    };
    check_sidecar();

    // Again: faceq's regions replaced, not added.
    const auto second = home.run({"analyze", "--xmp", group.string()});
    REQUIRE(second.exit_code == 0);
    const auto again = json_lines(second.out).at(0);
    CHECK(again["xmp"]["replaced"] == named.size());
    CHECK(again["xmp"]["written"] == named.size());
    check_sidecar();
    CHECK(sha(group) == photo_sha);

    // --sidecar photo.xmp: the other naming, a new file.
    const auto stem = home.run({"analyze", "--xmp", "--sidecar", "photo.xmp", group.string()});
    REQUIRE(stem.exit_code == 0);
    CHECK(json_lines(stem.out).at(0)["xmp"]["created"] == true);
    CHECK(exiftool(photos / "bbt4.xmp")["RegionInfo"]["RegionList"].size() == named.size());

    // Without --xmp the sidecar options are refused.
    CHECK(home.run({"analyze", "--sidecar", "photo.xmp", group.string()}).exit_code == 2);
}

TEST_CASE("analyze --xmp on EXIF-rotated photos: Area is relative to the photo as stored", "[xmp][cli]") {
    REQUIRE_MODELS();
    XmpHome home;
    // The upright photo, and copies stored turned so that their EXIF
    // orientation shows them upright again: 6 (stored a quarter
    // anticlockwise, shown turned clockwise), 3 (half a turn), 8 (a quarter
    // clockwise, shown turned anticlockwise). All four display alike.
    const auto upright = home / "upright.jpg";
    std::filesystem::copy_file(bbt() / "bbt4.jpg", upright);
    cv::Mat pixels = cv::imread(upright.string());
    REQUIRE(pixels.cols == 710);
    const std::vector<std::pair<int, cv::RotateFlags>> turns = {
        {6, cv::ROTATE_90_COUNTERCLOCKWISE}, {3, cv::ROTATE_180}, {8, cv::ROTATE_90_CLOCKWISE}};
    std::vector<std::string> args{"analyze", "--store", "--xmp", "--persons", "all", "--jobs", "1", upright.string()};
    for (const auto& [orientation, turn] : turns) {
        cv::Mat turned;
        cv::rotate(pixels, turned, turn);
        const auto path = home / fmt::format("rotated{}.jpg", orientation);
        REQUIRE(cv::imwrite(path.string(), turned, {cv::IMWRITE_JPEG_QUALITY, 97}));
        exiftool_write({"-n", fmt::format("-Orientation={}", orientation), path.string()});
        args.push_back(path.string());
    }

    // Strangers are written too (--persons all), so that no enrolment is needed.
    const auto r = home.run(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto records = json_lines(r.out);
    REQUIRE(records.size() == 4);
    const json a = exiftool(home / "upright.jpg.xmp");
    const auto& list_a = a["RegionInfo"]["RegionList"];
    REQUIRE(list_a.size() >= 5);
    for (std::size_t k = 0; k < turns.size(); ++k) {
        const int orientation = turns[k].first;
        INFO("orientation " << orientation);
        CHECK(records[k + 1]["width"] == 710);  // displayed as the upright one
        CHECK(records[k + 1]["height"] == 473);
        const auto rotated = home / fmt::format("rotated{}.jpg", orientation);
        const json b = exiftool(home / fmt::format("rotated{}.jpg.xmp", orientation));
        const bool quarter = orientation != 3;
        CHECK(b["RegionInfo"]["AppliedToDimensions"]["W"] == (quarter ? 473 : 710));  // the stored size
        CHECK(b["RegionInfo"]["AppliedToDimensions"]["H"] == (quarter ? 710 : 473));
        // The same faces (the same strangers: these photos' faces match the upright one's).
        CHECK(b["RegionInfo"]["RegionList"].size() == list_a.size());
        for (const auto& region : list_a) {
            INFO(region.dump());
            const auto same = regions_named(b, region["Name"]);
            REQUIRE(same.size() == 1);
            // Where the displayed (x, y) lies in the stored image, by the turn made above; w and h swap on quarters.
            const double x = region["Area"]["X"], y = region["Area"]["Y"], w = region["Area"]["W"],
                         h = region["Area"]["H"];
            const json expected = orientation == 6   ? json{{"X", y}, {"Y", 1 - x}, {"W", h}, {"H", w}}
                                  : orientation == 3 ? json{{"X", 1 - x}, {"Y", 1 - y}, {"W", w}, {"H", h}}
                                                     : json{{"X", 1 - y}, {"Y", x}, {"W", h}, {"H", w}};
            check_area(same[0]["Area"], expected, 0.01);
        }
        // And faceq reads the regions back into the displayed frame.
        const auto read = read_face_regions(rotated);
        REQUIRE(read);
        const PhotoFrame frame = read_photo_frame(rotated);
        CHECK(frame.orientation == orientation);
        for (const auto& f : read->faces) {
            const auto shown = to_displayed(f.area, frame.orientation);
            const auto same = regions_named(a, f.name);
            REQUIRE(same.size() == 1);
            CHECK(shown.x == Approx(same[0]["Area"]["X"].get<double>()).margin(0.01));
            CHECK(shown.y == Approx(same[0]["Area"]["Y"].get<double>()).margin(0.01));
        }
    }
}

TEST_CASE("export xmp writes what the gallery holds; missing and changed photos are skipped", "[xmp][cli][gallery]") {
    REQUIRE_MODELS();
    CLI_GALLERY_ENGINE(engine);
    XmpHome home(engine);
    home.enroll(2);
    const auto photos = home / "photos";
    std::filesystem::create_directories(photos);
    for (const char* name : {"bbt4.jpg", "bbt1.jpg", "bbt2.jpg"})
        std::filesystem::copy_file(bbt() / name, photos / name);
    const auto stored = home.run({"analyze", "--store", "--jobs", "2", photos.string()});
    INFO(stored.err);
    REQUIRE(stored.exit_code == 0);
    const auto records = json_lines(stored.out);
    REQUIRE(records.size() == 3);
    // bbt1 goes, bbt2 changes (another photo under its name).
    std::filesystem::remove(photos / "bbt1.jpg");
    std::filesystem::copy_file(bbt() / "bbt3.jpg", photos / "bbt2.jpg",
                               std::filesystem::copy_options::overwrite_existing);

    const auto exported = home.run({"export", "xmp", "--jobs", "2"});
    INFO(exported.err);
    REQUIRE(exported.exit_code == 0);
    const auto out = json_lines(exported.out);
    REQUIRE(out.size() == 4);
    std::map<std::string, json> by_file;
    for (std::size_t i = 0; i < 3; ++i) by_file[out[i]["file"].get<std::string>()] = out[i];
    CHECK(by_file.at((photos / "bbt1.jpg").string())["skipped"] == "missing");
    CHECK(by_file.at((photos / "bbt2.jpg").string())["skipped"] == "changed since it was recorded");
    CHECK(out[3]["type"] == "xmp_export");
    CHECK(out[3]["skipped"] == 2);
    CHECK(out[3]["failed"] == 0);
    CHECK(exported.err.find("bbt1.jpg") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(photos / "bbt2.jpg.xmp"));

    json group;
    for (const auto& r : records)
        if (r["file"] == (photos / "bbt4.jpg").string()) group = r;
    const auto named = known_faces(group);
    REQUIRE(named.size() >= 3);
    CHECK(by_file.at((photos / "bbt4.jpg").string())["written"] == named.size());
    const json xmp = exiftool(photos / "bbt4.jpg.xmp");
    CHECK(xmp["RegionInfo"]["RegionList"].size() == named.size());
    for (const auto& [name, box] : named)
        if (named.count(name) == 1) check_area(regions_named(xmp, name).at(0)["Area"], area_of(box, 710, 473), 1e-5);

    // --persons all: the strangers too, under their ids; a rerun replaces.
    const auto all = home.run({"export", "xmp", "--persons", "all"});
    REQUIRE(all.exit_code == 0);
    const auto all_out = json_lines(all.out);
    std::size_t strangers = 0;
    for (const auto& f : group["faces"]) strangers += f["decision"] == "unknown" && f["person_id"].is_string();
    const json with_strangers = exiftool(photos / "bbt4.jpg.xmp");
    CHECK(with_strangers["RegionInfo"]["RegionList"].size() == named.size() + strangers);
    // Known persons only again: the strangers' regions go (faceq's own, replaced).
    const auto known_again = json_lines(home.run({"export", "xmp"}).out);
    for (const auto& r : known_again)
        if (r.value("file", "") == (photos / "bbt4.jpg").string()) CHECK(r["replaced"] == named.size() + strangers);
    CHECK(exiftool(photos / "bbt4.jpg.xmp")["RegionInfo"]["RegionList"].size() == named.size());
    CHECK(home.run({"export", "xmp", "--persons", "nobody"}).exit_code == 2);
}

TEST_CASE("round trip: analyze --xmp, then enroll --from-xmp into a fresh gallery gives back the same persons",
          "[xmp][cli]") {
    REQUIRE_MODELS();
    XmpHome home;
    home.enroll(3);
    // Held-out crops of four characters, one face each, in a folder with a subfolder.
    const auto photos = home / "photos";
    std::filesystem::create_directories(photos / "more");
    const std::vector<std::string> four = {"amy", "howard", "penny", "sheldon"};
    for (std::size_t i = 0; i < four.size(); ++i)
        for (int k : {4, 5})
            std::filesystem::copy_file(bbt_crop(four[i], k),
                                       (i < 2 ? photos : photos / "more") / bbt_crop(four[i], k).filename());
    const auto analyzed = home.run({"analyze", "--xmp", "--jobs", "2", "-r", photos.string()});
    INFO(analyzed.err);
    REQUIRE(analyzed.exit_code == 0);
    std::map<std::string, int> written;  // name -> faces written
    for (const auto& r : json_lines(analyzed.out))
        for (const auto& [name, box] : known_faces(r)) ++written[name];
    REQUIRE(written.size() >= 3);  // measured: all 8 crops named right

    XmpHome fresh;
    const auto enrolled = fresh.run({"enroll", "--from-xmp", photos.string(), "-r", "--jobs", "2"});
    INFO(enrolled.err);
    REQUIRE(enrolled.exit_code == 0);
    const auto out = json_lines(enrolled.out);
    REQUIRE(out.size() == written.size() + 1);
    std::map<std::string, int> got;
    for (std::size_t i = 0; i < written.size(); ++i) {
        CHECK(out[i]["created"] == true);
        got[out[i]["person"].get<std::string>()] = out[i]["added"].get<int>();
    }
    CHECK(got == written);
    const auto& summary = out.back();
    CHECK(summary["with_regions"] == 8);
    CHECK(summary["unmatched"].empty());
    CHECK(summary["failed"].empty());
    // Without -r only the top folder's photos.
    XmpHome flat;
    const auto top = json_lines(flat.run({"enroll", "--from-xmp", photos.string()}).out);
    CHECK(top.back()["photos"] == 4);
}

TEST_CASE("enroll --from-xmp: XMP embedded in a JPEG, the sidecar winning over it, regions without a face reported",
          "[xmp][cli]") {
    REQUIRE_MODELS();
    XmpHome home;
    const auto photos = home / "photos";
    std::filesystem::create_directories(photos);
    const auto group = photos / "bbt4.jpg";
    std::filesystem::copy_file(bbt() / "bbt4.jpg", group);
    // Where faceq finds the faces: the regions are drawn on two of them, as a user would.
    const auto found = json_lines(home.run({"analyze", group.string()}).out).at(0);
    REQUIRE(found["faces"].size() >= 2);
    const auto a0 = area_of(found["faces"][0]["bbox"], 710, 473), a1 = area_of(found["faces"][1]["bbox"], 710, 473);
    const auto region = [](const std::string& name, const json& a) {
        return fmt::format("{{Name={},Type=Face,Area={{X={},Y={},W={},H={},Unit=normalized}}}}", name,
                           a["X"].get<double>(), a["Y"].get<double>(), a["W"].get<double>() * 1.2,
                           a["H"].get<double>() * 1.3);
    };
    // Embedded: two faces and one region over the wall (no face there).
    exiftool_write({"-XMP-mwg-rs:RegionInfo={RegionList=[" + region("Alice", a0) + "," + region("Bob", a1) +
                        ",{Name=Wall,Type=Face,Area={X=0.02,Y=0.5,W=0.03,H=0.05,Unit=normalized}}]}",
                    group.string()});
    const auto plain = photos / "copy.jpg";
    std::filesystem::copy_file(group, plain);
    // A second copy with a sidecar naming face 0 otherwise: the sidecar wins.
    const auto sided = photos / "sided.jpg";
    std::filesystem::copy_file(group, sided);
    exiftool_write({"-XMP-dc:Subject=another image", sided.string()});  // other bytes: another image
    // (Made from a photo without XMP: from sided.jpg, exiftool would copy its regions into it.)
    exiftool_write({"-XMP-mwg-rs:RegionInfo={RegionList=[" + region("Carol", a0) + "]}", "-o",
                    (photos / "sided.xmp").string(), (bbt() / "bbt1.jpg").string()});
    // And a photo without any XMP: skipped quietly.
    std::filesystem::copy_file(bbt() / "bbt1.jpg", photos / "none.jpg");

    const auto r = home.run({"enroll", "--from-xmp", photos.string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto out = json_lines(r.out);
    REQUIRE(out.size() == 4);  // Alice, Bob, Carol, summary
    std::map<std::string, json> persons;
    for (std::size_t i = 0; i < 3; ++i) persons[out[i]["person"].get<std::string>()] = out[i];
    // bbt4.jpg and copy.jpg are one image (same bytes): Alice and Bob get one
    // sample each (two faces of one photo, two persons); Carol is face 0 of sided.jpg.
    CHECK(persons.at("Alice")["added"] == 1);
    CHECK(persons.at("Alice")["skipped"].size() == 1);
    CHECK(persons.at("Bob")["added"] == 1);
    CHECK(persons.at("Carol")["added"] == 1);
    const auto& s = out[3];
    CHECK(s["photos"] == 4);
    CHECK(s["with_regions"] == 3);
    CHECK(s["without_regions"] == 1);
    CHECK(s["regions"] == 7);
    CHECK(s["matched"] == 5);
    REQUIRE(s["unmatched"].size() == 2);
    for (const auto& u : s["unmatched"]) {
        CHECK(u["name"] == "Wall");
        CHECK(u["reason"].get<std::string>().find("no detected face there") != std::string::npos);
    }
    CHECK(r.err.find("region 'Wall' in '" + group.string() + "' not enrolled") != std::string::npos);
}

TEST_CASE(
    "hostile sidecars: broken XML, a huge file, entity expansion, bad numbers: one error per file, sidecars "
    "untouched, the other photos done",
    "[xmp][cli]") {
    REQUIRE_MODELS();
    XmpHome home;
    home.enroll(2);
    const auto photos = home / "photos";
    std::filesystem::create_directories(photos);
    const std::string rdf =
        R"(<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">)"
        R"(<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">)";
    std::string laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE x [\n <!ENTITY l0 \"lol\">\n";
    for (int i = 1; i <= 9; ++i) {
        laughs += fmt::format(" <!ENTITY l{} \"", i);
        for (int k = 0; k < 10; ++k) laughs += fmt::format("&l{};", i - 1);
        laughs += "\">\n";
    }
    laughs += "]>\n" + rdf + "<dc:title>&l9;</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>\n";
    const std::map<std::string, std::string> sidecars = {
        {"broken", rdf + "<dc:title>unclosed"},
        {"huge",
         rdf + "<dc:title>" + std::string(5u << 20, 'a') + "</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>"},
        {"laughs", laughs},
        // One harmless entity: refused all the same (the toolkit refuses any DOCTYPE, before expat expands anything).
        {"doctype", "<?xml version=\"1.0\"?>\n<!DOCTYPE x [ <!ENTITY who \"Alice\"> ]>\n" + rdf +
                        "<dc:title>&who;</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>\n"},
        {"nul", std::string("<x:xmpmeta\0", 11)}};
    for (const auto& [name, text] : sidecars) {
        std::filesystem::copy_file(bbt() / "bbt4.jpg", photos / (name + ".jpg"));
        write_text(photos / (name + ".jpg.xmp"), text);
    }
    // Bad numbers in a region a user wrote: kept as they are on writing, refused on reading.
    std::filesystem::copy_file(bbt() / "bbt4.jpg", photos / "numbers.jpg");
    const auto bad_region = [](const std::string& name, const std::string& x, const std::string& w) {
        return "<rdf:li rdf:parseType=\"Resource\"><mwg-rs:Name>" + name +
               "</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type><mwg-rs:Area rdf:parseType=\"Resource\"><stArea:x>" + x +
               "</stArea:x><stArea:y>0.5</stArea:y><stArea:w>" + w +
               "</stArea:w><stArea:h>0.1</stArea:h><stArea:unit>normalized</stArea:unit></mwg-rs:Area></rdf:li>";
    };
    write_text(
        photos / "numbers.jpg.xmp",
        R"(<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">)"
        R"(<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" )"
        R"(xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/" )"
        R"(xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"><dc:subject><rdf:Bag><rdf:li>kept</rdf:li>)"
        R"(</rdf:Bag></dc:subject><mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>)" +
            bad_region("Nan", "nan", "0.1") + bad_region("Big", "0.5", "7") +
            "</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>");
    std::filesystem::copy_file(bbt() / "bbt1.jpg", photos / "good.jpg");
    std::map<std::string, std::string> before;
    for (const auto& [name, text] : sidecars) before[name] = sha(photos / (name + ".jpg.xmp"));

    const auto r = home.run({"analyze", "--xmp", "--jobs", "2", photos.string()});
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(std::filesystem::exists(photos / "good.jpg.xmp"));
    for (const auto& [name, text] : sidecars) {
        INFO(name);
        CHECK(sha(photos / (name + ".jpg.xmp")) == before[name]);
        CHECK(r.err.find("'" + (photos / (name + ".jpg.xmp")).string() + "'") != std::string::npos);
    }
    CHECK(r.err.find("over the limit of 4194304 bytes") != std::string::npos);
    for (const char* name : {"laughs", "doctype"}) {
        const auto at = r.err.find("'" + (photos / (std::string(name) + ".jpg.xmp")).string() + "'");
        REQUIRE(at != std::string::npos);
        CHECK(r.err.substr(at, r.err.find('\n', at) - at).find("XMLValidator") != std::string::npos);
    }
    std::size_t error_lines = 0;
    std::istringstream err(r.err);
    for (std::string line; std::getline(err, line);) error_lines += line.rfind("faceq: error:", 0) == 0;
    CHECK(error_lines == sidecars.size());
    // The foreign regions with bad numbers stay as the user wrote them.
    const json numbers = exiftool(photos / "numbers.jpg.xmp");
    CHECK(numbers["Subject"] == json::array({"kept"}));
    CHECK(regions_named(numbers, "Big").size() == 1);
    CHECK(regions_named(numbers, "Nan").size() == 1);

    // Reading them: the same errors, and the bad numbers reported per region.
    XmpHome fresh;
    const auto e = fresh.run({"enroll", "--from-xmp", photos.string()});
    INFO(e.err);
    CHECK(e.exit_code == 1);
    const auto summary = json_lines(e.out).back();
    CHECK(summary["failed"].size() == sidecars.size());
    std::set<std::string> reasons;
    for (const auto& u : summary["unmatched"])
        reasons.insert(u["name"].get<std::string>() + ": " + u["reason"].get<std::string>());
    CHECK(reasons.count("Nan: Area x 'nan' is not a number") == 1);
    CHECK(reasons.count("Big: Area w 7 is outside (0, 1]") == 1);
    for (const auto& [name, text] : sidecars) CHECK(sha(photos / (name + ".jpg.xmp")) == before[name]);
}
