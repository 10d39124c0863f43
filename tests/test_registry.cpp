// tests/test_registry.cpp — the plain-file registry: runs (status, metrics,
// artifacts, a killed run reading FAILED), registered versions (numbering,
// artifact copies, never reusing a number), aliases (deploy, rollback), clean
// (never an aliased version), leftovers of a writer that crashed mid-write,
// several processes registering at once, and files edited by hand (the
// fuzzer's findings). Everything in a TempDir home.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/registry.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A FINISHED run with one artifact and the given final metrics.
std::string finished_run(Registry& r, const std::string& experiment, const json& metrics,
                         const json& tags = json::object()) {
    const RunInfo run = r.create_run(experiment, json{{"lambda", 0.1}}, tags);
    write_text(run.artifacts_dir() / "model.bin", "weights of " + run.id);
    r.update_run(run.id, json::object(), json::object(), metrics);
    r.end_run(run.id, RunStatus::finished);
    return run.id;
}

json read_json(const fs::path& p) {
    std::ifstream in(p);
    return json::parse(in);
}

}  // namespace

TEST_CASE("a run records status, params, step metrics and artifacts", "[registry]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    const RunInfo run =
        r.create_run("age-gender", json{{"gammas", {1, 2}}}, json{{"model_name", "age-gender"}}, "abc123");
    CHECK(run.status == RunStatus::running);
    CHECK(run.pid == ::getpid());
    CHECK(run.git_version == "abc123");
    CHECK(fs::is_directory(run.artifacts_dir()));

    r.log_metrics(run.id, json{{"train_loss", 2.5}, {"val_age_mae", 5.5}}, 0);
    r.log_metric(run.id, "val_age_mae", 4.9, 1);
    write_text(run.artifacts_dir() / "head.json", "{}");
    fs::create_directories(run.artifacts_dir() / "sub");
    write_text(run.artifacts_dir() / "sub" / "x.txt", "x");
    r.update_run(run.id, json{{"chosen", 1}}, json::object(), json{{"test_age_mae", 4.8}});
    r.end_run(run.id, RunStatus::finished);

    const RunInfo done = r.run(run.id);
    CHECK(done.status == RunStatus::finished);
    CHECK_FALSE(done.end_time.empty());
    CHECK(done.params["chosen"] == 1);
    CHECK(done.params["gammas"] == json({1, 2}));
    CHECK(done.metrics["test_age_mae"] == 4.8);
    CHECK(done.artifacts == std::vector<std::string>{"head.json", "sub/x.txt"});

    const auto history = r.metric_history(run.id);
    REQUIRE(history.size() == 3);
    CHECK(history[2].key == "val_age_mae");
    CHECK(history[2].value == 4.9);
    CHECK(history[2].step == 1);

    // jq-readable files: plain JSON documents and JSON Lines.
    const json on_disk = read_json(done.dir / "run.json");
    CHECK(on_disk["status"] == "FINISHED");
    CHECK(on_disk["experiment"] == "age-gender");
}

TEST_CASE("run ids sort by time and filters select runs", "[registry]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    const std::string a = finished_run(r, "age-gender", json{{"val_age_mae", 5.2}});
    const std::string b = finished_run(r, "age-gender", json{{"val_age_mae", 4.7}});
    const std::string c = finished_run(r, "smoke", json{{"val_age_mae", 9.0}});
    const RunInfo failed = r.create_run("age-gender", {}, {});
    r.end_run(failed.id, RunStatus::failed, "out of memory");

    const auto all = r.runs();
    REQUIRE(all.size() == 4);
    CHECK(all[0].id == failed.id);  // newest first
    CHECK(all[3].id == a);

    RunFilter f;
    f.experiment = "age-gender";
    f.status = RunStatus::finished;
    CHECK(r.runs(f).size() == 2);
    f.metrics = {parse_metric_condition("val_age_mae<5")};
    const auto good = r.runs(f);
    REQUIRE(good.size() == 1);
    CHECK(good[0].id == b);
    CHECK(r.runs(RunFilter{"", RunStatus::failed, {}})[0].error == "out of memory");
    CHECK(r.last_successful_run("age-gender").id == b);
    CHECK(r.last_successful_run("smoke").id == c);
    CHECK_THROWS_AS(r.last_successful_run("face-recognition"), Error);
}

TEST_CASE("metric conditions parse and compare", "[registry]") {
    const auto c = parse_metric_condition("test_gender_acc>=0.92");
    CHECK(c.key == "test_gender_acc");
    CHECK(c.op == ">=");
    CHECK(c.value == 0.92);
    CHECK(c.matches(json{{"test_gender_acc", 0.93}}));
    CHECK_FALSE(c.matches(json{{"test_gender_acc", 0.91}}));
    CHECK_FALSE(c.matches(json{{"other", 1}}));
    CHECK(parse_metric_condition("x!=3").matches(json{{"x", 2}}));
    CHECK(parse_metric_condition("x=3").matches(json{{"x", 3}}));
    for (const char* bad : {"x", "<3", "x<", "x<abc", "x!3"}) {
        INFO(bad);
        CHECK_THROWS_AS(parse_metric_condition(bad), Error);
    }
}

