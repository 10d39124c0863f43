// cmd_train.cpp — `faceq train age-gender|recognition|smoke`: train on a
// prepared dataset and record the run (params, step metrics, artifacts,
// final metrics) in the registry.
//
//   faceq train age-gender [--data PREPARED] [--gamma G]... [--lambda L]...
//                          [--max-train N] [--seed N]
//   faceq train recognition --data PREPARED|NAME [--far F] [--persons N]
//                          [--report-far F] [--max-impostor-pairs N]
//   faceq train smoke [--data DATASET] [--images N]
//
// age-gender reads <home>/datasets/utkface/prepared by default and leaves the
// head (age_gender.json + .f32) and metrics.json as artifacts; recognition
// leaves calibration.json (threshold, margin, ROC, EER, TAR@FAR) for the
// gallery; smoke prepares a few dozen UTKFace images into
// <home>/datasets/smoke and trains a tiny head end to end (for CI).
// stdout: one JSON line per run {run_id, experiment, status, metrics}; stderr:
// candidates, the per-age-band report, progress on a TTY. Ctrl-C stops at
// the next step: the run ends FAILED and faceq exits 130.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/fsutil.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/registry.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/compute.hpp"
#include "faceq/training/age_gender.hpp"
#include "faceq/training/datasets.hpp"
#include "faceq/training/training.hpp"
#include "interrupt.hpp"
#include "table.hpp"

namespace faceq::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TrainCmd {
    std::string data;
    std::vector<double> gammas, lambdas;
    std::size_t max_train = 0;
    std::uint64_t seed = 1;
    double far = 0.01, report_far = 1e-3;
    std::size_t persons = 100, max_impostor_pairs = 4'000'000;
    std::size_t images = 48;
    int jobs = 0;
};

// `git describe --always --dirty` of the source tree this binary's data/
// directory belongs to; "" for an installed binary (no .git beside data/).
std::string git_version(const Context& ctx) {
    std::error_code ec;
    const fs::path tree = fs::weakly_canonical(ctx.data_dir, ec).parent_path();
    if (ec || !fs::exists(tree / ".git", ec)) return "";
    std::string quoted = "'";
    for (char c : tree.string()) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    quoted += "'";
    const std::string command = "git -C " + quoted + " describe --always --dirty --abbrev=12 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
    if (!pipe) return "";
    char buf[128] = {};
    std::string out;
    while (std::fgets(buf, sizeof buf, pipe.get())) out += buf;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

std::string installed_embedder_version(const Context& ctx) {
    const Manifest manifest = load_manifest(ctx.manifest_path());
    return require_installed(ctx.home.models_dir(), manifest, role::embedder).version();
}

// Features mean something only to the network that computed them.
void check_prepared_embedder(const Context& ctx, const PreparedDataset& data) {
    const std::string prepared = data.manifest.value("pipeline", json::object()).value("embedder", "");
    const std::string installed = installed_embedder_version(ctx);
    if (prepared != installed)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("'{}' was prepared with embedder {}, but {} is installed; prepare it again",
                                data.dir.string(), prepared, installed));
}

void print_run(const RunInfo& r) {
    json j{{"run_id", r.id},       {"experiment", r.experiment}, {"status", to_string(r.status)},
           {"metrics", r.metrics}, {"artifacts", r.artifacts},   {"path", r.dir.string()}};
    std::cout << j.dump() << std::endl;
}

// Runs `body` as a registry run: RUNNING until it returns (FINISHED) or
// throws (FAILED with the error); an interrupt gives exit code 130.
template <typename Body>
int as_run(const Context& ctx, const std::string& experiment, const json& params, const json& tags, Body body) {
    Registry registry(ctx.home);
    InterruptGuard interrupts;
    const RunInfo started = registry.create_run(experiment, params, tags, git_version(ctx));
    RunGuard guard(registry, started.id);
    ctx.info(fmt::format("run {} ({}) started", started.id, experiment));
    try {
        body(registry, started);
        guard.finish();
    } catch (const Error& e) {
        end_progress(ctx);
        guard.fail(e.what());
        if (e.kind() != ErrorKind::interrupted) throw;
        ctx.error(fmt::format("run {} interrupted: marked FAILED", started.id));
        return 128 + (interrupt_signal() ? interrupt_signal() : 2);
    } catch (const std::exception& e) {
        guard.fail(e.what());
        throw;
    }
    const RunInfo done = registry.run(started.id);
    ctx.info(fmt::format("run {} finished; artifacts in '{}'", done.id, done.artifacts_dir().string()));
    print_run(done);
    return 0;
}

