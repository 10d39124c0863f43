// tests/test_cli_training.cpp — datasets and training from the command line
// (the real binary, a TempDir home whose models/ links to the test home's):
// download dataset → prepare → train → register-model → deploy → analyze
// with ages; train smoke; clear errors for missing or unlabelled data; and a
// run stopped by Ctrl-C (FAILED, exit 130) or killed (FAILED when read).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "faceq/models/registry.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<json> json_lines(const std::string& out) {
    std::vector<json> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line[0] == '{') lines.push_back(json::parse(line));
    return lines;
}

struct ScratchHome {
    TempDir dir;
    ScratchHome() { fs::create_directory_symlink(test_home().models_dir(), dir / "models"); }
    Home home() const { return Home{dir.path()}; }
    CommandResult run(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::minutes(5)) {
        args.insert(args.begin(), {"--home", dir.path().string()});
        return run_faceq(args, {}, {"FACEQ_MIRROR=" + mirror_dir().string()}, timeout);
    }
};

// Starts faceq without waiting (stdout/stderr to /dev/null); returns its pid.
pid_t spawn_faceq(const std::vector<std::string>& args) {
    std::vector<std::string> argv{FACEQ_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c;
    for (auto& a : argv) c.push_back(const_cast<char*>(a.c_str()));
    c.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        ::dup2(null, 2);
        ::execv(c[0], c.data());
        ::_exit(127);
    }
    return pid;
}

// Waits until `home` has a RUNNING run (or `timeout`); returns its id.
std::string wait_for_running_run(const Home& home, std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        for (const auto& r : Registry(home).runs())
            if (r.status == RunStatus::running) return r.id;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "";
}

}  // namespace

TEST_CASE("download, prepare, train, register, deploy, then analyze gives ages", "[training][cli]") {
    REQUIRE_MODELS();
    ScratchHome h;
    auto r = h.run({"download", "dataset", "utkface", "--limit", "120"});
    REQUIRE(r.exit_code == 0);
    auto rec = json::parse(r.out);
    CHECK(rec["images"] == 120);
    CHECK(rec["verified"] == true);
    r = h.run({"download", "dataset", "utkface", "--limit", "120"});
    CHECK(json::parse(r.out)["status"] == "already installed");

    r = h.run({"prepare", "utkface", "--jobs", "2"});
    REQUIRE(r.exit_code == 0);
    const json manifest = json::parse(r.out);
    CHECK(manifest["usable"].get<int>() >= 110);
    CHECK(r.err.find("prepared ") != std::string::npos);

    r = h.run({"train", "age-gender", "--gamma", "1", "--lambda", "0.1", "--lambda", "0.3"});
    REQUIRE(r.exit_code == 0);
    const json run = json::parse(r.out);
    CHECK(run["status"] == "FINISHED");
    CHECK(run["metrics"].contains("test_age_mae"));
    CHECK(run["metrics"].contains("test_gender_acc_0-12"));
    CHECK(run["artifacts"] == json({"age_gender.f32", "age_gender.json", "metrics.json"}));
    CHECK(r.err.find("test band") != std::string::npos);  // the per-band report
    const RunInfo info = Registry(h.home()).run(run["run_id"].get<std::string>());
    CHECK(info.tags["embedder"].get<std::string>().find('@') != std::string::npos);
    CHECK(Registry(h.home()).metric_history(info.id).size() >= 2 * 4);  // 2 candidates x 4 metrics

    // Nothing deployed yet: analyze says age null.
    const std::string photo = (data_dir() / "face_recognition_examples/tests/test_images/obama.jpg").string();
    r = h.run({"analyze", photo});
    REQUIRE(r.exit_code == 0);
    CHECK(json::parse(r.out)["faces"][0]["age"].is_null());
    CHECK(json::parse(r.out)["models"]["age"].is_null());

    REQUIRE(h.run({"register-model"}).exit_code == 0);
    r = h.run({"deploy"});
    REQUIRE(r.exit_code == 0);
    CHECK(json::parse(r.out)["production"] == 1);

    r = h.run({"analyze", photo});
    REQUIRE(r.exit_code == 0);
    const json out = json::parse(r.out);
    CHECK(out["faces"][0]["age"].is_number());
    CHECK(out["models"]["age"].get<std::string>().rfind("age-gender@1:", 0) == 0);

    r = h.run({"models", "list", "--format", "json"});
    CHECK(json_lines(r.out).at(0)["aliases"] == json({"production"}));
}