TEST_CASE("a run whose process died reads as FAILED", "[registry]") {
    TempDir dir;
    const Home home{dir.path()};
    // A child process starts a run and dies without ending it (as SIGKILL would leave it).
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(pipe_fds[0]);
        try {
            Registry child(home);
            const RunInfo run = child.create_run("age-gender", {}, {});
            (void)!::write(pipe_fds[1], run.id.data(), run.id.size());
        } catch (...) {
        }
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    char buf[128] = {};
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf - 1);
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(n > 0);
    const std::string id(buf, static_cast<std::size_t>(n));

    Registry r(home);
    const RunInfo run = r.run(id);
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error.find("ended without finishing") != std::string::npos);
    // ... and that was recorded, not only reported.
    CHECK(read_json(run.dir / "run.json")["status"] == "FAILED");

    // Our own RUNNING run is alive and stays RUNNING.
    const RunInfo mine = r.create_run("age-gender", {}, {});
    CHECK(r.run(mine.id).status == RunStatus::running);
}

TEST_CASE("RunGuard ends an unfinished run FAILED", "[registry]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    std::string id;
    try {
        const RunInfo run = r.create_run("smoke", {}, {});
        id = run.id;
        RunGuard guard(r, run.id);
        throw Error(ErrorKind::interrupted, "interrupted");
    } catch (const Error&) {
    }
    CHECK(r.run(id).status == RunStatus::failed);

    const RunInfo ok = r.create_run("smoke", {}, {});
    {
        RunGuard guard(r, ok.id);
        guard.finish();
    }
    CHECK(r.run(ok.id).status == RunStatus::finished);
}

TEST_CASE("register-model numbers versions and copies artifacts", "[registry]") {
    TempDir dir;
    const Home home{dir.path()};
    Registry r(home);
    const std::string run1 = finished_run(r, "age-gender", json{{"val_age_mae", 5.0}}, json{{"embedder", "e@1"}});
    const ModelVersion v1 = r.register_model("age-gender", run1, "first");
    CHECK(v1.version == 1);
    CHECK(v1.run_id == run1);
    CHECK(v1.metrics["val_age_mae"] == 5.0);
    CHECK(v1.tags["embedder"] == "e@1");
    CHECK(fs::is_regular_file(v1.artifacts_dir() / "model.bin"));
    const json vj = read_json(v1.dir / "version.json");
    CHECK(vj["artifacts"][0]["path"] == "model.bin");
    CHECK(vj["artifacts"][0]["sha256"] == sha256_file(v1.artifacts_dir() / "model.bin"));

    CHECK(r.register_model("age-gender", finished_run(r, "age-gender", json{{"val_age_mae", 4.0}})).version == 2);
    CHECK(r.register_model("age-gender", run1).version == 3);  // a run may be registered again
    CHECK(r.versions("age-gender").size() == 3);
    CHECK(r.model_names() == std::vector<std::string>{"age-gender"});

    // Only finished runs.
    const RunInfo running = r.create_run("age-gender", {}, {});
    CHECK_THROWS_AS(r.register_model("age-gender", running.id), Error);
    CHECK_THROWS_AS(r.register_model("age-gender", "no-such-run"), Error);
    CHECK_THROWS_AS(r.register_model("../escape", run1), Error);
    CHECK_THROWS_AS(r.versions("unknown"), Error);
}