std::string pct(const json& m, const std::string& key) {
    return m.contains(key) ? fmt::format("{:.1f}%", 100 * m[key].get<double>()) : "-";
}

void print_age_gender_report(const Context& ctx, const AgeGenderTrainResult& r) {
    if (ctx.verbosity < 0 || !r.report.contains("test")) return;
    std::vector<std::vector<std::string>> rows{{"test band", "n", "age MAE", "gender", "head", "CNN"}};
    for (const auto& b : r.report["test"])
        rows.push_back({b["band"].get<std::string>(), std::to_string(b["n"].get<int>()),
                        fmt::format("{:.2f}", b["age_mae"].get<double>()), pct(b, "gender_acc"),
                        pct(b, "head_gender_acc"), pct(b, "cnn_gender_acc")});
    const auto& m = r.metrics;
    rows.push_back({"all", std::to_string(m.value("test_n", 0)), fmt::format("{:.2f}", m.value("test_age_mae", 0.0)),
                    pct(m, "test_gender_acc"), pct(m, "test_head_gender_acc"), pct(m, "test_cnn_gender_acc")});
    rows.push_back({">= 13", "", "", pct(m, "test_gender_acc_13plus"), pct(m, "test_head_gender_acc_13plus"),
                    pct(m, "test_cnn_gender_acc_13plus")});
    std::fflush(stdout);
    print_table(rows, std::cerr);
}

AgeGenderTrainOptions age_gender_options(const Context& ctx, const TrainCmd& cmd) {
    AgeGenderTrainOptions o;
    if (!cmd.gammas.empty()) o.gammas = cmd.gammas;
    if (!cmd.lambdas.empty()) o.lambdas = cmd.lambdas;
    o.max_train = cmd.max_train;
    o.seed = cmd.seed;
    o.cancelled = [] { return interrupted(); };
    o.log = [&ctx](const std::string& line) { ctx.info(line); };
    return o;
}

json age_gender_tags(const PreparedDataset& data, const std::string& model_name) {
    const json pipeline = data.manifest.value("pipeline", json::object());
    return json{{"model_name", model_name},
                {"embedder", pipeline.value("embedder", "")},
                {"embedder_sha256", pipeline.value("embedder_sha256", "")},
                {"primary_metric", "val_age_mae"},
                {"primary_mode", "min"},
                {"headline_metrics",
                 {"val_age_mae", "test_age_mae", "test_gender_acc", "test_gender_acc_13plus", "test_age_mae_0-12",
                  "test_gender_acc_0-12"}}};
}

// Trains, logs every candidate as a step, saves the head and a metrics
// summary as artifacts. Returns the result for callers that check more.
AgeGenderTrainResult train_and_record(const Context& ctx, Registry& registry, const RunInfo& run,
                                      const PreparedDataset& data, AgeGenderTrainOptions o) {
    o.on_step = [&registry, &run](const json& m, std::int64_t step) {
        json numbers = json::object();
        for (const auto& [k, v] : m.items())
            if (k != "gamma" && k != "lambda") numbers[k] = v;
        registry.log_metrics(run.id, numbers, step);
    };
    set_compute_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    AgeGenderTrainResult r = train_age_gender(data, o);
    r.head.save(run.artifacts_dir());
    write_file_atomic(run.artifacts_dir() / "metrics.json",
                      json{{"metrics", r.metrics}, {"params", r.params}, {"report", r.report}}.dump(2) + "\n");
    registry.update_run(run.id, r.params, json::object(), r.metrics);
    print_age_gender_report(ctx, r);
    return r;
}

fs::path utk_prepared_dir(const Context& ctx, const TrainCmd& cmd) {
    return cmd.data.empty() ? ctx.home.datasets_dir() / "utkface" / "prepared" : fs::path(cmd.data);
}

int train_age_gender_cmd(const Context& ctx, const TrainCmd& cmd) {
    const PreparedDataset data = load_prepared(utk_prepared_dir(ctx, cmd));
    check_prepared_embedder(ctx, data);
    const AgeGenderTrainOptions o = age_gender_options(ctx, cmd);
    const json params{{"data", data.dir.string()}, {"samples", data.samples.size()},
                      {"feature_dim", data.dim},   {"split_seed", data.manifest.value("seed", 0)},
                      {"gammas", o.gammas},        {"lambdas", o.lambdas},
                      {"max_train", o.max_train}};
    return as_run(ctx, "age-gender", params, age_gender_tags(data, "age-gender"),
                  [&](Registry& registry, const RunInfo& run) { train_and_record(ctx, registry, run, data, o); });
}

