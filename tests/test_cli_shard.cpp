// tests/test_cli_shard.cpp — `faceq analyze --shard` end to end: the real
// binary on real photos (copies of 18 LFW portraits from ../shared/data, 12
// in a folder and 6 in a subfolder: small, so the ~20 runs take seconds),
// checking that the shards of a batch are disjoint and cover it for
// N = 1, 2, 3, hold the photos shard_of() assigns by their folder-relative
// keys, agree from run to run and whatever path the folder is reached by,
// split -r folders and stdin lists too, follow a Kubernetes Indexed Job's or
// a Slurm array's variables, refuse bad values with one line and exit 2, and
// that shards storing into one gallery record every photo once, a rerun
// nothing.
// Every run sets or unsets the scheduler variables itself, so that the suite
// gives the same answers inside a Slurm job or a Kubernetes pod.
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "faceq/base/shard.hpp"
#include "json_lines.hpp"
#include "test_models.hpp"
#include "test_sqlite.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

const std::vector<std::string> no_scheduler{"JOB_COMPLETION_INDEX",   "FACEQ_SHARD_COUNT",    "SLURM_ARRAY_TASK_ID",
                                            "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"};

// no_scheduler with `set` ("NAME=value") applied after it.
std::vector<std::string> environment(const std::vector<std::string>& set = {}) {
    std::vector<std::string> env = no_scheduler;
    env.insert(env.end(), set.begin(), set.end());
    return env;
}

struct Run {
    CommandResult result;
    std::vector<json> records;
};

// `faceq --home HOME analyze ARGS...` with the scheduler variables `env`.
Run analyze(const std::string& home, const std::vector<std::string>& args, const std::vector<std::string>& env = {},
            const std::string& stdin_text = {}) {
    std::vector<std::string> argv{"--home", home, "analyze", "--jobs", "2"};
    argv.insert(argv.end(), args.begin(), args.end());
    Run run{run_faceq(argv, stdin_text, environment(env), std::chrono::minutes(3)), {}};
    INFO("analyze " << args.back() << " stderr: " << run.result.err);
    REQUIRE(run.result.exit_code == 0);
    run.records = json_lines(run.result.out);
    return run;
}

// The "file" of each record, as a set; fails on a file met twice.
std::set<std::string> files(const std::vector<json>& records) {
    std::set<std::string> out;
    for (const auto& r : records) {
        INFO("record: " << r.dump());
        CHECK(out.insert(r.at("file").get<std::string>()).second);
    }
    return out;
}

std::string shard_arg(int k, int n) { return std::to_string(k) + "/" + std::to_string(n); }

// photos/ with 12 LFW portraits and photos/sub/ with 6 more, each the first
// photo of a person (sorted), copied under its own name.
class Photos {
public:
    Photos() {
        namespace fs = std::filesystem;
        const fs::path lfw = data_dir() / "lfw-dev" / "lfw-deepfunneled";
        std::vector<fs::path> people;
        for (const auto& e : fs::directory_iterator(lfw))
            if (e.is_directory()) people.push_back(e.path());
        std::sort(people.begin(), people.end());
        fs::create_directories(dir_ / "photos" / "sub");
        for (std::size_t i = 0; i < 18 && i < people.size(); ++i) {
            std::vector<fs::path> shots;
            for (const auto& e : fs::directory_iterator(people[i])) shots.push_back(e.path());
            const auto first = *std::min_element(shots.begin(), shots.end());
            fs::copy_file(first, folder() / (i < 12 ? "" : "sub") / first.filename());
        }
    }
    std::filesystem::path folder() const { return dir_ / "photos"; }
    std::filesystem::path root() const { return dir_.path(); }

private:
    TempDir dir_;
};

// A home of its own (its gallery) sharing the test home's models.
struct ShardHome {
    TempDir dir;
    ShardHome() { std::filesystem::create_directory_symlink(test_home().models_dir(), dir / "models"); }
    std::string root() const { return dir.path().string(); }
};

}  // namespace

// The key of each analysed file: its path relative to `folder`.
std::set<std::string> keys(const std::set<std::string>& paths, const std::filesystem::path& folder) {
    std::set<std::string> out;
    for (const auto& p : paths) out.insert(std::filesystem::path(p).lexically_relative(folder).generic_string());
    return out;
}

