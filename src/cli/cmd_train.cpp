// cmd_train.cpp — `faceq train age-gender|recognition|smoke`: train on a
// prepared dataset and record the run (params, step metrics, artifacts,
// final metrics) in the registry; the experiments themselves are
// faceq/training/experiments.hpp's.
//
//   faceq train age-gender [--data PREPARED] [--gamma G]... [--lambda L]...
//                          [--max-train N] [--seed N]
//   faceq train recognition --data PREPARED|NAME... [--far F] [--persons N]
//                          [--report-far F] [--max-impostor-pairs N]
//   faceq train smoke [--data DATASET] [--images N]
//
// age-gender reads <home>/datasets/utkface/prepared by default and leaves the
// head (age_gender.json + .f32) and metrics.json as artifacts; recognition
// leaves calibration.json (threshold, margin, ROC, EER, TAR@FAR) for the
// gallery, from one prepared set or the strictest of several (a table per set
// on stderr); smoke prepares a few dozen UTKFace images into
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
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/registry.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/training/datasets.hpp"
#include "faceq/training/experiments.hpp"
#include "faceq/training/runs.hpp"
#include "signals.hpp"
#include "table.hpp"

namespace faceq::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TrainCmd {
    std::string data;
    std::vector<std::string> sets;  // train recognition's --data
    std::vector<double> gammas, lambdas;
    std::size_t max_train = 0;
    std::uint64_t seed = 1;
    double far = 0.01, report_far = 1e-3;
    std::size_t persons = 100, max_impostor_pairs = 4'000'000;
    std::size_t images = 48;
    int jobs = 0;
};

// The installed embedder; Error{model} naming `faceq download models` when none is.
EmbedderIdentity required_embedder(const Context& ctx) {
    return embedder_identity(
        require_installed(ctx.home.models_dir(), load_manifest(ctx.manifest_path()), role::embedder));
}