int train_recognition_cmd(const Context& ctx, const TrainCmd& cmd) {
    if (cmd.data.empty())
        throw Error(ErrorKind::usage, "give --data: a folder written by `faceq prepare identities`, or its name");
    fs::path dir = cmd.data;
    std::error_code ec;
    if (!fs::is_directory(dir, ec) && cmd.data.find('/') == std::string::npos)
        dir = ctx.home.datasets_dir() / "identities" / cmd.data;
    const PreparedDataset data = load_prepared(dir);
    check_prepared_embedder(ctx, data);
    RecognitionTrainOptions o;
    o.far_target = cmd.far;
    o.reference_persons = cmd.persons;
    o.report_far = cmd.report_far;
    o.max_impostor_pairs = cmd.max_impostor_pairs;
    o.seed = cmd.seed;
    o.cancelled = [] { return interrupted(); };
    const json pipeline = data.manifest.value("pipeline", json::object());
    const json params{{"data", data.dir.string()},
                      {"samples", data.samples.size()},
                      {"far_target", cmd.far},
                      {"reference_persons", cmd.persons},
                      {"report_far", cmd.report_far}};
    const json tags{{"model_name", "face-recognition"},
                    {"embedder", pipeline.value("embedder", "")},
                    {"embedder_sha256", pipeline.value("embedder_sha256", "")},
                    {"primary_metric", "test_tar_at_far"},
                    {"primary_mode", "max"},
                    {"headline_metrics",
                     {"threshold", "margin", "train_eer", "test_eer", "test_tar_at_far", "test_tar_at_threshold",
                      "test_pair_far_at_threshold"}}};
    return as_run(ctx, "recognition", params, tags, [&](Registry& registry, const RunInfo& run) {
        const RecognitionTrainResult r = train_recognition(data, o);
        write_file_atomic(run.artifacts_dir() / "calibration.json", r.calibration.dump(2) + "\n");
        write_file_atomic(run.artifacts_dir() / "roc.json", r.roc.dump() + "\n");
        registry.log_metrics(run.id, r.metrics, 0);
        registry.update_run(run.id, r.params, json::object(), r.metrics);
        const auto& m = r.metrics;
        ctx.info(fmt::format(
            "threshold {:.4f}, margin {:.4f} for FAR {} at {} people; train EER {:.2f}%{}",
            m["threshold"].get<double>(), m["margin"].get<double>(), cmd.far, cmd.persons,
            100 * m["train_eer"].get<double>(),
            m.contains("test_eer")
                ? fmt::format(", test EER {:.2f}%, test TAR {:.2f}% at pair FAR {}", 100 * m["test_eer"].get<double>(),
                              100 * m["test_tar_at_far"].get<double>(), cmd.report_far)
                : std::string()));
    });
}

