// cmd_prepare.cpp — `faceq prepare utkface|identities`: run the analysis
// pipeline once over a dataset and cache what training reads.
//
//   faceq prepare utkface [--data DIR] [--out DIR] [--jobs N] [--seed N]
//                         [--val F] [--test F] [--detector yunet|hog|cnn]
//   faceq prepare identities DIR [--name NAME] [--out DIR] [--min-images N]
//                         [--test-fraction F] [--jobs N] [--seed N]
//
// Defaults: utkface reads <home>/datasets/utkface and writes its prepared/
// folder beside the images; identities write <home>/datasets/identities/NAME
// (NAME = the folder's name). stdout: the manifest without its per-file
// cache table (one JSON line); stderr:
// a summary, skipped files, progress on a TTY. Ctrl-C stops between images
// (exit 130); what was analysed is lost, the previous prepared set is kept.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/compute.hpp"
#include "faceq/training/datasets.hpp"
#include "signals.hpp"

namespace faceq::cli {
namespace {

namespace fs = std::filesystem;

struct PrepareCmd {
    std::string data, out, name, detector = AnalyzeOptions{}.detector;
    int jobs = 0;
    std::uint64_t seed = 1;
    double val = 0.15, test = 0.15;
    double test_fraction = 0.5;
    int min_images = 2;
    int upsample = -1;
};

PrepareOptions make_options(const Context& ctx, const PrepareCmd& cmd) {
    PrepareOptions o;
    o.jobs = cmd.jobs > 0 ? cmd.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    o.seed = cmd.seed;
    o.val_fraction = cmd.val;
    o.test_fraction = cmd.test;
    o.min_images = cmd.min_images;
    o.analyze.detector = cmd.detector;
    o.analyze.upsample = cmd.upsample;
    o.progress = [&ctx](const Progress& p) { draw_progress(ctx, p.label, p.done, p.total); };
    o.log = log_to(ctx, /*warnings_as_debug=*/true);  // per-file skips: counted in the summary
    o.cancelled = [] { return StopSignals::received(); };
    return o;
}

// Runs a prepare that stops between images on SIGINT/SIGTERM; an
// interruption exits 128 + signal.
template <typename Fn>
int guarded(const Context& ctx, Fn fn) {
    StopSignals signals(stop_between_steps);
    set_compute_threads(1);  // parallelism is across images
    try {
        nlohmann::json manifest = fn();
        end_progress(ctx);
        // The per-file cache sizes are bookkeeping for the next prepare (one
        // entry per image: hundreds of kB for UTKFace); they stay in the file.
        manifest.erase("cache_sizes");
        print_record("prepared_dataset", std::move(manifest));
        return 0;
    } catch (const Error& e) {
        end_progress(ctx);
        if (e.kind() != ErrorKind::interrupted) throw;
        ctx.error(e.what());
        return StopSignals::exit_code();
    }
}

int prepare_utkface_cmd(const Context& ctx, const PrepareCmd& cmd) {
    const fs::path data = cmd.data.empty() ? utkface_dir(ctx.home) : fs::path(cmd.data);
    const fs::path out = cmd.out.empty() ? data / "prepared" : fs::path(cmd.out);
    const Manifest manifest = load_manifest(ctx.manifest_path());
    const ModelSet models = installed_models(ctx.home.models_dir(), manifest, cmd.detector == "cnn");
    if (!models.gender) ctx.warn("the CC0 gender CNN is not installed: training cannot compare against it");
    return guarded(ctx, [&] {
        const auto m = prepare_utkface(data, out, models, make_options(ctx, cmd));
        const auto& c = m["counts"];
        ctx.info(
            fmt::format("prepared {} of {} images into '{}': train {}, val {}, test {}; skipped {} malformed "
                        "names, {} without a face, {} unreadable ({} reused from the cache)",
                        m["usable"].get<int>(), m["images"].get<int>(), out.string(), c["train"]["total"].get<int>(),
                        c["val"]["total"].get<int>(), c["test"]["total"].get<int>(), m["malformed"].get<int>(),
                        m["no_face"].get<int>(), m["unreadable"].get<int>(), m["reused_from_cache"].get<int>()));
        return m;
    });
}

int prepare_identities_cmd(const Context& ctx, const PrepareCmd& cmd) {
    const fs::path source = cmd.data;
    std::string name = cmd.name;
    if (name.empty()) name = fs::path(source).lexically_normal().filename().string();
    if (name.empty()) name = fs::absolute(source).lexically_normal().parent_path().filename().string();
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
        throw Error(ErrorKind::usage,
                    fmt::format("cannot name the prepared set after '{}'; give --name", source.string()));
    const fs::path out = cmd.out.empty() ? identities_dir(ctx.home, name) : fs::path(cmd.out);
    const Manifest manifest = load_manifest(ctx.manifest_path());
    const ModelSet models = installed_models(ctx.home.models_dir(), manifest, cmd.detector == "cnn");
    PrepareCmd c = cmd;
    c.test = cmd.test_fraction;
    return guarded(ctx, [&] {
        const auto m = prepare_identities(source, out, models, make_options(ctx, c));
        const auto& n = m["counts"];
        ctx.info(fmt::format(
            "prepared {} images of {} people into '{}': train {} people ({} gallery, {} probe), "
            "test {} people ({} gallery, {} probe); skipped {} people with fewer than {} images, {} "
            "images without a face, {} unreadable",
            m["usable"].get<int>(), m["people"].get<int>(), out.string(), n["train"]["people"].get<int>(),
            n["train"]["gallery"].get<int>(), n["train"]["probe"].get<int>(), n["test"]["people"].get<int>(),
            n["test"]["gallery"].get<int>(), n["test"]["probe"].get<int>(), m["people_with_too_few_images"].get<int>(),
            cmd.min_images, m["no_face"].get<int>(), m["unreadable"].get<int>()));
        return m;
    });
}

void add_common(CLI::App* sub, PrepareCmd& cmd) {
    sub->add_option("--jobs,-j", cmd.jobs, "Worker threads (default: all cores)")->check(CLI::PositiveNumber);
    sub->add_option("--seed", cmd.seed, "Seed of the splits");
    sub->add_option("--detector", cmd.detector, "Face detector")->check(CLI::IsMember({"hog", "cnn", "yunet"}));
    sub->add_option("--upsample", cmd.upsample,
                    "Detector upsampling (utkface default 0; identities: derived from the minimum face size)")
        ->check(CLI::Range(0, 4));
}

}  // namespace

std::pair<CLI::App*, Runner> register_prepare(CLI::App& app, Context& ctx) {
    CLI::App* prepare =
        app.add_subcommand("prepare", "Analyse a dataset once and cache features and splits for training");
    prepare->require_subcommand(1, 1);
    prepare->fallthrough();

    auto utk = std::make_shared<PrepareCmd>();
    utk->upsample = 0;  // UTKFace crops are 200x200 with the face filling them: upsampling only loses faces
    CLI::App* u = prepare->add_subcommand("utkface", "UTKFace: labels from file names, features, stratified splits");
    u->fallthrough();
    u->add_option("--data", utk->data, "Dataset folder holding images/ (default: <home>/datasets/utkface)");
    u->add_option("--out", utk->out, "Output folder (default: <data>/prepared)");
    u->add_option("--val", utk->val, "Validation fraction")->check(CLI::Range(0.0, 0.9));
    u->add_option("--test", utk->test, "Test fraction")->check(CLI::Range(0.0, 0.9));
    add_common(u, *utk);

    auto ids = std::make_shared<PrepareCmd>();
    CLI::App* i = prepare->add_subcommand("identities",
                                          "A folder per person: descriptors, gallery/probe and "
                                          "train/test splits");
    i->fallthrough();
    i->add_option("dir", ids->data, "Folder with one sub-folder of images per person")->required();
    i->add_option("--name", ids->name, "Name of the prepared set (default: the folder's name)");
    i->add_option("--out", ids->out, "Output folder (default: <home>/datasets/identities/NAME)");
    i->add_option("--min-images", ids->min_images, "Skip people with fewer usable images")
        ->check(CLI::Range(2, 100000));
    i->add_option("--test-fraction", ids->test_fraction, "Fraction of people held out for the report")
        ->check(CLI::Range(0.0, 0.9));
    add_common(i, *ids);

    return {prepare, [&ctx, utk, ids, u, i]() {
                if (u->parsed()) return prepare_utkface_cmd(ctx, *utk);
                if (i->parsed()) return prepare_identities_cmd(ctx, *ids);
                return 2;
            }};
}

}  // namespace faceq::cli