TEST_CASE("deploy and rollback move production and previous", "[registry]") {
    TempDir dir;
    const Home home{dir.path()};
    Registry r(home);
    for (double mae : {5.0, 4.2, 4.6})
        r.register_model("age-gender", finished_run(r, "age-gender", json{{"val_age_mae", mae}}));

    CHECK_FALSE(find_deployed(home, "age-gender"));
    const auto best = r.best_version("age-gender", "val_age_mae", "min");
    REQUIRE(best);
    CHECK(best->version == 2);
    CHECK(r.best_version("age-gender", "val_age_mae", "max")->version == 1);
    CHECK_FALSE(r.best_version("age-gender", "no_such_metric", "min"));
    // Eligibility (e.g. the installed embedder) can exclude the best.
    CHECK(r.best_version("age-gender", "val_age_mae", "min", [](const ModelVersion& v) {
               return v.version != 2;
           })->version == 3);

    AliasMove m = r.deploy("age-gender", 2);
    CHECK(m.changed);
    CHECK_FALSE(m.previous);
    auto deployed = find_deployed(home, "age-gender");
    REQUIRE(deployed);
    CHECK(deployed->version == 2);
    CHECK(deployed->metrics["val_age_mae"] == 4.2);
    CHECK(fs::is_regular_file(deployed->artifacts_dir / "model.bin"));

    m = r.deploy("age-gender", 2);  // already there: nothing moves
    CHECK_FALSE(m.changed);
    CHECK_FALSE(r.aliases("age-gender").count("previous"));

    m = r.deploy("age-gender", 3);
    CHECK(m.production == 3);
    CHECK(m.previous == 2);
    // Rollback to previous, then undo the rollback.
    m = r.deploy("age-gender", r.aliases("age-gender").at("previous"));
    CHECK(m.production == 2);
    CHECK(m.previous == 3);
    CHECK(find_deployed(home, "age-gender", "previous")->version == 3);
    CHECK_THROWS_AS(r.deploy("age-gender", 9), Error);

    r.set_alias("age-gender", "staging", 1);
    CHECK(r.aliases("age-gender").at("staging") == 1);
    r.set_alias("age-gender", "staging", 0);
    CHECK_FALSE(r.aliases("age-gender").count("staging"));
    const auto versions = r.versions("age-gender");
    CHECK(versions[1].aliases == std::vector<std::string>{"production"});
    CHECK(versions[2].aliases == std::vector<std::string>{"previous"});
}

TEST_CASE("clean keeps the newest and every aliased version, numbers are never reused", "[registry]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    for (int i = 0; i < 6; ++i) r.register_model("m", finished_run(r, "m", json{{"score", i}}));
    r.deploy("m", 2);
    r.deploy("m", 1);  // production 1, previous 2
    const auto deleted = r.clean("m", 2);
    CHECK(deleted == std::vector<int>{3, 4});
    std::vector<int> left;
    for (const auto& v : r.versions("m")) left.push_back(v.version);
    CHECK(left == std::vector<int>{1, 2, 5, 6});
    CHECK(r.clean("m", 2).empty());
    CHECK_THROWS_AS(r.clean("m", 0), Error);

    r.clean("m", 1);  // 5 goes; 1 and 2 are aliased, 6 is the newest
    CHECK(r.versions("m").size() == 3);
    r.set_alias("m", "previous", 0);
    r.deploy("m", 6);  // production 6, previous 1
    CHECK(r.clean("m", 1) == std::vector<int>{2});
    // The next version continues after the highest ever handed out.
    CHECK(r.register_model("m", finished_run(r, "m", {})).version == 7);
}

TEST_CASE("leftovers of a crashed writer do not break the registry", "[registry]") {
    TempDir dir;
    const Home home{dir.path()};
    Registry r(home);
    const std::string run = finished_run(r, "m", json{{"score", 1}});
    r.register_model("m", run);
    const fs::path versions = home.registry_dir() / "models" / "m" / "versions";

    // A writer died while copying artifacts (before the rename) ...
    fs::create_directories(versions / ".tmp-2-99999" / "artifacts");
    write_text(versions / ".tmp-2-99999" / "artifacts" / "half.bin", "partial");
    // ... another one after the rename, before bumping next_version ...
    fs::copy(versions / "1", versions / "2", fs::copy_options::recursive);
    json v2 = read_json(versions / "2" / "version.json");
    v2["version"] = 2;
    write_text(versions / "2" / "version.json", v2.dump());
    // ... and one between writing a temp file and renaming it.
    write_text(home.registry_dir() / "models" / "m" / "model.json.tmp.99999.0", "{\"trunc");

    CHECK(r.versions("m").size() == 2);
    const ModelVersion v3 = r.register_model("m", run);
    CHECK(v3.version == 3);                              // 2 exists on disk: skipped even though next_version said 2
    CHECK_FALSE(fs::exists(versions / ".tmp-2-99999"));  // swept by the writer

    // A torn last line in metrics.jsonl (a crash mid-append) is skipped.
    const RunInfo live = r.create_run("m", {}, {});
    r.log_metric(live.id, "loss", 1.0, 0);
    {
        std::ofstream out(live.dir / "metrics.jsonl", std::ios::app);
        out << "{\"key\":\"loss\",\"val";
    }
    CHECK(r.metric_history(live.id).size() == 1);

    // A damaged run.json is listed as FAILED, not hidden, and does not hide others.
    write_text(live.dir / "run.json", "{not json");
    const auto all = r.runs();
    CHECK(all.size() == 2);
    CHECK(std::any_of(all.begin(), all.end(), [&](const RunInfo& x) {
        return x.id == live.id && x.status == RunStatus::failed && !x.error.empty();
    }));
}

