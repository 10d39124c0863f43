// tests/test_deploy.cpp — the rules that move production (faceq/models/deploy.hpp):
// deploy picks the best version by the runs' primary metric among those
// trained for the installed embedder; --version for another embedder is
// refused unless forced (with a warning); rollback follows `previous` under
// the same rule; check says whether production can run here. Versions are
// registered from runs made with the core's Registry, in a TempDir home.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/models/deploy.hpp"
#include "faceq/models/registry.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

const EmbedderIdentity ours{"resnet@aaaaaaaaaaaa", std::string(64, 'a')};
const EmbedderIdentity theirs{"resnet@bbbbbbbbbbbb", std::string(64, 'b')};

// Registers a version of "age-gender" trained for `embedder` with val_age_mae `mae`.
int register_version(Registry& r, double mae, const std::optional<EmbedderIdentity>& embedder) {
    json tags{{"model_name", "age-gender"}, {"primary_metric", "val_age_mae"}, {"primary_mode", "min"}};
    if (embedder) {
        tags["embedder"] = embedder->id;
        tags["embedder_sha256"] = embedder->sha256;
    }
    const RunInfo run = r.create_run("age-gender", json::object(), tags);
    r.update_run(run.id, {}, {}, json{{"val_age_mae", mae}});
    r.end_run(run.id, RunStatus::finished);
    return r.register_model("age-gender", run.id).version;
}

struct Logged {
    std::vector<std::string> lines;
    LogFn fn() {
        return [this](const std::string& line) { lines.push_back(line); };
    }
};

auto kind_is(ErrorKind kind) {
    return Catch::Predicate<Error>([kind](const Error& e) { return e.kind() == kind; }, "error kind");
}

}  // namespace

TEST_CASE("deploy chooses the best version by the primary metric, for the installed embedder", "[deploy]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    register_version(r, 5.0, ours);    // 1
    register_version(r, 4.0, theirs);  // 2: best, but for another embedder
    register_version(r, 4.5, ours);    // 3
    Logged log;

    Deployment d = deploy_model(r, {"age-gender", "", "", 0, false}, ours, log.fn());
    CHECK(d.move.production == 3);
    CHECK(d.move.changed);
    CHECK(d.why == "best val_age_mae (min) = 4.5");
    CHECK(std::find(log.lines.begin(), log.lines.end(),
                    "debug: skipping: version 2 of 'age-gender' was trained for embedder resnet@bbbbbbbbbbbb, but "
                    "resnet@aaaaaaaaaaaa is installed") != log.lines.end());

    // Forced: every version competes.
    d = deploy_model(r, {"age-gender", "", "", 0, true}, ours, {});
    CHECK(d.move.production == 2);
    CHECK(d.move.previous == 3);

    // No embedder installed: nothing to compare against.
    d = deploy_model(r, {"age-gender", "", "", 0, false}, std::nullopt, {});
    CHECK(d.move.production == 2);
    CHECK_FALSE(d.move.changed);

    // An explicit metric and mode.
    d = deploy_model(r, {"age-gender", "val_age_mae", "max", 0, false}, ours, {});
    CHECK(d.move.production == 1);
    CHECK(d.why == "best val_age_mae (max) = 5");

    // Only versions for another embedder have the metric.
    CHECK_THROWS_WITH(deploy_model(r, {"age-gender", "", "", 0, false}, EmbedderIdentity{"other@1", ""}, {}),
                      "no version of 'age-gender' has metric 'val_age_mae' and was trained for embedder other@1");
    CHECK_THROWS_MATCHES(deploy_model(r, {"age-gender", "test_age_mae", "", 0, false}, ours, {}), Error,
                         kind_is(ErrorKind::usage));  // a metric without its mode
    CHECK_THROWS_MATCHES(deploy_model(r, {"nothing", "", "", 0, false}, ours, {}), Error,
                         kind_is(ErrorKind::not_found));
}

