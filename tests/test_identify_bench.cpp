// `faceq bench identify` (faceq/session/identify_bench.hpp): issue 11's
// protocol on celeba-dev identities, counted and repeatable; the user's own
// gallery is never touched; bad folders refused in one line.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

CommandResult bench_identify(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"--home", test_home().root.string(), "bench", "identify"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_faceq(argv);
}

}  // namespace

TEST_CASE("faceq bench identify: 20 celeba-dev identities, 16 enrolled with 3 photos, 4 strangers",
          "[identify_bench][cli]") {
    REQUIRE_MODELS();
    const auto celeba = data_dir() / "celeba-dev";
    const auto gallery = test_home().gallery_path();
    std::error_code ec;
    const bool had_gallery = std::filesystem::exists(gallery, ec);
    const auto gallery_time =
        had_gallery ? std::filesystem::last_write_time(gallery, ec) : std::filesystem::file_time_type{};

    const std::vector<std::string> args{celeba.string(), "--identities", "20", "--jobs", "2", "--format", "jsonl"};
    const auto r = bench_identify(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["type"] == "identify_bench");
    CHECK(j["known_identities"] == 16);
    CHECK(j["stranger_identities"] == 4);
    CHECK(j["enrolled_photos"] == 48);
    CHECK(j["enroll_failures"] == 0);
    // celeba-dev has 8 photos per identity: 5 probes per known person, 8 per stranger.
    CHECK(j["known_probes"] == 80);
    CHECK(j["stranger_probes"] == 32);
    CHECK(j["known_right"].get<int>() + j["known_wrong"].get<int>() + j["known_unknown"].get<int>() +
              j["known_ambiguous"].get<int>() + j["known_missed"].get<int>() ==
          80);
    // Measured at the defaults (YuNet + 5 points, mirror-averaged descriptors, threshold 0.45,
    // strangers up to 0.53): 0.90 named right, no stranger named, consistency 0.906 (0.75 before
    // the stranger rules), purity 1.0; cluster left 82% of the unknown detections where they
    // were; 5 merge candidates, 4 right (issue 11's targets: 0.90, 0.01, 0.85 on all 100).
    CHECK(j["known_named_right"].get<double>() >= 0.85);
    CHECK(j["strangers_named_share"].get<double>() <= 0.05);
    CHECK(j["stranger_consistency"].get<double>() >= 0.85);
    CHECK(j["stranger_consistency"].get<double>() <= 1.0);
    CHECK(j["stranger_purity"].get<double>() >= 0.9);
    CHECK(j["cluster_agreement"].get<double>() >= 0.7);
    CHECK(j["merge_candidates_right"].get<int>() <= j["merge_candidates_judged"].get<int>());
    CHECK(j["merge_candidates_judged"].get<int>() <= j["merge_candidates"].get<int>());
    CHECK(j["merge_candidates_right"].get<int>() >= 2);
    CHECK(j["unknown_persons"].get<int>() >= 4);

    // Seeded: the same command gives the same figures.
    const auto again = bench_identify(args);
    REQUIRE(again.exit_code == 0);
    CHECK(nlohmann::json::parse(again.out) == j);

    // The run happened in a temporary home: the user's gallery is as it was.
    CHECK(std::filesystem::exists(gallery, ec) == had_gallery);
    if (had_gallery) CHECK(std::filesystem::last_write_time(gallery, ec) == gallery_time);

    // Bad input: one line, non-zero exit.
    const auto one = bench_identify({(celeba / "7201").string()});
    CHECK(one.exit_code != 0);
    CHECK_THAT(one.err, Catch::Contains("one folder per person"));
    const auto share = bench_identify({celeba.string(), "--strangers", "0"});
    CHECK(share.exit_code == 2);
}

TEST_CASE("faceq bench identify: an empty person folder is no identity", "[identify_bench][cli]") {
    REQUIRE_MODELS();
    TempDir dir;
    // Three celeba-dev identities and an empty folder: 3 identities, not 4.
    for (const char* person : {"7201", "7204", "7206"})
        std::filesystem::create_directory_symlink(data_dir() / "celeba-dev" / person, dir / person);
    std::filesystem::create_directory(dir / "empty_person");
    const auto r = bench_identify({dir.path().string(), "--strangers", "0.34", "--jobs", "2", "--format", "jsonl"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("no images in directory"));  // said, then left out
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["known_identities"].get<int>() + j["stranger_identities"].get<int>() == 3);
    CHECK(j["stranger_identities"] == 1);
    CHECK(j["enrolled_photos"] == 6);
    CHECK(j["known_probes"] == 10);
    CHECK(j["known_missed"] == 0);
}
