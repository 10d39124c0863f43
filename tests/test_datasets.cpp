// tests/test_datasets.cpp — UTKFace labels, age bands, seeded stratified
// splits, the dataset download (archives made here with tar, and the real
// one from ../shared/mirror), and prepare on a few dozen real images with the
// real models: counts, splits, the cache, malformed names, empty and
// unlabelled datasets, and a folder of identities.
#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/training/datasets.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

DatasetEntry utk_entry() {
    return find_dataset_entry(fs::path(FACEQ_SOURCE_DIR) / "data" / "datasets.json", "utkface");
}

// A home whose models/ is the test home's (a symlink: never copy the models).
struct ScratchHome {
    TempDir dir;
    Home home{dir.path()};
    ScratchHome() { fs::create_directory_symlink(test_home().models_dir(), home.models_dir()); }
};

// A .tar.gz of `files` (name -> contents) under a top folder, made with tar.
fs::path make_tar(const TempDir& dir, const std::string& name, const std::map<std::string, std::string>& files) {
    const fs::path src = dir / ("src-" + name);
    for (const auto& [file, contents] : files) {
        fs::create_directories((src / file).parent_path());
        write_text(src / file, contents);
    }
    const fs::path out = dir / name;
    const auto r = run_command({"tar", "czf", out.string(), "-C", src.string(), "."});
    REQUIRE(r.exit_code == 0);
    return out;
}

}  // namespace

TEST_CASE("UTKFace labels parse from file names", "[datasets]") {
    auto l = parse_utkface_name("26_1_3_20170119181424873.jpg.chip.jpg");
    REQUIRE(l);
    CHECK(l->age == 26);
    CHECK(l->gender == "female");
    CHECK(l->race == 3);
    l = parse_utkface_name("/some/dir/1_0_0_20161219140623097.jpg.chip.jpg");
    REQUIRE(l);
    CHECK(l->age == 1);
    CHECK(l->gender == "male");
    CHECK(parse_utkface_name("100_1_2_20170112213615815.jpg"));

    // The malformed names upstream UTKFace is known for, and others.
    std::string why;
    CHECK_FALSE(parse_utkface_name("61_1_20170109142408075.jpg.chip.jpg", &why));  // no race
    CHECK(why.find("3 fields") != std::string::npos);
    CHECK_FALSE(parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg"));
    CHECK_FALSE(parse_utkface_name("53__0_20170116184028385.jpg.chip.jpg", &why));
    CHECK_FALSE(parse_utkface_name("24_3_0_20170119165103711.jpg.chip.jpg", &why));
    CHECK(why.find("gender") != std::string::npos);
    CHECK_FALSE(parse_utkface_name("x_0_0_20170119165103711.jpg.chip.jpg", &why));
    CHECK(why.find("age") != std::string::npos);
    CHECK_FALSE(parse_utkface_name("150_0_0_20170119165103711.jpg.chip.jpg"));
    CHECK_FALSE(parse_utkface_name("20_0_7_20170119165103711.jpg.chip.jpg"));
    CHECK_FALSE(parse_utkface_name("20_0_1_2017a.jpg"));
    CHECK_FALSE(parse_utkface_name("photo.jpg"));
    CHECK_FALSE(parse_utkface_name(""));
}

TEST_CASE("age bands put children in their own band", "[datasets]") {
    CHECK(age_bands().size() == 8);
    CHECK(age_bands()[age_band_index(0)] == "0-12");
    CHECK(age_bands()[age_band_index(12.9)] == "0-12");
    CHECK(age_bands()[age_band_index(13)] == "13-19");
    CHECK(age_bands()[age_band_index(19)] == "13-19");
    CHECK(age_bands()[age_band_index(20)] == "20-29");
    CHECK(age_bands()[age_band_index(69)] == "60-69");
    CHECK(age_bands()[age_band_index(70)] == "70+");
    CHECK(age_bands()[age_band_index(116)] == "70+");
}

TEST_CASE("stratified splits are seeded, stable and proportional per stratum", "[datasets]") {
    CHECK(seeded_hash("a", 1) == seeded_hash("a", 1));
    CHECK(seeded_hash("a", 1) != seeded_hash("a", 2));
    CHECK(seeded_hash("a", 1) != seeded_hash("b", 1));
    CHECK(seeded_hash("abc", 1) == 0xae806b2cdc26d551ull);  // pinned: splits must not change across builds

    std::vector<std::string> keys, strata;
    for (int i = 0; i < 1000; ++i) {
        keys.push_back("img" + std::to_string(i));
        strata.push_back(i < 700 ? "adults/male" : (i < 900 ? "children/female" : "old/male"));
    }
    const auto s = stratified_split(keys, strata, 0.15, 0.15, 7);
    std::map<std::string, std::map<std::string, int>> count;
    for (std::size_t i = 0; i < keys.size(); ++i) count[strata[i]][s[i]]++;
    CHECK(count["adults/male"]["test"] == 105);
    CHECK(count["adults/male"]["val"] == 105);
    CHECK(count["adults/male"]["train"] == 490);
    CHECK(count["children/female"]["test"] == 30);
    CHECK(count["old/male"]["val"] == 15);
    CHECK(stratified_split(keys, strata, 0.15, 0.15, 7) == s);  // same seed, same split
    CHECK(stratified_split(keys, strata, 0.15, 0.15, 8) != s);
    // An item keeps its split when others join its stratum later... mostly:
    // order is by hash, so only items near the cut move.
    auto more_keys = keys;
    auto more_strata = strata;
    more_keys.push_back("img-new");
    more_strata.push_back("adults/male");
    const auto s2 = stratified_split(more_keys, more_strata, 0.15, 0.15, 7);
    int moved = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) moved += s[i] != s2[i];
    CHECK(moved <= 2);
    CHECK_THROWS_AS(stratified_split(keys, {"x"}, 0.1, 0.1, 1), Error);
}

