// faceq/models/registry.hpp — the model registry: MLflow's concepts (experiments,
// runs, registered models with numbered versions, aliases) as plain files
// under <home>/registry, readable by people and by jq. Layout and semantics:
// docs/registry.md.
//
//   runs/<run id>/run.json        status RUNNING|FINISHED|FAILED, times, pid,
//                                 git version, params, tags, final metrics
//   runs/<run id>/metrics.jsonl   step metrics, append-only
//   runs/<run id>/artifacts/      files the run produced
//   models/<name>/model.json      aliases {"production": 3, "previous": 2},
//                                 next_version
//   models/<name>/versions/<n>/   version.json + a copy of the run's artifacts
//
// Invariants: every JSON file is replaced atomically (temp + fsync + rename)
// and every change that reads-then-writes holds an exclusive flock on
// registry/.lock, so two faceq processes cannot hand out one version number
// twice nor lose an alias move. Version numbers of a model only grow (a
// cleaned number is never reused). An alias always names an existing version:
// clean never deletes an aliased one. A run whose process died (killed, power
// loss) reads as FAILED: run.json records the pid, the host and the process's
// start time, and a RUNNING run whose process is gone is marked FAILED the
// next time anyone reads it.
//
// Errors: Error{not_found} for a missing run, model or version; Error{usage}
// for an impossible request (deploying a version that is not there, clean
// --keep 0); Error{io} when the file system fails; Error{invalid_input} for a
// registry file that does not parse. Reading is safe from any number of
// processes while another writes.
//
// Thread-safety: a Registry holds only its root path; its methods may be
// called from any thread, and threads are serialized like processes by the
// registry/.lock flock (each call takes and releases it). Values it returns
// (RunInfo, ModelVersion) are plain copies.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/home.hpp"

namespace faceq {

// ------------------------------------------------------------------ runs

enum class RunStatus { running, finished, failed };
const char* to_string(RunStatus s) noexcept;  // "RUNNING" | "FINISHED" | "FAILED"
std::optional<RunStatus> parse_run_status(const std::string& s);

struct RunInfo {
    std::string id;          // "20261128T094500Z-3fa9c2": sortable by start time
    std::string experiment;  // "age-gender", "recognition", "smoke", ...
    RunStatus status = RunStatus::running;
    std::string start_time, end_time;  // ISO 8601 UTC; end empty while running
    std::int64_t pid = 0;
    std::string host;
    std::string git_version;  // of faceq's source tree, "" when unknown
    std::string faceq_version;
    std::string error;  // why it failed
    nlohmann::json params = nlohmann::json::object();
    nlohmann::json tags = nlohmann::json::object();
    nlohmann::json metrics = nlohmann::json::object();  // final (summary) metrics
    std::vector<std::string> artifacts;                 // paths relative to artifacts/
    std::filesystem::path dir;
    std::filesystem::path artifacts_dir() const { return dir / "artifacts"; }
};

struct MetricPoint {
    std::string key;
    double value = 0;
    std::int64_t step = 0;
    std::string timestamp;
};

// A metric condition for filters: "test_age_mae<5", "val_gender_acc>=0.9".
struct MetricCondition {
    std::string key;
    std::string op;  // "<", "<=", ">", ">=", "=", "!="
    double value = 0;
    bool matches(const nlohmann::json& metrics) const;
};
// Parses "key<op>value"; throws Error{usage} when it is not one.
MetricCondition parse_metric_condition(const std::string& text);

struct RunFilter {
    std::string experiment;  // empty = any
    std::optional<RunStatus> status;
    std::vector<MetricCondition> metrics;  // all must hold
};

// ------------------------------------------------------------------ models

struct ModelVersion {
    std::string name;
    int version = 0;
    std::string run_id;
    std::string experiment;
    std::string created_at;
    std::string description;
    nlohmann::json metrics = nlohmann::json::object();
    nlohmann::json params = nlohmann::json::object();
    nlohmann::json tags = nlohmann::json::object();
    std::vector<std::string> aliases;  // filled by versions()/version()
    std::filesystem::path dir;
    std::filesystem::path artifacts_dir() const { return dir / "artifacts"; }
};

// The metrics worth a column when showing `versions` side by side: the
// headline_metrics their runs named (tag, in order, each once), else every
// numeric final metric any of them has.
std::vector<std::string> headline_metrics(const std::vector<ModelVersion>& versions);

struct AliasMove {
    std::string name;
    std::optional<int> production_before;
    int production = 0;
    std::optional<int> previous;
    bool changed = false;  // false when `production` already pointed there
};

// One registered model version that an alias points at.
struct DeployedModel {
    std::string name;
    int version = 0;
    std::filesystem::path artifacts_dir;  // the version's own copy of its run's artifacts
    nlohmann::json metrics;               // the run's final metrics ({} when none)
};

// The version an alias ("production") of registered model `name` points at, if
// any. std::nullopt when the model, the alias or the version does not exist.
std::optional<DeployedModel> find_deployed(const Home& home, const std::string& name,
                                           const std::string& alias = "production");

class Registry {
public:
    explicit Registry(Home home);

