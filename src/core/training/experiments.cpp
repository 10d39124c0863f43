// experiments.cpp — see faceq/training/experiments.hpp.
#include "faceq/training/experiments.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/compute.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The embedder a prepared set's features came from (its manifest's pipeline).
EmbedderIdentity prepared_embedder(const PreparedDataset& data) {
    const json pipeline = data.manifest.value("pipeline", json::object());
    return {pipeline.value("embedder", ""), pipeline.value("embedder_sha256", "")};
}

// The tags deploy and the model tables read (see experiments.hpp).
json run_tags(const std::string& model_name, const EmbedderIdentity& embedder, const std::string& primary_metric,
              const std::string& primary_mode, const std::vector<std::string>& headline_metrics) {
    return json{{"model_name", model_name},           {"embedder", embedder.id},
                {"embedder_sha256", embedder.sha256}, {"primary_metric", primary_metric},
                {"primary_mode", primary_mode},       {"headline_metrics", headline_metrics}};
}

int all_cores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// Trains a head, logs every candidate as a step, leaves the head and a
// metrics summary as artifacts and the final metrics on the run.
AgeGenderTrainResult train_and_record(Registry& registry, const RunInfo& run, const PreparedDataset& data,
                                      AgeGenderTrainOptions o, const ExperimentContext& context) {
    o.on_step = [&registry, &run](const json& m, std::int64_t step) {
        json numbers = json::object();
        for (const auto& [k, v] : m.items())
            if (k != "gamma" && k != "lambda") numbers[k] = v;
        registry.log_metrics(run.id, numbers, step);
    };
    o.cancelled = context.cancelled;
    o.log = context.log;
    set_compute_threads(all_cores());
    AgeGenderTrainResult r = train_age_gender(data, o);
    r.head.save(run.artifacts_dir());
    write_file_atomic(run.artifacts_dir() / "metrics.json",
                      json{{"metrics", r.metrics}, {"params", r.params}, {"report", r.report}}.dump(2) + "\n");
    registry.update_run(run.id, r.params, json::object(), r.metrics);
    return r;
}

// The pipeline end to end: the saved head loads back and agrees with the one
// in memory.
double reload_difference(const AgeGenderTrainResult& r, const PreparedDataset& data, const fs::path& dir) {
    const AgeGenderHead loaded = AgeGenderHead::load(dir);
    const std::vector<float> row(data.row(0), data.row(0) + data.dim);
    const double a = r.head.predict(row).age, b = loaded.predict(row).age;
    if (std::abs(a - b) > 1e-3)
        throw Error(ErrorKind::internal, fmt::format("smoke: the saved head predicts {} where training had {}", b, a));
    return std::abs(a - b);
}

}  // namespace

void check_prepared_embedder(const PreparedDataset& data, const EmbedderIdentity& installed) {
    const EmbedderIdentity prepared = prepared_embedder(data);
    // A set that does not say which embedder computed it cannot be trusted either.
    if (prepared.id.empty() || !embedder_mismatch(prepared, installed).empty())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("'{}' was prepared with embedder {}, but {} is installed; prepare it again",
                                data.dir.string(), prepared.id, installed.id));
}

AgeGenderRun run_age_gender(Registry& registry, const PreparedDataset& data, const EmbedderIdentity& installed,
                            AgeGenderTrainOptions options, const ExperimentContext& context) {
    check_prepared_embedder(data, installed);
    RunSpec spec;
    spec.experiment = "age-gender";
    spec.params = json{{"data", data.dir.string()},     {"samples", data.samples.size()},
                       {"feature_dim", data.dim},       {"split_seed", data.manifest.value("seed", 0)},
                       {"gammas", options.gammas},      {"lambdas", options.lambdas},
                       {"max_train", options.max_train}};
    spec.tags = run_tags(age_gender_model_name, prepared_embedder(data), "val_age_mae", "min",
                         {"val_age_mae", "test_age_mae", "test_gender_acc", "test_gender_acc_13plus",
                          "test_age_mae_0-12", "test_gender_acc_0-12"});
    spec.source_version = context.source_version;
    AgeGenderRun out;
    out.outcome = run_experiment(
        registry, spec,
        [&](Registry& reg, const RunInfo& run) { out.trained = train_and_record(reg, run, data, options, context); },
        context.log);
    return out;
}

