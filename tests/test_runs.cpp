// tests/test_runs.cpp — a training run's lifecycle (faceq/training/runs.hpp):
// a body that returns ends FINISHED with its metrics, one that throws ends
// FAILED with the message and the exception goes on, Error{interrupted} ends
// FAILED and reads as interrupted; and source_version() of a git tree (even
// one whose path would mean something to a shell) or of an installed tree.
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/subprocess.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/registry.hpp"
#include "faceq/training/runs.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

RunSpec smoke_spec() {
    RunSpec spec;
    spec.experiment = "smoke";
    spec.params = json{{"images", 12}};
    spec.tags = json{{"model_name", "smoke"}};
    spec.source_version = "v1-abc";
    return spec;
}

void git(const std::vector<std::string>& args) {
    std::vector<std::string> all{"git"};
    all.insert(all.end(), args.begin(), args.end());
    const ProgramResult r = run_program(all, true);
    INFO(r.output);
    REQUIRE(r.succeeded());
}

}  // namespace

TEST_CASE("a run whose body returns ends FINISHED with its metrics and artifacts", "[runs]") {
    TempDir dir;
    Registry registry(Home{dir.path()});
    std::vector<std::string> log;
    std::string seen_id;
    const RunOutcome out = run_experiment(
        registry, smoke_spec(),
        [&](Registry& r, const RunInfo& run) {
            seen_id = run.id;
            CHECK(r.run(run.id).status == RunStatus::running);
            r.log_metric(run.id, "loss", 1.5, 0);
            write_text(run.artifacts_dir() / "head.json", "{}");
            r.update_run(run.id, json::object(), json::object(), json{{"val_age_mae", 4.2}});
        },
        [&](const std::string& line) { log.push_back(line); });
    CHECK_FALSE(out.interrupted);
    CHECK(out.run.id == seen_id);
    CHECK(out.run.status == RunStatus::finished);
    CHECK(out.run.metrics["val_age_mae"] == 4.2);
    CHECK(out.run.artifacts == std::vector<std::string>{"head.json"});
    CHECK(out.run.git_version == "v1-abc");
    CHECK(out.run.params["images"] == 12);
    CHECK(out.run.tags["model_name"] == "smoke");
    CHECK(out.run.error.empty());
    REQUIRE(log.size() == 1);
    CHECK(log[0] == "run " + seen_id + " (smoke) started");
}

TEST_CASE("a body that throws leaves the run FAILED with its message, and the error goes on", "[runs]") {
    TempDir dir;
    Registry registry(Home{dir.path()});
    std::string id;
    CHECK_THROWS_MATCHES(run_experiment(registry, smoke_spec(),
                                        [&](Registry&, const RunInfo& run) {
                                            id = run.id;
                                            throw Error(ErrorKind::invalid_input, "no samples in the val split");
                                        },
                                        {}),
                         Error,
                         Catch::Predicate<Error>([](const Error& e) { return e.kind() == ErrorKind::invalid_input; }));
    RunInfo run = registry.run(id);
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error == "no samples in the val split");
    CHECK_FALSE(run.end_time.empty());

    // Not only faceq's errors.
    CHECK_THROWS_AS(run_experiment(registry, smoke_spec(),
                                   [&](Registry&, const RunInfo& r) {
                                       id = r.id;
                                       throw std::runtime_error("out of range");
                                   },
                                   {}),
                    std::runtime_error);
    run = registry.run(id);
    CHECK(run.status == RunStatus::failed);
    CHECK(run.error == "out of range");
}

TEST_CASE("an interrupted body leaves the run FAILED and says so without throwing", "[runs]") {
    TempDir dir;
    Registry registry(Home{dir.path()});
    const RunOutcome out = run_experiment(registry, smoke_spec(),
                                          [](Registry& r, const RunInfo& run) {
                                              r.log_metric(run.id, "loss", 2.0, 0);
                                              throw Error(ErrorKind::interrupted, "prepare interrupted after 7 images");
                                          },
                                          {});
    CHECK(out.interrupted);
    CHECK(out.run.status == RunStatus::failed);
    CHECK(out.run.error == "prepare interrupted after 7 images");
    CHECK_FALSE(out.run.end_time.empty());
    CHECK(registry.metric_history(out.run.id).size() == 1);
}

TEST_CASE("source_version describes the git tree holding data/, without a shell", "[runs]") {
    TempDir dir;
    // A path a shell would act on, were it ever given to one.
    const fs::path tree = dir / "it's $(touch pwned) `x`; tree";
    fs::create_directories(tree / "data");
    CHECK(source_version(tree / "data").empty());  // no .git: an installed faceq

    git({"-C", tree.string(), "init", "-q"});
    git({"-C", tree.string(), "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty",
         "-m", "first"});
    const std::string v = source_version(tree / "data");
    CHECK(v.size() == 12);  // --abbrev=12, no tags, clean
    CHECK(v.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK_FALSE(fs::exists(dir / "pwned"));
    CHECK_FALSE(fs::exists(tree / "pwned"));

    write_text(tree / "data" / "new.txt", "x");
    git({"-C", tree.string(), "add", "data/new.txt"});
    CHECK(source_version(tree / "data") == v + "-dirty");
}