TEST_CASE("analyze --shard K/N: the shards are disjoint, cover the batch, and are the same every run", "[cli][shard]") {
    REQUIRE_MODELS();
    const std::string home = test_home().root.string();
    const Photos photos;
    const std::string folder = photos.folder().string();
    std::set<std::string> all;  // the folder's own photos, as analyze names them
    for (const auto& e : std::filesystem::directory_iterator(folder))
        if (e.is_regular_file()) all.insert(e.path().string());
    REQUIRE(all.size() == 12);
    CHECK(files(analyze(home, {"--shard", "0/1", folder}).records) == all);

    std::map<std::string, std::set<std::string>> split;  // "k/n" -> files
    for (std::uint32_t n = 2; n <= 3; ++n) {
        std::set<std::string> seen;
        std::size_t total = 0;
        for (std::uint32_t k = 0; k < n; ++k) {
            const auto run = analyze(home, {"--shard", shard_arg(k, n), folder});
            const auto mine = files(run.records);
            // stderr says which shard and how much of the batch it took.
            CHECK(run.result.err.find("shard " + shard_arg(k, n) + ": " + std::to_string(mine.size()) +
                                      " of 12 inputs") != std::string::npos);
            // Each photo is where the documented hash of its folder-relative key puts it.
            for (const auto& key : keys(mine, folder)) {
                INFO("key " << key);
                CHECK(shard_of(key, n) == k);
            }
            total += mine.size();
            seen.insert(mine.begin(), mine.end());
            split[shard_arg(k, n)] = mine;
        }
        INFO("n = " << n);
        CHECK(total == all.size());  // no file in two shards
        CHECK(seen == all);          // none in no shard
    }
    // Stable: a second run of a shard takes the same photos.
    CHECK(files(analyze(home, {"--shard", "1/3", folder}).records) == split["1/3"]);

    // The folder reached by another path (another worker's mount point,
    // with a trailing slash) splits the same way: keys are relative to the
    // folder. Shard 1 of 2 is the rest in both, so one run settles it.
    TempDir elsewhere;
    std::filesystem::create_directories(elsewhere / "mnt" / "data");
    const auto mount = elsewhere / "mnt" / "data" / "faces";
    std::filesystem::create_directory_symlink(folder, mount);
    const auto there = files(analyze(home, {"--shard", "0/2", mount.string() + "/"}).records);
    for (const auto& f : there) CHECK(f.rfind(mount.string(), 0) == 0);
    CHECK(keys(there, mount) == keys(split["0/2"], folder));
}

TEST_CASE("analyze --shard splits -r folders and stdin lists too", "[cli][shard]") {
    REQUIRE_MODELS();
    const std::string home = test_home().root.string();
    const Photos photos;
    const std::string folder = photos.folder().string();
    std::set<std::string> all;
    for (const auto& e : std::filesystem::recursive_directory_iterator(folder))
        if (e.is_regular_file()) all.insert(e.path().string());
    REQUIRE(all.size() == 18);
    const auto first = files(analyze(home, {"-r", "--shard", "0/2", folder}).records);
    const auto second = files(analyze(home, {"-r", "--shard", "1/2", folder}).records);
    CHECK(first.size() + second.size() == all.size());
    std::set<std::string> both = first;
    both.insert(second.begin(), second.end());
    CHECK(both == all);
    std::size_t in_sub = 0;
    for (const auto& key : keys(first, folder)) {
        INFO("key " << key);
        CHECK(shard_of(key, 2) == 0);
        in_sub += key.rfind("sub/", 0) == 0;
    }
    CHECK(in_sub > 0);  // the subfolder's photos are split too, keyed "sub/..."

    // Paths on stdin: each is keyed as given, and each lands in one shard.
    std::string list;
    for (const auto& f : all) list += f + "\n";
    const auto a = files(analyze(home, {"--shard", "0/2", "-"}, {}, list).records);
    const auto b = files(analyze(home, {"--shard", "1/2", "-"}, {}, list).records);
    for (const auto& f : a) CHECK(shard_of(f, 2) == 0);
    CHECK(a.size() + b.size() == all.size());
    std::set<std::string> ab = a;
    ab.insert(b.begin(), b.end());
    CHECK(ab == all);
}