TEST_CASE("the dataset catalogue names the mirror's archive", "[datasets]") {
    const DatasetEntry e = utk_entry();
    CHECK(e.source_file == "utkface-part1-dev.tar.gz");
    CHECK(e.sha256 == "12f84412a41906fe9e9fd1b2b1a673c7b12e9716bd6610960a1baed00186e7a0");
    CHECK_THROWS_AS(find_dataset_entry(fs::path(FACEQ_SOURCE_DIR) / "data" / "datasets.json", "imagenet"), Error);
}

TEST_CASE("download dataset unpacks images safely, with --limit and idempotently", "[datasets]") {
    TempDir dir;
    const Home home{dir / "home"};
    std::map<std::string, std::string> files;
    for (int i = 0; i < 30; ++i)
        files["UTKFace/" + std::to_string(20 + i) + "_0_0_2017011.jpg.chip.jpg"] = "jpeg " + std::to_string(i);
    files["UTKFace/readme.txt"] = "not an image";
    files["UTKFace/.hidden.jpg"] = "hidden";
    files["other/deeper/../x_1.jpg"] = "flattened";
    const fs::path tar = make_tar(dir, "mine.tar.gz", files);

    DatasetEntry entry = utk_entry();
    DatasetDownloadOptions o;
    o.from = tar.string();
    o.limit = 10;
    auto r = download_dataset(home, entry, o);
    CHECK(r.status == "installed");
    CHECK_FALSE(r.verified);  // not the catalogued file: recorded, not verified
    CHECK(r.images_in_archive == 31);
    CHECK(r.images == 10);
    std::set<std::string> first;
    for (const auto& e : fs::directory_iterator(home.datasets_dir() / "utkface" / "images"))
        first.insert(e.path().filename().string());
    CHECK(first.size() == 10);

    // Same request: nothing to do. Same limit again after --force: same subset.
    CHECK(download_dataset(home, entry, o).status == "already installed");
    o.force = true;
    download_dataset(home, entry, o);
    std::set<std::string> again;
    for (const auto& e : fs::directory_iterator(home.datasets_dir() / "utkface" / "images"))
        again.insert(e.path().filename().string());
    CHECK(again == first);
    // Everything; no file escapes the images folder.
    o.limit = 0;
    o.force = false;
    r = download_dataset(home, entry, o);
    CHECK(r.images == 31);
    CHECK(fs::is_regular_file(home.datasets_dir() / "utkface" / "images" / "x_1.jpg"));
    CHECK_FALSE(fs::exists(home.datasets_dir() / "utkface" / "images" / "readme.txt"));
    CHECK_FALSE(fs::exists(home.datasets_dir() / "utkface" / "images" / ".hidden.jpg"));

    // The catalogued name with other bytes is refused and removed.
    const fs::path fake = dir / "utkface-part1-dev.tar.gz";
    fs::copy_file(tar, fake);
    o.from = fake.string();
    o.force = true;
    CHECK_THROWS_WITH(download_dataset(home, entry, o), Catch::Contains("mismatch"));
    CHECK_FALSE(fs::exists(home.datasets_dir() / "downloads" / "utkface-part1-dev.tar.gz"));

    // No source at all.
    DatasetDownloadOptions none;
    CHECK_THROWS_WITH(download_dataset(home, entry, none), Catch::Contains("--from"));
    none.from = (dir / "missing.tar.gz").string();
    CHECK_THROWS_AS(download_dataset(home, entry, none), Error);
    // Not an archive.
    write_text(dir / "bad.tar.gz", "this is not gzip");
    none.from = (dir / "bad.tar.gz").string();
    CHECK_THROWS_AS(download_dataset(home, entry, none), Error);
}