TEST_CASE("deploy --version is refused for another embedder unless forced", "[deploy]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    register_version(r, 5.0, ours);
    register_version(r, 4.0, theirs);
    register_version(r, 4.8, std::nullopt);  // depends on no embedder
    Logged log;

    CHECK_THROWS_MATCHES(deploy_model(r, {"age-gender", "", "", 2, false}, ours, log.fn()), Error,
                         kind_is(ErrorKind::usage));
    CHECK_THROWS_WITH(deploy_model(r, {"age-gender", "", "", 2, false}, ours, {}),
                      "version 2 of 'age-gender' was trained for embedder resnet@bbbbbbbbbbbb, but resnet@aaaaaaaaaaaa "
                      "is installed (--force deploys it anyway)");
    CHECK_FALSE(find_deployed(Home{dir.path()}, "age-gender"));

    Deployment d = deploy_model(r, {"age-gender", "", "", 2, true}, ours, log.fn());
    CHECK(d.move.production == 2);
    CHECK(d.why == "as asked");
    REQUIRE(log.lines.size() == 1);
    CHECK(log.lines[0].rfind("warning: version 2 of 'age-gender' was trained for embedder", 0) == 0);

    // Same id, another file: the full sha256 decides.
    CHECK_THROWS_MATCHES(
        deploy_model(r, {"age-gender", "", "", 1, false}, EmbedderIdentity{ours.id, std::string(64, 'c')}, {}), Error,
        kind_is(ErrorKind::usage));
    CHECK(deploy_model(r, {"age-gender", "", "", 1, false}, ours, {}).move.production == 1);
    CHECK(deploy_model(r, {"age-gender", "", "", 3, false}, theirs, {}).move.production == 3);
    CHECK_THROWS_MATCHES(deploy_model(r, {"age-gender", "", "", 9, false}, ours, {}), Error,
                         kind_is(ErrorKind::not_found));
}

TEST_CASE("rollback follows previous under the embedder rule", "[deploy]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    register_version(r, 5.0, theirs);  // 1
    register_version(r, 4.0, ours);    // 2
    CHECK_THROWS_MATCHES(rollback_model(r, {"age-gender", 0, false}, ours, {}), Error,
                         kind_is(ErrorKind::usage));  // no previous yet
    r.deploy("age-gender", 1);
    r.deploy("age-gender", 2);  // previous = 1

    CHECK_THROWS_WITH(rollback_model(r, {"age-gender", 0, false}, ours, {}),
                      Catch::EndsWith("(--force rolls back anyway)"));
    Logged log;
    AliasMove m = rollback_model(r, {"age-gender", 0, true}, ours, log.fn());
    CHECK(m.production == 1);
    CHECK(m.previous == 2);
    CHECK(log.lines.size() == 1);
    m = rollback_model(r, {"age-gender", 2, false}, ours, {});
    CHECK(m.production == 2);
    CHECK_THROWS_MATCHES(rollback_model(r, {"nothing", 0, false}, ours, {}), Error, kind_is(ErrorKind::not_found));
}

TEST_CASE("check says whether production can run with the installed embedder", "[deploy]") {
    TempDir dir;
    Registry r(Home{dir.path()});
    ProductionCheck c = check_production(r, "age-gender", ours);
    CHECK_FALSE(c.usable());
    CHECK_FALSE(c.production);
    CHECK(c.reason == "model 'age-gender' has no production version");

    register_version(r, 4.0, theirs);
    r.deploy("age-gender", 1);
    c = check_production(r, "age-gender", ours);
    CHECK_FALSE(c.usable());
    CHECK(c.production == 1);
    CHECK(c.embedder == theirs.id);
    CHECK(c.reason.find("trained for embedder resnet@bbbbbbbbbbbb") != std::string::npos);
    CHECK(check_production(r, "age-gender", theirs).usable());
    CHECK(check_production(r, "age-gender", std::nullopt).usable());
}

TEST_CASE("a home without models or manifest has no installed embedder", "[deploy]") {
    TempDir dir;
    CHECK_FALSE(find_installed_embedder(dir / "models", dir / "no-such-models.json"));
    ModelVersion v;
    v.name = "age-gender";
    v.version = 4;
    v.tags = json{{"embedder", theirs.id}};
    CHECK(trained_embedder(v).id == theirs.id);
    CHECK(trained_embedder(v).sha256.empty());
    CHECK(version_embedder_mismatch(v, std::nullopt).empty());
    CHECK(version_embedder_mismatch(v, theirs).empty());
    CHECK(
        version_embedder_mismatch(v, ours) ==
        "version 4 of 'age-gender' was trained for embedder resnet@bbbbbbbbbbbb, but resnet@aaaaaaaaaaaa is installed");
}