TEST_CASE("analyze --shard auto follows a Kubernetes Indexed Job and a Slurm array job", "[cli][shard]") {
    REQUIRE_MODELS();
    const std::string home = test_home().root.string();
    const Photos photos;
    const std::string folder = photos.folder().string();
    const auto shard = [&](const std::string& spec, const std::vector<std::string>& env = {}) {
        return analyze(home, {"--shard", spec, folder}, env);
    };
    const auto zero = files(shard("0/2").records), one = files(shard("1/2").records);
    REQUIRE(zero != one);

    const auto k8s = shard("auto", {"JOB_COMPLETION_INDEX=1", "FACEQ_SHARD_COUNT=2"});
    CHECK(files(k8s.records) == one);
    CHECK(k8s.result.err.find("shard 1/2 (JOB_COMPLETION_INDEX=1, FACEQ_SHARD_COUNT=2)") != std::string::npos);
    // sbatch --array=1-2: task 1 is shard 0, task 2 is shard 1.
    const std::vector<std::string> array{"SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_COUNT=2"};
    auto env = array;
    env.push_back("SLURM_ARRAY_TASK_ID=1");
    CHECK(files(shard("auto", env).records) == zero);
    env.back() = "SLURM_ARRAY_TASK_ID=2";
    const auto slurm = shard("auto", env);
    CHECK(files(slurm.records) == one);
    CHECK(slurm.result.err.find("shard 1/2 (SLURM_ARRAY_TASK_ID=2") != std::string::npos);
}

TEST_CASE("analyze --shard: bad values and auto without a scheduler exit 2 with one line", "[cli][shard]") {
    REQUIRE_SHARED();
    TempDir empty_home;  // the errors come before any model is needed
    const std::string photo = (data_dir() / "dlib_faces" / "2008_002470.jpg").string();
    struct Case {
        std::string spec;
        std::vector<std::string> env;
        std::string says;
    };
    const std::vector<Case> cases{
        {"2/2", {}, "--shard 2/2: the index must be 0 to 1"},
        {"0/0", {}, "--shard 0/0: the number of shards must be at least 1"},
        {"x", {}, "--shard 'x': expected K/N"},
        {"-1/2", {}, "--shard '-1/2': expected K/N"},
        {"auto", {}, "looked for JOB_COMPLETION_INDEX with FACEQ_SHARD_COUNT"},
        {"auto", {"JOB_COMPLETION_INDEX=0"}, "FACEQ_SHARD_COUNT is not set"},
        {"auto", {"JOB_COMPLETION_INDEX=2", "FACEQ_SHARD_COUNT=2"}, "is not below FACEQ_SHARD_COUNT=2"},
        {"auto",
         {"SLURM_ARRAY_TASK_ID=5", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_COUNT=2"},
         "not a task of a contiguous array"},
    };
    for (const auto& c : cases) {
        const auto r = run_faceq({"--home", empty_home.path().string(), "analyze", "--shard=" + c.spec, photo}, {},
                                 environment(c.env));
        INFO("--shard " << c.spec << " stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK(r.err.rfind("faceq: error: ", 0) == 0);
        CHECK(r.err.find('\n') == r.err.size() - 1);  // one line
        CHECK(r.err.find(c.says) != std::string::npos);
    }
}

TEST_CASE("analyze --shard --store: shards fill one gallery once; a rerun of a shard records nothing new",
          "[cli][shard]") {
    REQUIRE_MODELS();
    ShardHome home;
    const Photos photos;
    const std::string folder = photos.folder().string();
    const auto db = home.dir / "faceq.db";
    const auto stored = [](const std::vector<json>& records) {
        std::set<std::string> out;
        for (const auto& r : records)
            if (r.value("stored", false)) out.insert(r.at("file").get<std::string>());
        return out;
    };
    const auto zero = analyze(home.root(), {"--store", "--shard", "0/2", folder});
    const auto one = analyze(home.root(), {"--store", "--shard", "1/2", folder});
    const auto a = stored(zero.records), b = stored(one.records);
    CHECK(a.size() == zero.records.size());
    CHECK(b.size() == one.records.size());
    std::set<std::string> both = a;
    both.insert(b.begin(), b.end());
    CHECK(both.size() == a.size() + b.size());  // no photo stored by both
    CHECK(both.size() == 12);                   // every photo stored by one
    CHECK(db_int(db, "SELECT count(*) FROM images") == 12);
    const auto detections = db_int(db, "SELECT count(*) FROM detections");
    CHECK(detections >= 12);  // every LFW portrait has a face

    // The scheduler retries shard 1 (a pod or node failed): its photos are
    // recorded already, so they are skipped, not stored twice.
    const auto retry = analyze(home.root(), {"--store", "--shard", "1/2", folder});
    CHECK(files(retry.records) == files(one.records));
    for (const auto& r : retry.records) CHECK(r.value("skipped", "") == "unchanged");
    CHECK(db_int(db, "SELECT count(*) FROM images") == 12);
    CHECK(db_int(db, "SELECT count(*) FROM detections") == detections);
}
