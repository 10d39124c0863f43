// cmd_bench.cpp — `faceq bench PATH...`: throughput of the whole pipeline on a
// folder of photos, for 1 worker and for all cores: images/s, faces/s, mean
// ms per stage, descriptor ms per face, and memory (RSS after loading, at the
// middle and end of the run, and the peak). Figures, not pass/fail: targets
// are compared in docs/benchmarks.md.
#include <fmt/format.h>

#include <iostream>

#include "context.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/pipeline/compute.hpp"
#include "faceq/session/bench.hpp"
#include "faceq/session/records.hpp"

namespace faceq::cli {
namespace {

struct BenchCommand {
    std::vector<std::string> paths;
    bool recursive = false;
    AnalyzeOptions options;
    std::vector<int> jobs;
    std::size_t limit = 0;
    int repeat = 1;
    std::string format = "table";
};

int bench_cmd(BenchCommand& cmd, Context& ctx) {
    auto items = expand_inputs(cmd.paths, cmd.recursive, &std::cin);
    std::vector<std::string> files;
    for (const auto& it : items)
        if (!it.error) files.push_back(it.path);
    if (cmd.limit > 0 && files.size() > cmd.limit) files.resize(cmd.limit);
    if (files.empty()) throw Error(ErrorKind::usage, "bench: no images found in the given paths");
    std::vector<std::string> run_files;
    for (int r = 0; r < cmd.repeat; ++r) run_files.insert(run_files.end(), files.begin(), files.end());

    SessionOptions options;
    options.analyze = cmd.options;
    options.identify = false;
    const AnalysisSession session(ctx.home, load_manifest(ctx.manifest_path()), options, log_to(ctx));
    if (cmd.jobs.empty()) {
        cmd.jobs.push_back(1);
        if (jobs_or_cores(0) > 1) cmd.jobs.push_back(jobs_or_cores(0));
    }

    RecordWriter writer(std::cout, RecordFormat::jsonl);
    if (cmd.format == "table")
        std::cout << fmt::format(
            "{:>4} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7}\n", "jobs", "images",
            "img/s", "faces/s", "decode", "detect", "landm", "desc", "gender", "desc/face", "cpu/img", "rss0MB",
            "rssEnd", "peakMB");
    for (int jobs : cmd.jobs) {
        const auto progress = [&ctx, jobs](const Progress& p) {
            draw_progress(ctx, fmt::format("bench jobs={}", jobs), p.done, p.total);
        };
        const BenchResult r = run_bench(session, run_files, jobs, progress);
        end_progress(ctx);
        const auto& t = r.total;
        const double desc_per_face = r.faces ? t.descriptor / r.faces : 0.0;
        if (cmd.format == "table") {
            std::cout << fmt::format(
                "{:>4} {:>7} {:>8.2f} {:>8.2f} {:>7.2f} {:>7.2f} {:>7.2f} {:>7.2f} {:>7.2f} {:>9.2f} "
                "{:>7.1f} {:>7.0f} {:>7.0f} {:>7.0f}\n",
                jobs, r.images, r.images_per_second(), r.faces_per_second(), r.mean_ms(t.decode), r.mean_ms(t.detect),
                r.mean_ms(t.landmarks), r.mean_ms(t.descriptor), r.mean_ms(t.gender), desc_per_face, r.cpu_ms_per_image,
                r.rss_start_mb, r.rss_end_mb, r.rss_peak_mb);
        } else {
            writer.write("bench", {{"jobs", jobs},
                                   {"images", r.images},
                                   {"failed", r.failed},
                                   {"faces", r.faces},
                                   {"seconds", r.seconds},
                                   {"images_per_s", r.images_per_second()},
                                   {"faces_per_s", r.faces_per_second()},
                                   {"ms_per_image",
                                    {{"decode", r.mean_ms(t.decode)},
                                     {"detect", r.mean_ms(t.detect)},
                                     {"landmarks", r.mean_ms(t.landmarks)},
                                     {"descriptor", r.mean_ms(t.descriptor)},
                                     {"gender", r.mean_ms(t.gender)}}},
                                   {"descriptor_ms_per_face", desc_per_face},
                                   {"cpu_ms_per_image", r.cpu_ms_per_image},
                                   {"rss_mb",
                                    {{"start", r.rss_start_mb},
                                     {"middle", r.rss_middle_mb},
                                     {"end", r.rss_end_mb},
                                     {"peak", r.rss_peak_mb}}},
                                   {"detector", cmd.options.detector},
                                   {"blas", compute_description()}});
        }
        if (r.failed) ctx.warn(fmt::format("{} images failed to decode or analyze", r.failed));
    }
    if (cmd.format == "table") std::cout << "blas: " << compute_description() << "\n";
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_bench(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<BenchCommand>();
    auto* sub = app.add_subcommand("bench", "Measure pipeline throughput and memory on a folder of photos");
    sub->add_option("paths", cmd->paths, "Image files or folders");
    sub->add_flag("-r,--recursive", cmd->recursive, "Descend into subfolders");
    sub->add_option("--jobs", cmd->jobs, "Worker counts to measure (default: 1 and all cores)")
        ->delimiter(',')
        ->check(CLI::Range(1, 256));
    sub->add_option("--limit", cmd->limit, "Use at most N images");
    sub->add_option("--repeat", cmd->repeat, "Run over the images N times (for memory over long runs)")
        ->check(CLI::Range(1, 1000));
    add_detection_options(sub, cmd->options);
    sub->add_option("--format", cmd->format, "table or jsonl")->check(CLI::IsMember({"table", "jsonl"}));
    const auto [detection, detection_runner] = register_bench_detection(*sub, ctx);
    const auto [identify, identify_runner] = register_bench_identify(*sub, ctx);
    const auto [store, store_runner] = register_bench_store(*sub, ctx);
    const auto [thumbnails, thumbnails_runner] = register_bench_thumbnails(*sub, ctx);
    return {sub, [cmd, &ctx, detection = detection, detection_runner = detection_runner, identify = identify,
                  identify_runner = identify_runner, store = store, store_runner = store_runner,
                  thumbnails = thumbnails, thumbnails_runner = thumbnails_runner] {
                if (detection->parsed()) return detection_runner();
                if (thumbnails->parsed()) return thumbnails_runner();
                if (identify->parsed()) return identify_runner();
                if (store->parsed()) return store_runner();
                if (cmd->paths.empty())
                    throw Error(ErrorKind::usage,
                                "bench: give image files or folders (or: bench detection DIR --boxes F, bench "
                                "identify DIR, bench store --to DB, bench thumbnails PATH)");
                return bench_cmd(*cmd, ctx);
            }};
}

}  // namespace faceq::cli
