// cmd_bench.cpp — `faceq bench PATH...`: throughput of the whole pipeline on a
// folder of photos, for 1 worker and for all cores: images/s, faces/s, mean
// ms per stage, descriptor ms per face, and memory (RSS after loading, at the
// middle and end of the run, and the peak). Figures, not pass/fail: targets
// are compared in docs/benchmarks.md.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "context.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/sysinfo.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"

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

struct ItemStats {
    StageTimes times;
    std::size_t faces = 0;
    bool failed = false;
};

// CPU seconds (user + system) this process has used so far.
double process_cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Resets VmHWM so each configuration reports its own peak (Linux >= 4.0).
void reset_peak_rss() {
    const int fd = ::open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0) return;
    [[maybe_unused]] const auto n = ::write(fd, "5", 1);
    ::close(fd);
}

int run_bench(BenchCommand& cmd, Context& ctx) {
    auto items = expand_inputs(cmd.paths, cmd.recursive, &std::cin);
    std::vector<std::string> files;
    for (const auto& it : items)
        if (!it.error) files.push_back(it.path);
    if (cmd.limit > 0 && files.size() > cmd.limit) files.resize(cmd.limit);
    if (files.empty()) throw Error(ErrorKind::usage, "bench: no images found in the given paths");
    std::vector<std::string> run_files;
    for (int r = 0; r < cmd.repeat; ++r) run_files.insert(run_files.end(), files.begin(), files.end());

    const auto manifest = load_manifest(ctx.manifest_path());
    const auto models = find_model_set(ctx.home, manifest, cmd.options.detector == "cnn");
    set_blas_threads(1);
    const Analyzer prototype(models, cmd.options);
    if (cmd.jobs.empty()) {
        cmd.jobs.push_back(1);
        const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        if (cores > 1) cmd.jobs.push_back(cores);
    }

    if (cmd.format == "table")
        std::cout << fmt::format(
            "{:>4} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7}\n", "jobs", "images",
            "img/s", "faces/s", "decode", "detect", "landm", "desc", "gender", "desc/face", "cpu/img", "rss0MB",
            "rssEnd", "peakMB");
    for (int jobs : cmd.jobs) {
        reset_peak_rss();
        const double rss0 = current_rss_bytes() / 1e6;
        double rss_mid = 0;
        StageTimes sum;
        std::size_t faces = 0, failures = 0;
        const auto start = std::chrono::steady_clock::now();
        const double cpu_start = process_cpu_seconds();
        ordered_parallel<ItemStats>(
            run_files.size(), jobs,
            [&] {
                return [&, analyzer = Analyzer(prototype)](std::size_t i) mutable {
                    ItemStats s;
                    try {
                        const auto t0 = std::chrono::steady_clock::now();
                        const auto image = load_image_file(run_files[i]);
                        const double decode =
                            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
                        const auto result = analyzer.analyze(image.bgr);
                        s.times = result.times;
                        s.times.decode = decode;
                        s.faces = result.faces.size();
                    } catch (const std::exception&) {
                        s.failed = true;
                    }
                    return s;
                };
            },
            [&](std::size_t i, ItemStats&& s) {
                sum.decode += s.times.decode;
                sum.detect += s.times.detect;
                sum.landmarks += s.times.landmarks;
                sum.descriptor += s.times.descriptor;
                sum.gender += s.times.gender;
                faces += s.faces;
                failures += s.failed ? 1 : 0;
                if (i == run_files.size() / 2) rss_mid = current_rss_bytes() / 1e6;
                if (ctx.stderr_tty && i % 20 == 0)
                    draw_progress(ctx, fmt::format("bench jobs={}", jobs), i, run_files.size());
            });
        end_progress(ctx);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        // CPU time per image does not depend on what else the machine runs:
        // with it, throughput on idle cores can be told apart from contention.
        const double cpu_ms = (process_cpu_seconds() - cpu_start) * 1000.0 / static_cast<double>(run_files.size());
        const double n = static_cast<double>(run_files.size());
        const double rss_end = current_rss_bytes() / 1e6, peak = peak_rss_bytes() / 1e6;
        const double desc_per_face = faces ? sum.descriptor / faces : 0.0;
        if (cmd.format == "table") {
            std::cout << fmt::format(
                "{:>4} {:>7} {:>8.2f} {:>8.2f} {:>7.2f} {:>7.2f} {:>7.2f} {:>7.2f} {:>7.2f} {:>9.2f} "
                "{:>7.1f} {:>7.0f} {:>7.0f} {:>7.0f}\n",
                jobs, run_files.size(), n / secs, faces / secs, sum.decode / n, sum.detect / n, sum.landmarks / n,
                sum.descriptor / n, sum.gender / n, desc_per_face, cpu_ms, rss0, rss_end, peak);
        } else {
            nlohmann::json j = {{"jobs", jobs},
                                {"images", run_files.size()},
                                {"failed", failures},
                                {"faces", faces},
                                {"seconds", secs},
                                {"images_per_s", n / secs},
                                {"faces_per_s", faces / secs},
                                {"ms_per_image",
                                 {{"decode", sum.decode / n},
                                  {"detect", sum.detect / n},
                                  {"landmarks", sum.landmarks / n},
                                  {"descriptor", sum.descriptor / n},
                                  {"gender", sum.gender / n}}},
                                {"descriptor_ms_per_face", desc_per_face},
                                {"cpu_ms_per_image", cpu_ms},
                                {"rss_mb", {{"start", rss0}, {"middle", rss_mid}, {"end", rss_end}, {"peak", peak}}},
                                {"detector", cmd.options.detector},
                                {"blas", blas_description()}};
            std::cout << j.dump() << std::endl;
        }
        if (failures) ctx.warn(fmt::format("{} images failed to decode or analyze", failures));
    }
    if (cmd.format == "table") std::cout << "blas: " << blas_description() << "\n";
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_bench(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<BenchCommand>();
    auto* sub = app.add_subcommand("bench", "Measure pipeline throughput and memory on a folder of photos");
    sub->add_option("paths", cmd->paths, "Image files or folders")->required();
    sub->add_flag("-r,--recursive", cmd->recursive, "Descend into subfolders");
    sub->add_option("--jobs", cmd->jobs, "Worker counts to measure (default: 1 and all cores)")
        ->delimiter(',')
        ->check(CLI::Range(1, 256));
    sub->add_option("--limit", cmd->limit, "Use at most N images");
    sub->add_option("--repeat", cmd->repeat, "Run over the images N times (for memory over long runs)")
        ->check(CLI::Range(1, 1000));
    add_detection_options(sub, cmd->options);
    sub->add_option("--format", cmd->format, "table or jsonl")->check(CLI::IsMember({"table", "jsonl"}));
    return {sub, [cmd, &ctx] { return run_bench(*cmd, ctx); }};
}

}  // namespace faceq::cli