TEST_CASE("train smoke runs the pipeline end to end", "[training][cli]") {
    REQUIRE_MODELS();
    ScratchHome h;
    auto r = h.run({"train", "smoke"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("download dataset utkface") != std::string::npos);

    REQUIRE(h.run({"download", "dataset", "utkface", "--limit", "60"}).exit_code == 0);
    r = h.run({"train", "smoke", "--images", "40"});
    REQUIRE(r.exit_code == 0);
    const json run = json::parse(r.out);
    CHECK(run["experiment"] == "smoke");
    CHECK(run["status"] == "FINISHED");
    CHECK(run["metrics"]["reload_age_difference"].get<double>() < 1e-3);
    r = h.run({"register-model", "--name", "smoke"});
    REQUIRE(r.exit_code == 0);
    CHECK(json::parse(r.out)["version"] == 1);
    r = h.run({"runs", "list", "--experiment", "smoke", "--status", "finished", "--format", "json"});
    CHECK(json_lines(r.out).size() == 1);
}

TEST_CASE("clear errors for missing, empty and unlabelled data", "[training][cli]") {
    REQUIRE_MODELS();
    ScratchHome h;
    auto r = h.run({"prepare", "utkface"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("faceq download dataset utkface") != std::string::npos);
    r = h.run({"train", "age-gender"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("faceq prepare utkface") != std::string::npos);
    CHECK(Registry(h.home()).runs().empty());  // no run for a dataset that is not there

    fs::create_directories(h.dir / "unlabelled" / "images");
    fs::copy_file(data_dir() / "face_recognition_examples/tests/test_images/obama.jpg",
                  h.dir / "unlabelled" / "images" / "obama.jpg");
    r = h.run({"prepare", "utkface", "--data", (h.dir / "unlabelled").string()});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("no labelled images") != std::string::npos);
    r = h.run({"train", "recognition"});
    CHECK(r.exit_code == 2);  // --data is required
    r = h.run({"download", "dataset", "imagenet"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("unknown dataset") != std::string::npos);
}

// A folder of `n` identity folders of `from` (the first n with at least
// `min_photos` photos, by name), as symbolic links.
fs::path identity_subset(const fs::path& from, std::size_t n, std::size_t min_photos, const fs::path& to) {
    std::vector<fs::path> people;
    for (const auto& e : fs::directory_iterator(from))
        if (e.is_directory() && static_cast<std::size_t>(std::distance(fs::directory_iterator(e.path()),
                                                                       fs::directory_iterator())) >= min_photos)
            people.push_back(e.path());
    std::sort(people.begin(), people.end());
    fs::create_directories(to);
    for (std::size_t i = 0; i < n && i < people.size(); ++i)
        fs::create_directory_symlink(people[i], to / people[i].filename());
    return to;
}

TEST_CASE("train recognition on two prepared sets: the strictest threshold, each set reported", "[training][cli]") {
    REQUIRE_MODELS();
    ScratchHome h;
    // Everyday photos (CelebA, 20 people) and portraits (LFW, 30).
    const fs::path celeba = identity_subset(data_dir() / "celeba-dev", 20, 8, h.dir / "src" / "celeba");
    const fs::path lfw = identity_subset(data_dir() / "lfw-dev" / "lfw-deepfunneled", 30, 5, h.dir / "src" / "lfw");
    for (const auto& dir : {celeba, lfw}) {
        const auto r = h.run({"prepare", "identities", dir.string(), "--jobs", "2"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
    }
    // --persons 1: 1% of single comparisons, which ~2,000 impostor pairs a set resolve.
    auto r = h.run({"train", "recognition", "--data", "celeba", "--data", "lfw", "--far", "0.01", "--persons", "1"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto lines = json_lines(r.out);
    REQUIRE(lines.size() == 1);
    const json& m = lines[0]["metrics"];
    const double own_celeba = m["celeba.threshold_at_far"].get<double>(),
                 own_lfw = m["lfw.threshold_at_far"].get<double>();
    CHECK(m["threshold"].get<double>() == Approx(std::min(own_celeba, own_lfw)));
    for (const double own : {own_celeba, own_lfw}) {
        CHECK(own > 0.3);  // measured 0.50 and 0.47 on the whole sets at 1% of 100 persons
        CHECK(own < 0.75);
    }
    for (const std::string set : {"celeba", "lfw"}) {
        INFO(set);
        CHECK(m[set + ".far_at_threshold"].get<double>() <= 0.0101);  // the rule holds on each set's train people
        CHECK(m[set + ".test_tar_at_threshold"].get<double>() > 0.5);
        CHECK(m[set + ".test_far_at_threshold"].get<double>() < 0.05);  // and roughly on its unseen people
        CHECK(r.err.find(set) != std::string::npos);                    // a row of the table
    }
    CHECK(r.err.find("FAR at threshold (test)") != std::string::npos);
    const fs::path run_dir = lines[0]["path"].get<std::string>();
    std::ifstream in(run_dir / "artifacts" / "calibration.json");
    const json cal = json::parse(in);
    CHECK(cal["sets"].size() == 2);
    CHECK(cal["threshold"] == m["threshold"]);

    const auto runs = Registry(h.home()).runs().size();
    r = h.run({"train", "recognition", "--data", "lfw", "--data", "lfw"});
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(Registry(h.home()).runs().size() == runs);  // refused before a run is recorded
    CHECK(r.err.find("two prepared sets are named 'lfw'") != std::string::npos);
}

TEST_CASE("Ctrl-C leaves a FAILED run and exit code 130; a killed run reads FAILED", "[training][cli]") {
    REQUIRE_MODELS();
    ScratchHome h;
    REQUIRE(h.run({"download", "dataset", "utkface", "--limit", "400"}).exit_code == 0);
    for (int sig : {SIGINT, SIGKILL}) {
        INFO("signal " << sig);
        // A smoke run prepares 400 images first: seconds of work to interrupt.
        const pid_t pid = spawn_faceq({"--home", h.dir.path().string(), "train", "smoke", "--images", "400"});
        REQUIRE(pid > 0);
        const std::string id = wait_for_running_run(h.home(), std::chrono::seconds(60));
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        ::kill(pid, sig);
        int status = 0;
        ::waitpid(pid, &status, 0);
        REQUIRE_FALSE(id.empty());
        if (sig == SIGINT) {
            REQUIRE(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 130);
        } else {
            CHECK(WIFSIGNALED(status));
        }
        const RunInfo run = Registry(h.home()).run(id);
        CHECK(run.status == RunStatus::failed);
        CHECK_FALSE(run.error.empty());
        CHECK_FALSE(run.end_time.empty());
    }
    const auto r = h.run({"runs", "list", "--status", "failed", "--format", "json"});
    CHECK(json_lines(r.out).size() == 2);
}