TEST_CASE("the real UTKFace archive from the mirror, verified", "[datasets]") {
    REQUIRE_MODELS();
    TempDir dir;
    const Home home{dir.path()};
    DatasetDownloadOptions o;
    o.mirror = mirror_dir().string();
    o.limit = 25;
    const auto r = download_dataset(home, utk_entry(), o);
    CHECK(r.verified);
    CHECK(r.images_in_archive == 7300);
    CHECK(r.images == 25);
}

TEST_CASE("prepare utkface: labels, faces, features, stratified splits and a cache", "[datasets]") {
    REQUIRE_MODELS();
    ScratchHome h;
    DatasetDownloadOptions d;
    d.mirror = mirror_dir().string();
    d.limit = 40;
    download_dataset(h.home, utk_entry(), d);
    const fs::path dataset = h.home.datasets_dir() / "utkface";
    // Two files whose names carry no label.
    const fs::path some = fs::directory_iterator(dataset / "images")->path();
    fs::copy_file(some, dataset / "images" / "61_1_20170109142408075.jpg.chip.jpg");
    fs::copy_file(some, dataset / "images" / "unlabelled.jpg");

    const ModelSet models = test_model_set();
    PrepareOptions o;
    o.jobs = 2;
    o.analyze.upsample = 0;
    const fs::path out = dataset / "prepared";
    const json m = prepare_utkface(dataset, out, models, o);
    CHECK(m["images"] == 42);
    CHECK(m["malformed"] == 2);
    CHECK(m["malformed_examples"].size() == 2);
    CHECK(m["usable"].get<int>() + m["no_face"].get<int>() + m["unreadable"].get<int>() == 40);
    CHECK(m["usable"].get<int>() >= 36);  // measured: UTKFace crops, HOG without upsampling
    CHECK(m["dim"] == attribute_feature_size());
    const auto& c = m["counts"];
    CHECK(c["train"]["total"].get<int>() + c["val"]["total"].get<int>() + c["test"]["total"].get<int>() ==
          m["usable"].get<int>());
    CHECK(c["test"]["total"].get<int>() > 0);

    const PreparedDataset p = load_prepared(out);
    REQUIRE(p.samples.size() == m["usable"].get<std::size_t>());
    CHECK(p.dim == attribute_feature_size());
    for (const auto& s : p.samples) {
        const auto label = parse_utkface_name(s.file);
        REQUIRE(label);
        CHECK(s.age == label->age);
        CHECK(s.gender == label->gender);
        CHECK(s.cnn_p_male >= 0);
        CHECK(s.cnn_p_male <= 1);
    }
    // Features are the descriptor + the block, not zeros.
    double desc = 0, block = 0;
    for (std::size_t k = 0; k < p.dim; ++k) (k < 128 ? desc : block) += p.row(0)[k] * p.row(0)[k];
    CHECK(desc > 0.1);
    CHECK(block > 0.1);

    // Second run: everything from the cache, same splits.
    const json again = prepare_utkface(dataset, out, models, o);
    CHECK(again["reused_from_cache"] == 40);
    const PreparedDataset q = load_prepared(out);
    REQUIRE(q.samples.size() == p.samples.size());
    for (std::size_t i = 0; i < p.samples.size(); ++i) {
        CHECK(q.samples[i].split == p.samples[i].split);
        CHECK(std::equal(p.row(i), p.row(i) + p.dim, q.row(i)));
    }

    // A torn prepared set (features rewritten, manifest not) is refused.
    write_text(out / "features.f32", "xxxx");
    CHECK_THROWS_WITH(load_prepared(out), Catch::Contains("inconsistent"));
    CHECK_THROWS_WITH(load_prepared(out / "nothing"), Catch::Contains("faceq prepare"));
}

