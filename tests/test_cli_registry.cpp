// tests/test_cli_registry.cpp — the registry commands end to end (the real
// binary on a TempDir home): register-model, deploy, models
// list|performance|rollback|clean|compare, runs list|show. Runs are made with
// the core's Registry (as a training would), so these need no models.
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "faceq/models/registry.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

std::vector<json> json_lines(const std::string& out) {
    std::vector<json> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(json::parse(line));
    return lines;
}

struct Home_ {
    TempDir dir;
    CommandResult run(std::vector<std::string> args) {
        args.insert(args.begin(), {"--home", dir.path().string()});
        return run_faceq(args);
    }
};

std::string age_gender_run(Registry& r, double val_mae, const std::string& embedder = "") {
    json tags{{"model_name", "age-gender"},
              {"primary_metric", "val_age_mae"},
              {"primary_mode", "min"},
              {"headline_metrics", {"val_age_mae", "test_gender_acc"}}};
    if (!embedder.empty()) tags["embedder"] = embedder;
    const RunInfo run = r.create_run("age-gender", json{{"lambda", val_mae / 10}}, tags);
    write_text(run.artifacts_dir() / "age_gender.json", "{}");
    r.update_run(run.id, {}, {}, json{{"val_age_mae", val_mae}, {"test_gender_acc", 0.9}});
    r.end_run(run.id, RunStatus::finished);
    return run.id;
}

}  // namespace

TEST_CASE("register-model, deploy, rollback and clean from the command line", "[registry][cli]") {
    Home_ h;
    Registry r(Home{h.dir.path()});
    const std::string first = age_gender_run(r, 5.1);

    // Default run: the newest finished one for the name.
    auto res = h.run({"register-model"});
    REQUIRE(res.exit_code == 0);
    auto v = json_lines(res.out);
    REQUIRE(v.size() == 1);
    CHECK(v[0]["version"] == 1);
    CHECK(v[0]["run_id"] == first);

    const std::string better = age_gender_run(r, 4.6);
    age_gender_run(r, 4.9);
    CHECK(h.run({"register-model", "--run", better}).exit_code == 0);  // version 2
    CHECK(h.run({"register-model"}).exit_code == 0);                   // version 3 (4.9)

    // deploy picks the best by the runs' primary metric.
    res = h.run({"deploy"});
    REQUIRE(res.exit_code == 0);
    auto move = json::parse(res.out);
    CHECK(move["production"] == 2);
    CHECK(move["changed"] == true);
    CHECK(move["previous"].is_null());
    CHECK(find_deployed(Home{h.dir.path()}, "age-gender")->version == 2);

    res = h.run({"deploy"});  // again: nothing changes
    CHECK(json::parse(res.out)["changed"] == false);
    res = h.run({"deploy", "--metric", "val_age_mae", "--mode", "max"});
    CHECK(json::parse(res.out)["production"] == 1);
    CHECK(json::parse(res.out)["previous"] == 2);
    res = h.run({"deploy", "--version", "3"});
    CHECK(json::parse(res.out)["production"] == 3);
    CHECK(json::parse(res.out)["previous"] == 1);

    // models list / performance / compare.
    res = h.run({"models", "list", "--format", "json"});
    REQUIRE(res.exit_code == 0);
    auto versions = json_lines(res.out);
    REQUIRE(versions.size() == 3);
    CHECK(versions[2]["aliases"] == json({"production"}));
    CHECK(versions[0]["aliases"] == json({"previous"}));
    res = h.run({"models", "list"});
    CHECK(res.out.find("production") != std::string::npos);
    res = h.run({"models", "performance"});
    REQUIRE(res.exit_code == 0);
    CHECK(res.out.find("val_age_mae") != std::string::npos);
    CHECK(res.out.find("4.6") != std::string::npos);
    res = h.run({"models", "compare", "1", "2"});
    REQUIRE(res.exit_code == 0);
    CHECK(res.out.find("-0.5") != std::string::npos);  // val_age_mae 4.6 - 5.1
    CHECK(h.run({"models", "compare", "1", "7"}).exit_code == 1);

    // rollback: to previous by default, then to a named version.
    res = h.run({"models", "rollback"});
    REQUIRE(res.exit_code == 0);
    CHECK(json::parse(res.out)["production"] == 1);
    CHECK(json::parse(res.out)["previous"] == 3);
    res = h.run({"models", "rollback", "2"});
    CHECK(json::parse(res.out)["production"] == 2);

    // clean never deletes an aliased version.
    for (double mae : {6.0, 6.1, 6.2}) {
        age_gender_run(r, mae);
        REQUIRE(h.run({"register-model"}).exit_code == 0);
    }
    res = h.run({"models", "clean", "--keep", "2", "--dry-run"});
    CHECK(json::parse(res.out)["deleted"] == json({3, 4}));
    CHECK(h.run({"models", "list", "--format", "json"}).out.size() > 0);
    res = h.run({"models", "clean", "--keep", "2"});
    REQUIRE(res.exit_code == 0);
    CHECK(json::parse(res.out)["deleted"] == json({3, 4}));  // 1 (previous) and 2 (production) stay
    versions = json_lines(h.run({"models", "list", "--format", "json"}).out);
    std::vector<int> left;
    for (const auto& x : versions) left.push_back(x["version"].get<int>());
    CHECK(left == std::vector<int>{1, 2, 5, 6});
    CHECK(h.run({"models", "clean", "--keep", "0"}).exit_code == 2);
}

