// cmd_gallery.cpp — `faceq gallery reindex`: re-describes the gallery's
// samples and detections with the installed pipeline (the detection options
// as for analyze), so a gallery moves to a new detector or alignment (see
// faceq/session/reindex.hpp). One `reindex_skipped` record per stored face
// left as it was (missing or changed photo, no face at its box), then one
// `reindex` record with the counts. Ctrl-C stops after the photos in flight;
// what was done stays, and a second run resumes. Exit 0 when every stale
// descriptor was re-described, 1 when some were skipped, 130 when interrupted.
#include <fmt/format.h>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/session/identification.hpp"
#include "faceq/session/reindex.hpp"
#include "signals.hpp"

namespace faceq::cli {
namespace {

struct ReindexCommand {
    AnalyzeOptions options;
    int jobs = 0;
};

int run_reindex(const ReindexCommand& cmd, Context& ctx) {
    auto gallery = open_gallery(ctx.home, false);
    if (!gallery)
        throw Error(ErrorKind::not_found, fmt::format("no gallery at '{}' (enroll or analyze --store make one)",
                                                      Gallery::describe_location(ctx.home.gallery_location())));
    const ModelSet models =
        installed_models(ctx.home.models_dir(), load_manifest(ctx.manifest_path()), cmd.options.detector == "cnn");
    StopSignals signals(stop_between_steps);
    const auto r = reindex_gallery(
        *gallery, models, cmd.options, jobs_or_cores(cmd.jobs), [] { return StopSignals::received(); },
        [&ctx](const Progress& p) { draw_progress(ctx, "reindex", p.done, p.total); },
        [](const ReindexSkip& s) {
            print_record("reindex_skipped", {{"kind", s.which.sample ? "sample" : "detection"},
                                             {"id", s.which.id},
                                             {"file", s.which.path},
                                             {"embedder", s.which.embedder},
                                             {"reason", s.reason}});
        });
    end_progress(ctx);
    print_record("reindex", {{"embedder", r.embedder},
                             {"samples", {{"stale", r.samples}, {"redescribed", r.samples_done}}},
                             {"detections", {{"stale", r.detections}, {"redescribed", r.detections_done}}},
                             {"photos", r.photos},
                             {"skipped", r.skipped},
                             {"interrupted", r.interrupted}});
    if (r.interrupted) {
        ctx.error("reindex interrupted; what was done is kept, run it again to go on");
        return StopSignals::exit_code();
    }
    if (r.skipped)
        ctx.warn(fmt::format("{} stored faces were left as they were (see the reindex_skipped records)", r.skipped));
    return r.skipped ? 1 : 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_gallery(CLI::App& app, Context& ctx) {
    auto* sub = app.add_subcommand("gallery", "Gallery maintenance");
    sub->require_subcommand(1);
    auto cmd = std::make_shared<ReindexCommand>();
    auto* reindex = sub->add_subcommand(
        "reindex", "Re-describe the gallery's samples and detections with the installed pipeline (resumable)");
    add_detection_options(reindex, cmd->options);
    reindex->add_option("-j,--jobs", cmd->jobs, "Worker threads (default: number of cores)")->check(CLI::Range(1, 256));
    return {sub, [cmd, &ctx] { return run_reindex(*cmd, ctx); }};
}

}  // namespace faceq::cli