TEST_CASE("prepare refuses empty and unlabelled datasets clearly", "[datasets]") {
    REQUIRE_MODELS();
    TempDir dir;
    const ModelSet models = test_model_set();
    PrepareOptions o;
    CHECK_THROWS_WITH(prepare_utkface(dir / "nothing", dir / "out", models, o), Catch::Contains("download dataset"));
    fs::create_directories(dir / "empty" / "images");
    CHECK_THROWS_WITH(prepare_utkface(dir / "empty", dir / "out", models, o), Catch::Contains("no images"));
    fs::create_directories(dir / "unlabelled" / "images");
    fs::copy_file(data_dir() / "face_recognition_examples" / "tests" / "test_images" / "obama.jpg",
                  dir / "unlabelled" / "images" / "obama.jpg");
    CHECK_THROWS_WITH(prepare_utkface(dir / "unlabelled", dir / "out", models, o),
                      Catch::Contains("no labelled images"));
    o.val_fraction = 0.6;
    o.test_fraction = 0.5;
    CHECK_THROWS_AS(prepare_utkface(dir / "unlabelled", dir / "out", models, o), Error);
}

TEST_CASE("prepare identities: a folder per person, gallery/probe and train/test", "[datasets]") {
    REQUIRE_MODELS();
    TempDir dir;
    const fs::path people = data_dir() / "faceapi_bbt" / "examples" / "images";
    PrepareOptions o;
    o.jobs = 2;
    o.min_images = 3;
    o.test_fraction = 0.5;
    const json m = prepare_identities(people, dir / "bbt", test_model_set(), o);
    CHECK(m["people"] == 8);
    const auto& c = m["counts"];
    CHECK(c["train"]["people"].get<int>() + c["test"]["people"].get<int>() ==
          8 - m["people_with_too_few_images"].get<int>());
    const PreparedDataset p = load_prepared(dir / "bbt");
    CHECK(p.dim == 128);
    std::map<std::string, std::map<std::string, int>> roles;
    std::map<std::string, std::set<std::string>> splits;
    for (const auto& s : p.samples) {
        roles[s.person][s.role]++;
        splits[s.person].insert(s.split);
        CHECK(s.file.rfind(s.person + "/", 0) == 0);
    }
    for (const auto& [person, r] : roles) {
        INFO(person);
        CHECK(r.count("gallery") == 1);
        CHECK(r.count("probe") == 1);
        CHECK(splits[person].size() == 1);  // a person is all train or all test
    }
    o.min_images = 50;
    CHECK_THROWS_WITH(prepare_identities(people, dir / "none", test_model_set(), o), Catch::Contains("50 or more"));
    CHECK_THROWS_AS(prepare_identities(dir / "missing", dir / "x", test_model_set(), o), Error);
}