int train_smoke_cmd(const Context& ctx, const TrainCmd& cmd) {
    const fs::path dataset = cmd.data.empty() ? ctx.home.datasets_dir() / "utkface" : fs::path(cmd.data);
    std::error_code ec;
    if (!fs::is_directory(dataset / "images", ec))
        throw Error(ErrorKind::not_found,
                    fmt::format("no images in '{}'; run: faceq download dataset utkface --limit 100",
                                (dataset / "images").string()));
    const fs::path prepared = ctx.home.datasets_dir() / "smoke" / "prepared";
    const Manifest manifest = load_manifest(ctx.manifest_path());
    const ModelSet models = installed_models(ctx.home.models_dir(), manifest, false);
    PrepareOptions p;
    p.jobs = cmd.jobs > 0 ? cmd.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    p.limit = cmd.images;
    p.seed = cmd.seed;
    p.val_fraction = 0.2;
    p.test_fraction = 0.2;
    p.analyze.upsample = 0;
    p.progress = [&ctx](const Progress& pr) { draw_progress(ctx, pr.label, pr.done, pr.total); };
    p.cancelled = [] { return interrupted(); };

    const json params{{"dataset", dataset.string()}, {"images", cmd.images}, {"prepared", prepared.string()}};
    const json tags{{"model_name", "smoke"},
                    {"embedder", models.embedder.version()},
                    {"embedder_sha256", models.embedder.sha256},
                    {"primary_metric", "val_age_mae"},
                    {"primary_mode", "min"},
                    {"headline_metrics", {"val_age_mae", "test_age_mae", "test_gender_acc"}}};
    return as_run(ctx, "smoke", params, tags, [&](Registry& registry, const RunInfo& run) {
        set_compute_threads(1);
        const json m = prepare_utkface(dataset, prepared, models, p);
        end_progress(ctx);
        registry.log_metrics(run.id, json{{"prepared_images", m["usable"]}, {"no_face", m["no_face"]}}, 0);
        const PreparedDataset data = load_prepared(prepared);
        AgeGenderTrainOptions o = age_gender_options(ctx, cmd);
        if (cmd.gammas.empty()) o.gammas = {1.0};
        if (cmd.lambdas.empty()) o.lambdas = {0.1, 1.0};
        const AgeGenderTrainResult r = train_and_record(ctx, registry, run, data, o);
        // The pipeline end to end: the saved head loads back and agrees with
        // the one in memory.
        const AgeGenderHead loaded = AgeGenderHead::load(run.artifacts_dir());
        const std::vector<float> row(data.row(0), data.row(0) + data.dim);
        const double a = r.head.predict(row).age, b = loaded.predict(row).age;
        if (std::abs(a - b) > 1e-3)
            throw Error(ErrorKind::internal,
                        fmt::format("smoke: the saved head predicts {} where training had {}", b, a));
        registry.update_run(run.id, json::object(), json::object(), json{{"reload_age_difference", std::abs(a - b)}});
    });
}

}  // namespace

std::pair<CLI::App*, Runner> register_train(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<TrainCmd>();
    CLI::App* train = app.add_subcommand("train", "Train an age/gender head, calibrate recognition, or a smoke run");
    train->require_subcommand(1, 1);
    train->fallthrough();

    CLI::App* ag = train->add_subcommand("age-gender", "Age regression and gender heads on prepared UTKFace features");
    ag->add_option("--data", cmd->data, "Prepared folder (default: <home>/datasets/utkface/prepared)");
    ag->add_option("--gamma", cmd->gammas, "RBF widths to try, in units of 1/(2*dim) (default: 0.5 1 2)")
        ->check(CLI::PositiveNumber);
    ag->add_option("--lambda", cmd->lambdas, "Regularisations to try (default: 0.03 0.1 0.3)")
        ->check(CLI::PositiveNumber);
    ag->add_option("--max-train", cmd->max_train, "Use at most N training faces (0 = all)");
    ag->add_option("--seed", cmd->seed, "Seed of the --max-train subsample");

    CLI::App* rec = train->add_subcommand("recognition", "Threshold and margin for identification, ROC, EER, TAR@FAR");
    rec->add_option("--data", cmd->data, "Prepared identities (folder, or name under <home>/datasets/identities)")
        ->required();
    rec->add_option("--far", cmd->far, "Target fraction of strangers named as somebody")
        ->capture_default_str()
        ->check(CLI::Range(1e-6, 0.5));
    rec->add_option("--persons", cmd->persons, "Gallery size the target refers to")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    rec->add_option("--report-far", cmd->report_far, "Pair FAR at which TAR is reported")
        ->capture_default_str()
        ->check(CLI::Range(1e-7, 0.5));
    rec->add_option("--max-impostor-pairs", cmd->max_impostor_pairs, "Subsample impostor pairs beyond this")
        ->capture_default_str();
    rec->add_option("--seed", cmd->seed, "Seed of the impostor subsample");

    CLI::App* smoke = train->add_subcommand("smoke", "A tiny end-to-end run (prepare + train a few dozen images)");
    smoke->add_option("--data", cmd->data, "UTKFace dataset folder (default: <home>/datasets/utkface)");
    smoke->add_option("--images", cmd->images, "How many images")->capture_default_str()->check(CLI::Range(12, 5000));
    smoke->add_option("--jobs,-j", cmd->jobs, "Worker threads for prepare")->check(CLI::PositiveNumber);

    return {train, [&ctx, cmd, ag, rec, smoke]() {
                if (ag->parsed()) return train_age_gender_cmd(ctx, *cmd);
                if (rec->parsed()) return train_recognition_cmd(ctx, *cmd);
                if (smoke->parsed()) return train_smoke_cmd(ctx, *cmd);
                return 2;
            }};
}

}  // namespace faceq::cli