TEST_CASE("deploy respects the embedder a version was trained for", "[registry][cli]") {
    Home_ h;
    Registry r(Home{h.dir.path()});
    // No embedder is installed in this home: nothing to compare against, so
    // every version is eligible.
    age_gender_run(r, 4.0, "other_embedder@123");
    REQUIRE(h.run({"register-model"}).exit_code == 0);
    CHECK(h.run({"deploy"}).exit_code == 0);
}

TEST_CASE("models check says whether a usable production version exists", "[registry][cli]") {
    Home_ h;
    Registry r(Home{h.dir.path()});
    auto res = h.run({"models", "check"});
    CHECK(res.exit_code == 1);
    CHECK(json::parse(res.out)["usable"] == false);
    age_gender_run(r, 4.0);
    REQUIRE(h.run({"register-model"}).exit_code == 0);
    CHECK(h.run({"models", "check"}).exit_code == 1);  // registered, not deployed
    REQUIRE(h.run({"deploy"}).exit_code == 0);
    res = h.run({"models", "check"});
    CHECK(res.exit_code == 0);
    CHECK(json::parse(res.out)["production"] == 1);
    CHECK(json::parse(res.out)["usable"] == true);
}

TEST_CASE("registry command errors", "[registry][cli]") {
    Home_ h;
    auto res = h.run({"register-model"});
    CHECK(res.exit_code == 1);
    CHECK(res.err.find("no finished run for model 'age-gender'") != std::string::npos);
    CHECK(res.err.find("faceq: error: ") == 0);
    res = h.run({"deploy", "--name", "nothing"});
    CHECK(res.exit_code == 1);
    res = h.run({"runs", "show", "no-such-run"});
    CHECK(res.exit_code == 1);
    CHECK(res.err.find("no run 'no-such-run'") != std::string::npos);
    CHECK(h.run({"runs", "list", "--metric", "nonsense"}).exit_code == 2);
    CHECK(h.run({"models", "rollback"}).exit_code == 1);  // no model at all
}

TEST_CASE("runs list and show with filters", "[registry][cli]") {
    Home_ h;
    Registry r(Home{h.dir.path()});
    const std::string good = age_gender_run(r, 4.5);
    age_gender_run(r, 5.5);
    const RunInfo failed = r.create_run("smoke", {}, {});
    r.log_metric(failed.id, "loss", 3.0, 0);
    r.log_metric(failed.id, "loss", 2.0, 1);
    r.end_run(failed.id, RunStatus::failed, "interrupted");

    auto res = h.run({"runs", "list", "--format", "json"});
    REQUIRE(res.exit_code == 0);
    CHECK(json_lines(res.out).size() == 3);
    res = h.run({"runs", "list", "--format", "json", "--experiment", "age-gender", "--metric", "val_age_mae<5"});
    auto runs = json_lines(res.out);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0]["id"] == good);
    res = h.run({"runs", "list", "--status", "failed", "--format", "json"});
    runs = json_lines(res.out);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0]["error"] == "interrupted");
    res = h.run({"runs", "list"});
    CHECK(res.out.find("FAILED") != std::string::npos);
    CHECK(res.out.find("val_age_mae=4.5") != std::string::npos);

    res = h.run({"runs", "show", failed.id, "--history"});
    REQUIRE(res.exit_code == 0);
    const json shown = json::parse(res.out);
    CHECK(shown["status"] == "FAILED");
    REQUIRE(shown["history"].size() == 2);
    CHECK(shown["history"][1]["value"] == 2.0);
}