RecognitionRun run_recognition(Registry& registry, const PreparedDataset& data, const EmbedderIdentity& installed,
                               RecognitionTrainOptions options, const ExperimentContext& context) {
    return run_recognition(registry, std::vector<const PreparedDataset*>{&data}, installed, std::move(options),
                           context);
}

RecognitionRun run_recognition(Registry& registry, const std::vector<const PreparedDataset*>& sets,
                               const EmbedderIdentity& installed, RecognitionTrainOptions options,
                               const ExperimentContext& context) {
    if (sets.empty()) throw Error(ErrorKind::usage, "no prepared identities to calibrate on");
    check_distinct_sets(sets);  // before a run is recorded
    std::size_t samples = 0;
    json dirs = json::array();
    for (const PreparedDataset* data : sets) {
        check_prepared_embedder(*data, installed);
        samples += data->samples.size();
        dirs.push_back(data->dir.string());
    }
    options.cancelled = context.cancelled;
    RunSpec spec;
    spec.experiment = "recognition";
    // One set keeps the params' shape of runs recorded before several were allowed.
    spec.params = json{{"data", sets.size() == 1 ? json(sets.front()->dir.string()) : dirs},
                       {"samples", samples},
                       {"far_target", options.far_target},
                       {"reference_persons", options.reference_persons},
                       {"report_far", options.report_far}};
    spec.tags = run_tags(recognition_model_name, prepared_embedder(*sets.front()), "test_tar_at_far", "max",
                         {"threshold", "margin", "train_eer", "test_eer", "test_tar_at_far", "test_tar_at_threshold",
                          "test_pair_far_at_threshold"});
    spec.source_version = context.source_version;
    RecognitionRun out;
    out.outcome = run_experiment(
        registry, spec,
        [&](Registry& reg, const RunInfo& run) {
            RecognitionTrainResult r = train_recognition(sets, options);
            write_file_atomic(run.artifacts_dir() / "calibration.json", r.calibration.dump(2) + "\n");
            write_file_atomic(run.artifacts_dir() / "roc.json", r.roc.dump() + "\n");
            reg.log_metrics(run.id, r.metrics, 0);
            reg.update_run(run.id, r.params, json::object(), r.metrics);
            out.trained = std::move(r);
        },
        context.log);
    return out;
}

AgeGenderRun run_smoke(Registry& registry, const fs::path& models_dir, const Manifest& manifest,
                       const SmokeOptions& options, const ExperimentContext& context) {
    std::error_code ec;
    if (!fs::is_directory(options.dataset_dir / "images", ec))
        throw Error(ErrorKind::not_found,
                    fmt::format("no images in '{}'; run: faceq download dataset utkface --limit 100",
                                (options.dataset_dir / "images").string()));
    const ModelSet models = installed_models(models_dir, manifest, false);
    PrepareOptions p;
    p.jobs = options.jobs;
    p.limit = options.images;
    p.seed = options.seed;
    p.val_fraction = 0.2;
    p.test_fraction = 0.2;
    p.analyze.upsample = 0;
    p.progress = options.progress;
    p.cancelled = context.cancelled;
    AgeGenderTrainOptions train;
    train.gammas = {1.0};
    train.lambdas = {0.1, 1.0};
    train.seed = options.seed;

    RunSpec spec;
    spec.experiment = "smoke";
    spec.params = json{{"dataset", options.dataset_dir.string()},
                       {"images", options.images},
                       {"prepared", options.prepared_dir.string()}};
    spec.tags = run_tags("smoke", embedder_identity(models), "val_age_mae", "min",
                         {"val_age_mae", "test_age_mae", "test_gender_acc"});
    spec.source_version = context.source_version;
    AgeGenderRun out;
    out.outcome = run_experiment(
        registry, spec,
        [&](Registry& reg, const RunInfo& run) {
            set_compute_threads(1);  // parallelism is across images while preparing
            const json m = prepare_utkface(options.dataset_dir, options.prepared_dir, models, p);
            reg.log_metrics(run.id, json{{"prepared_images", m["usable"]}, {"no_face", m["no_face"]}}, 0);
            const PreparedDataset data = load_prepared(options.prepared_dir);
            AgeGenderTrainResult r = train_and_record(reg, run, data, train, context);
            const double difference = reload_difference(r, data, run.artifacts_dir());
            reg.update_run(run.id, json::object(), json::object(), json{{"reload_age_difference", difference}});
            out.trained = std::move(r);
        },
        context.log);
    return out;
}

}  // namespace faceq