TEST_CASE("processes registering at once get distinct versions", "[registry]") {
    TempDir dir;
    const Home home{dir.path()};
    Registry r(home);
    const std::string run = finished_run(r, "m", json{{"score", 1}});
    constexpr int writers = 4, each = 5;
    std::vector<pid_t> children;
    for (int w = 0; w < writers; ++w) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int code = 0;
            try {
                Registry mine(home);
                for (int i = 0; i < each; ++i) {
                    mine.register_model("m", run);
                    mine.deploy("m", 1);
                }
            } catch (...) {
                code = 1;
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    std::set<int> numbers;
    for (const auto& v : r.versions("m")) numbers.insert(v.version);
    CHECK(numbers.size() == writers * each);
    CHECK(*numbers.rbegin() == writers * each);
    CHECK(read_json(home.registry_dir() / "models" / "m" / "model.json")["next_version"] == writers * each + 1);
}

// Inputs of fuzz/fuzz_registry.cpp (docs/fuzzing.md): files that parse as JSON
// but are not what the CLI writes — a field missing, of another type, a float
// where an integer belongs. Each used to crash a reader (an assertion or
// undefined behaviour in nlohmann-json, or a json::type_error escaping the
// core); each must read as the file says or be Error{invalid_input}.
TEST_CASE("registry files edited by hand or by other tools never crash a reader", "[registry]") {
    TempDir dir;
    const Home home{dir.path()};
    Registry r(home);
    const std::string id = finished_run(r, "m", json{{"score", 1}}, json{{"headline_metrics", {"score"}}});
    const fs::path run_json = home.registry_dir() / "runs" / id / "run.json";
    const json good = read_json(run_json);
    const auto rewrite = [&](const json& j) { write_text(run_json, j.dump()); };
    const auto refused = [&] {
        try {
            (void)r.run(id);
        } catch (const Error& e) {
            return e.kind() == ErrorKind::invalid_input;
        }
        return false;
    };

    // What the fuzzer found first: end_time, git_version and error are
    // optional (null or absent), read through a const json.
    json j = good;
    j.erase("end_time");
    j.erase("git_version");
    j.erase("error");
    rewrite(j);
    const RunInfo sparse = r.run(id);
    CHECK(sparse.status == RunStatus::finished);
    CHECK(sparse.end_time.empty());
    CHECK(sparse.git_version.empty());

    for (const json& bad : {json::array(), json(5), json("run")}) {
        INFO(bad.dump());
        rewrite(bad);
        CHECK(refused());
        const auto listed = r.runs();  // listed as FAILED, not thrown
        REQUIRE(listed.size() == 1);
        CHECK(listed[0].status == RunStatus::failed);
    }
    for (const auto& [field, value] : std::vector<std::pair<std::string, json>>{
             {"status", 5}, {"host", json::array()}, {"pid", 1e300}, {"pid", "12"}, {"pid", 18446744073709551615ull}}) {
        INFO(field << " = " << value.dump());
        j = good;
        j[field] = value;
        j["status"] = field == "status" ? value : json("RUNNING");
        rewrite(j);
        CHECK(refused());
    }
    rewrite(good);

    // Step metrics: lines that are not metrics are skipped, odd fields read as absent.
    write_text(home.registry_dir() / "runs" / id / "metrics.jsonl",
               "{\"key\":5,\"value\":1}\n{\"key\":\"a\"}\n{\"key\":\"b\",\"value\":2,\"step\":1e300}\n"
               "{\"key\":\"c\",\"value\":3,\"timestamp\":7}\n[1]\n");
    const auto history = r.metric_history(id);
    REQUIRE(history.size() == 3);
    CHECK(std::isnan(history[0].value));
    CHECK(history[1].step == 0);
    CHECK(history[2].timestamp.empty());

    // A version number that is not an int, a model.json that is not an object, odd tags.
    r.register_model("m", id);
    const fs::path model = home.registry_dir() / "models" / "m";
    const json version = read_json(model / "versions" / "1" / "version.json");
    for (const json& number : {json(1e300), json("1"), json(-1), json(4294967297ll)}) {
        INFO(number.dump());
        json v = version;
        v["version"] = number;
        write_text(model / "versions" / "1" / "version.json", v.dump());
        CHECK_THROWS_AS(r.versions("m"), Error);
    }
    json v = version;
    v["tags"] = json{{"headline_metrics", {1, "score", nullptr}}};
    write_text(model / "versions" / "1" / "version.json", v.dump());
    CHECK(headline_metrics(r.versions("m")) == std::vector<std::string>{"score"});
    v["tags"] = 7;
    write_text(model / "versions" / "1" / "version.json", v.dump());
    CHECK(headline_metrics(r.versions("m")) == std::vector<std::string>{"score"});  // from the metrics
    write_text(model / "model.json", "[1]");
    try {
        (void)find_deployed(home, "m");
        FAIL("a model.json that is an array was read");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::invalid_input);
    }
}
