// tests/test_cli_reindex.cpp — `faceq gallery reindex` end to end: a gallery
// built with HOG + 68-point chips moves to YuNet + 5-point chips; a missing
// photo is reported and its sample kept; a second run resumes; the moved
// gallery names the person again; an interrupted run keeps what it did.
#include <atomic>
#include <nlohmann/json.hpp>
#include <sstream>

#include "faceq/session/reindex.hpp"
#include "test_models.hpp"
#include "test_sqlite.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

std::vector<json> records(const std::string& out) {
    std::vector<json> all;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) all.push_back(json::parse(line));
    return all;
}

}  // namespace

TEST_CASE("gallery reindex: HOG+68 gallery to YuNet+5 points, a missing photo kept, resumable", "[cli][reindex]") {
    REQUIRE_MODELS();
    TempDir home;
    std::filesystem::create_directory_symlink(test_home().models_dir(), home.path() / "models");
    auto faceq = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--home", home.path().string()});
        return run_faceq(args, {}, {}, std::chrono::minutes(3));
    };
    // Copies of four photos of one person: the gallery records their paths.
    const auto lfw = data_dir() / "lfw-dev" / "lfw-deepfunneled" / "Alvaro_Uribe";
    std::vector<std::string> photos;
    // 0017 and 0026 are enrolled; 0010 (one face for HOG) is stored; 0007 (the
    // person and somebody behind him) is the new photo.
    for (const char* f :
         {"Alvaro_Uribe_0017.jpg", "Alvaro_Uribe_0026.jpg", "Alvaro_Uribe_0010.jpg", "Alvaro_Uribe_0007.jpg"}) {
        std::filesystem::copy_file(lfw / f, home.path() / f);
        photos.push_back((home.path() / f).string());
    }
    const auto db = home.path() / "faceq.db";

    // A gallery of the old default pipeline (HOG + 68 points), moved to today's (YuNet + 5).
    REQUIRE(faceq({"enroll", "--detector", "hog", "--name", "Alvaro", "--pick", "largest", photos[0], photos[1]})
                .exit_code == 0);
    REQUIRE(faceq({"analyze", "--detector", "hog", "--store", photos[2]}).exit_code == 0);
    const std::string old_id = db_text(db, "SELECT embedder FROM samples LIMIT 1");
    CHECK(db_int(db, "SELECT count(*) FROM samples") == 2);
    CHECK(db_int(db, "SELECT count(*) FROM detections WHERE descriptor IS NOT NULL") == 1);

    std::filesystem::remove(photos[1]);
    const auto first = faceq({"gallery", "reindex", "--jobs", "2"});
    INFO(first.err);
    CHECK(first.exit_code == 1);  // one stored face left as it was
    auto out = records(first.out);
    REQUIRE(out.size() == 2);
    CHECK(out[0]["type"] == "reindex_skipped");
    CHECK(out[0]["kind"] == "sample");
    CHECK(out[0]["file"] == photos[1]);
    CHECK(out[0]["reason"] == "missing");
    const json& summary = out[1];
    CHECK(summary["type"] == "reindex");
    const std::string new_id = summary["embedder"];
    REQUIRE(old_id.size() > 5);
    CHECK(new_id == old_id.substr(0, old_id.size() - 5) + "+5pt+flip");
    CHECK(summary["samples"] == json{{"stale", 2}, {"redescribed", 1}});
    CHECK(summary["detections"] == json{{"stale", 1}, {"redescribed", 1}});
    CHECK(summary["interrupted"] == false);
    // Nothing lost: the missing photo's sample keeps its old descriptor.
    CHECK(db_int(db, "SELECT count(*) FROM samples") == 2);
    CHECK(db_int(db, "SELECT count(*) FROM samples WHERE embedder = '" + new_id + "'") == 1);
    CHECK(db_int(db, "SELECT count(*) FROM detections WHERE embedder = '" + new_id + "'") == 1);

    // The moved gallery names the person in a photo it has not seen.
    const auto named = faceq({"analyze", photos[3]});
    REQUIRE(named.exit_code == 0);
    const auto analysis = records(named.out);
    REQUIRE(analysis.size() == 1);
    std::size_t alvaro = 0;
    for (const auto& face : analysis[0]["faces"]) alvaro += face["identity"] == "Alvaro" ? 1 : 0;
    CHECK(alvaro == 1);

    // A second run resumes: only the face whose photo is still missing is left.
    const auto again = faceq({"gallery", "reindex"});
    CHECK(again.exit_code == 1);
    out = records(again.out);
    REQUIRE(out.size() == 2);
    CHECK(out[1]["samples"] == json{{"stale", 1}, {"redescribed", 0}});
    CHECK(out[1]["detections"] == json{{"stale", 0}, {"redescribed", 0}});

    // Bad input: no gallery in another home, one line, non-zero exit.
    TempDir empty;
    const auto none = run_faceq({"--home", empty.path().string(), "gallery", "reindex"});
    CHECK(none.exit_code != 0);
    CHECK_THAT(none.err, Catch::Contains("no gallery at"));
}

TEST_CASE("reindex_gallery: interrupted after 3 photos keeps them; the next run does the rest", "[reindex]") {
    REQUIRE_MODELS();
    TempDir home;
    std::filesystem::create_directory_symlink(test_home().models_dir(), home.path() / "models");
    const auto lfw = data_dir() / "lfw-dev" / "lfw-deepfunneled";
    std::vector<std::string> args{
        "--home", home.path().string(), "enroll", "--detector", "hog", "--pick", "largest", "--name", "Amelie"};
    for (const auto& e : std::filesystem::directory_iterator(lfw / "Amelie_Mauresmo"))
        args.push_back(e.path().string());  // 7 photos, one sample each
    REQUIRE(run_faceq(args).exit_code == 0);

    Gallery gallery(home.path() / "faceq.db");
    const AnalyzeOptions options;  // the default pipeline: YuNet + 5 points
    std::atomic<int> asked{0};
    const auto stop_after_3 = [&] { return ++asked > 3; };
    std::vector<ReindexSkip> skipped;
    const auto first = reindex_gallery(gallery, test_model_set(), options, 1, stop_after_3, {},
                                       [&](const ReindexSkip& s) { skipped.push_back(s); });
    CHECK(first.interrupted);
    CHECK(first.samples == 7);
    CHECK(first.photos == 3);
    CHECK(first.samples_done + skipped.size() == 3);
    const auto db = home.path() / "faceq.db";
    CHECK(db_int(db, "SELECT count(*) FROM samples") == 7);  // nothing lost
    CHECK(db_int(db, "SELECT count(*) FROM samples WHERE embedder = '" + first.embedder + "'") ==
          static_cast<std::int64_t>(first.samples_done));

    const auto second = reindex_gallery(gallery, test_model_set(), options, 2, {}, {}, {});
    CHECK_FALSE(second.interrupted);
    CHECK(second.samples == 7 - first.samples_done);
    CHECK(second.photos == second.samples);
    CHECK(db_int(db, "SELECT count(*) FROM samples WHERE embedder = '" + first.embedder + "'") ==
          static_cast<std::int64_t>(first.samples_done + second.samples_done));
}
