// cmd_bench_thumbnails.cpp — `faceq bench thumbnails PATH... [--quality
// Q,...]`: bytes and milliseconds per face thumbnail at each JPEG quality, on
// the faces the detector finds in the photos (faceq/session/
// thumbnail_bench.hpp). A table, or one `thumbnail_bench` record per quality.
#include <fmt/format.h>

#include <iostream>

#include "context.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/pipeline/thumbnail.hpp"
#include "faceq/session/thumbnail_bench.hpp"

namespace faceq::cli {
namespace {

struct BenchThumbnailsCommand {
    std::vector<std::string> paths;
    bool recursive = false;
    AnalyzeOptions options;
    std::vector<int> qualities{50, 60, 70, 75, 80, 85, 90, 95};
    int jobs = 0;
    std::size_t limit = 0;
    std::string format = "table";
};

int bench_thumbnails_cmd(const BenchThumbnailsCommand& cmd, Context& ctx) {
    std::vector<std::string> files;
    for (const auto& it : expand_inputs(cmd.paths, cmd.recursive, &std::cin))
        if (!it.error) files.push_back(it.path);
    if (cmd.limit > 0 && files.size() > cmd.limit) files.resize(cmd.limit);
    if (files.empty()) throw Error(ErrorKind::usage, "bench thumbnails: no images found in the given paths");
    SessionOptions options;
    options.analyze = cmd.options;
    options.analyze.descriptors = false;  // the boxes are all it needs
    options.analyze.gender = false;
    options.identify = false;
    options.deployed_head = false;
    const AnalysisSession session(ctx.home, load_manifest(ctx.manifest_path()), options, log_to(ctx));
    const auto r = run_thumbnail_bench(session, files, cmd.qualities, jobs_or_cores(cmd.jobs),
                                       [&ctx](const Progress& p) { draw_progress(ctx, p.label, p.done, p.total); });
    end_progress(ctx);
    if (cmd.format == "table")
        std::cout << fmt::format("{} photos ({} failed), {} faces, {}x{} px, margin {:.0f}%, limit {} bytes\n",
                                 r.photos, r.failed, r.faces, thumbnail_side, thumbnail_side, thumbnail_margin * 100,
                                 thumbnail_max_bytes)
                  << fmt::format("{:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9} {:>8}\n", "quality", "mean B", "p50", "p90",
                                 "p99", "max", "> limit", "ms/face");
    for (const auto& q : r.qualities) {
        if (cmd.format == "table") {
            std::cout << fmt::format("{:>7} {:>8.0f} {:>7} {:>7} {:>7} {:>7} {:>9} {:>8.3f}\n",
                                     q.made ? fmt::format("{} made", q.quality) : std::to_string(q.quality),
                                     q.mean_bytes, q.p50_bytes, q.p90_bytes, q.p99_bytes, q.max_bytes, q.over_limit,
                                     q.ms_per_face);
        } else {
            print_record("thumbnail_bench", {{"quality", q.quality},
                                             {"made", q.made},
                                             {"photos", r.photos},
                                             {"failed", r.failed},
                                             {"faces", q.faces},
                                             {"mean_bytes", q.mean_bytes},
                                             {"p50_bytes", q.p50_bytes},
                                             {"p90_bytes", q.p90_bytes},
                                             {"p99_bytes", q.p99_bytes},
                                             {"max_bytes", q.max_bytes},
                                             {"over_limit", q.over_limit},
                                             {"ms_per_face", q.ms_per_face}});
        }
    }
    if (r.failed) ctx.warn(fmt::format("{} images failed to decode or analyze", r.failed));
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_bench_thumbnails(CLI::App& bench, Context& ctx) {
    auto cmd = std::make_shared<BenchThumbnailsCommand>();
    auto* sub = bench.add_subcommand(
        "thumbnails", "Bytes and ms per face thumbnail at several JPEG qualities, on the faces found in photos");
    sub->add_option("paths", cmd->paths, "Image files or folders")->required();
    sub->add_flag("-r,--recursive", cmd->recursive, "Descend into subfolders");
    sub->add_option("--quality", cmd->qualities, "JPEG qualities to measure")
        ->delimiter(',')
        ->check(CLI::Range(1, 100));
    sub->add_option("-j,--jobs", cmd->jobs, "Worker threads (default: number of cores)")->check(CLI::Range(1, 256));
    sub->add_option("--limit", cmd->limit, "Use at most N images");
    add_detection_options(sub, cmd->options);
    sub->add_option("--format", cmd->format, "table or jsonl")->check(CLI::IsMember({"table", "jsonl"}));
    return {sub, [cmd, &ctx] { return bench_thumbnails_cmd(*cmd, ctx); }};
}

}  // namespace faceq::cli