ExperimentContext experiment_context(const Context& ctx) {
    return {source_version(ctx.data_dir), log_to(ctx), [] { return StopSignals::received(); }};
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

void print_recognition_report(const Context& ctx, const TrainCmd& cmd, const RecognitionTrainResult& r) {
    const auto& m = r.metrics;
    ctx.info(fmt::format(
        "threshold {:.4f}, margin {:.4f} for FAR {} at {} people; train EER {:.2f}%{}", m["threshold"].get<double>(),
        m["margin"].get<double>(), cmd.far, cmd.persons, 100 * m["train_eer"].get<double>(),
        m.contains("test_eer")
            ? fmt::format(", test EER {:.2f}%, test TAR {:.2f}% at pair FAR {}", 100 * m["test_eer"].get<double>(),
                          100 * m["test_tar_at_far"].get<double>(), cmd.report_far)
            : std::string()));
    if (ctx.verbosity < 0 || r.calibration["sets"].size() < 2) return;
    // Several sets: the chosen threshold checked on each (the strictest set's is chosen).
    const auto cell = [](const json& set, const std::string& key, bool percent) {
        if (!set.contains(key)) return std::string("-");
        const double v = set[key].get<double>();
        return percent ? fmt::format("{:.2f}%", 100 * v) : fmt::format("{:.4f}", v);
    };
    std::vector<std::vector<std::string>> rows{{"set", "own threshold", "train EER", "test EER",
                                                "test TAR at threshold", "FAR at threshold (train)",
                                                "FAR at threshold (test)"}};
    for (const auto& set : r.calibration["sets"])
        rows.push_back({set["name"].get<std::string>(), cell(set, "threshold_at_far", false),
                        cell(set, "train_eer", true), cell(set, "test_eer", true),
                        cell(set, "test_tar_at_threshold", true), cell(set, "far_at_threshold", true),
                        cell(set, "test_far_at_threshold", true)});
    std::fflush(stdout);
    print_table(rows, std::cerr);
}

// Runs an experiment while SIGINT/SIGTERM stop it between steps; prints its
// report (when it finished) and the run, and turns an interruption into exit
// code 128 + signal. `experiment` returns {outcome, trained result}.
template <typename Experiment, typename Report>
int run_and_print(const Context& ctx, Experiment experiment, Report report) {
    StopSignals signals(stop_between_steps);
    try {
        const auto result = experiment();
        end_progress(ctx);
        const RunInfo& run = result.outcome.run;
        if (result.outcome.interrupted) {
            ctx.error(fmt::format("run {} interrupted: marked FAILED", run.id));
            return StopSignals::exit_code();
        }
        if (result.trained) report(*result.trained);
        ctx.info(fmt::format("run {} finished; artifacts in '{}'", run.id, run.artifacts_dir().string()));
        print_record("training", {{"run_id", run.id},
                                  {"experiment", run.experiment},
                                  {"status", to_string(run.status)},
                                  {"metrics", run.metrics},
                                  {"artifacts", run.artifacts},
                                  {"path", run.dir.string()}});
        return 0;
    } catch (...) {
        end_progress(ctx);
        throw;
    }
}

int train_age_gender_cmd(const Context& ctx, const TrainCmd& cmd) {
    const PreparedDataset data =
        load_prepared(cmd.data.empty() ? utkface_dir(ctx.home) / "prepared" : fs::path(cmd.data));
    AgeGenderTrainOptions o;
    if (!cmd.gammas.empty()) o.gammas = cmd.gammas;
    if (!cmd.lambdas.empty()) o.lambdas = cmd.lambdas;
    o.max_train = cmd.max_train;
    o.seed = cmd.seed;
    Registry registry(ctx.home);
    return run_and_print(
        ctx, [&] { return run_age_gender(registry, data, required_embedder(ctx), o, experiment_context(ctx)); },
        [&](const AgeGenderTrainResult& r) { print_age_gender_report(ctx, r); });
}

int train_recognition_cmd(const Context& ctx, const TrainCmd& cmd) {
    if (cmd.sets.empty())
        throw Error(ErrorKind::usage, "give --data: a folder written by `faceq prepare identities`, or its name");
    std::vector<PreparedDataset> data;
    for (const auto& set : cmd.sets) data.push_back(load_prepared(find_identities(ctx.home, set)));
    std::vector<const PreparedDataset*> sets;
    for (const auto& d : data) sets.push_back(&d);
    RecognitionTrainOptions o;
    o.far_target = cmd.far;
    o.reference_persons = cmd.persons;
    o.report_far = cmd.report_far;
    o.max_impostor_pairs = cmd.max_impostor_pairs;
    o.seed = cmd.seed;
    Registry registry(ctx.home);
    return run_and_print(
        ctx, [&] { return run_recognition(registry, sets, required_embedder(ctx), o, experiment_context(ctx)); },
        [&](const RecognitionTrainResult& r) { print_recognition_report(ctx, cmd, r); });
}

int train_smoke_cmd(const Context& ctx, const TrainCmd& cmd) {
    SmokeOptions o;
    o.dataset_dir = cmd.data.empty() ? utkface_dir(ctx.home) : fs::path(cmd.data);
    o.prepared_dir = ctx.home.datasets_dir() / "smoke" / "prepared";
    o.images = cmd.images;
    o.seed = cmd.seed;
    o.jobs = jobs_or_cores(cmd.jobs);
    o.progress = [&ctx](const Progress& p) { draw_progress(ctx, p.label, p.done, p.total); };
    const Manifest manifest = load_manifest(ctx.manifest_path());
    Registry registry(ctx.home);
    return run_and_print(
        ctx, [&] { return run_smoke(registry, ctx.home.models_dir(), manifest, o, experiment_context(ctx)); },
        [&](const AgeGenderTrainResult& r) { print_age_gender_report(ctx, r); });
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
    rec->add_option("--data", cmd->sets,
                    "Prepared identities (folder, or name under <home>/datasets/identities); several: the "
                    "threshold holds on each")
        ->required()
        ->take_all();
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