    std::filesystem::path root() const;

    // ---- runs
    // Creates runs/<id> with status RUNNING, this process's pid and host.
    RunInfo create_run(const std::string& experiment, const nlohmann::json& params, const nlohmann::json& tags,
                       const std::string& git_version = {});
    // Appends {"key","value","step","timestamp"} lines to metrics.jsonl (one
    // write per call, so a crash loses at most the last, partial line, which
    // readers skip).
    void log_metric(const std::string& run_id, const std::string& key, double value, std::int64_t step);
    void log_metrics(const std::string& run_id, const nlohmann::json& values, std::int64_t step);
    // Merges into run.json's params / tags / final metrics.
    void update_run(const std::string& run_id, const nlohmann::json& params, const nlohmann::json& tags,
                    const nlohmann::json& metrics);
    // Ends a RUNNING run: FINISHED, or FAILED with `error`. Records the files
    // under artifacts/ (relative paths) in run.json.
    void end_run(const std::string& run_id, RunStatus status, const std::string& error = {});
    // Throws Error{not_found}. Resolves a dead RUNNING run to FAILED.
    RunInfo run(const std::string& run_id) const;
    // Newest first.
    std::vector<RunInfo> runs(const RunFilter& filter = {}) const;
    std::vector<MetricPoint> metric_history(const std::string& run_id) const;

    // ---- registered models
    // New version of `name` from a FINISHED run: copies the run's artifacts
    // into the version. Throws Error{usage} for a run that did not finish.
    ModelVersion register_model(const std::string& name, const std::string& run_id,
                                const std::string& description = {});
    // The newest FINISHED run with tag model_name == name (else experiment ==
    // name). Throws Error{not_found} naming the train command.
    RunInfo last_successful_run(const std::string& name) const;

    std::vector<std::string> model_names() const;
    // Ascending version numbers; throws Error{not_found} for an unknown model.
    std::vector<ModelVersion> versions(const std::string& name) const;
    ModelVersion version(const std::string& name, int version) const;
    std::map<std::string, int> aliases(const std::string& name) const;

    // Points `production` at `version`; `previous` at what production was
    // (unchanged when production already pointed there).
    AliasMove deploy(const std::string& name, int version);
    // The version with the best final metric `metric` ("min" or "max") among
    // those `eligible` accepts (all when empty); std::nullopt when none has it.
    std::optional<ModelVersion> best_version(const std::string& name, const std::string& metric,
                                             const std::string& mode,
                                             const std::function<bool(const ModelVersion&)>& eligible = {}) const;
    // Sets (or with version 0, removes) any alias.
    void set_alias(const std::string& name, const std::string& alias, int version);
    // Deletes all but the newest `keep` versions, never an aliased one.
    // Returns the deleted version numbers. Throws Error{usage} for keep < 1.
    std::vector<int> clean(const std::string& name, int keep);
    // The versions clean(name, keep) would delete now, deleting nothing.
    std::vector<int> versions_to_clean(const std::string& name, int keep) const;

private:
    Home home_;
};

// Ends a run FAILED when destroyed before finish() or fail(): an exception
// (or an interrupt turned into one) between create_run and the end of the
// work leaves no RUNNING run behind. Never throws from the destructor.
class RunGuard {
public:
    RunGuard(Registry& registry, std::string run_id) : registry_(registry), id_(std::move(run_id)) {}
    ~RunGuard();
    RunGuard(const RunGuard&) = delete;
    RunGuard& operator=(const RunGuard&) = delete;

    void finish();                      // FINISHED
    void fail(const std::string& why);  // FAILED, recording why
    const std::string& id() const { return id_; }

private:
    Registry& registry_;
    std::string id_;
    bool ended_ = false;
};

}  // namespace faceq
