// cmd_analyze.cpp — `faceq analyze PATH...`: one record per image on stdout.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include "context.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/shard.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/draw.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/session/analysis_session.hpp"
#include "faceq/session/records.hpp"
#include "faceq/session/xmp_faces.hpp"
#include "gallery_support.hpp"
#include "xmp_options.hpp"

namespace faceq::cli {
namespace {

struct AnalyzeCommand {
    std::vector<std::string> paths;
    bool recursive = false;
    AnalyzeOptions options;
    int jobs = 0;
    std::string format = "jsonl";
    bool embeddings = false;
    std::string draw_dir;
    std::uint64_t max_pixels = ImageLimits{}.max_pixels;
    std::string shard;  // "K/N", "auto" or empty (every input)
    SessionOptions session;
    bool no_thumbnails = false;
    bool xmp = false;
    XmpCliOptions xmp_options;
};

struct ItemOutcome {
    ImageAnalysis analysis;
    nlohmann::json record;
    bool failed = false;
    std::string message;

    // An input that could not be analysed: an error record, and its message for stderr.
    void fail(const std::string& path, const std::exception& e) {
        failed = true;
        const auto* error = dynamic_cast<const Error*>(&e);
        message = error ? e.what() : fmt::format("cannot analyze '{}': {}", path, e.what());
        record = error_record(path, error ? error->kind() : ErrorKind::internal, message);
    }
};

// Unique output names for --draw: the input's file name, with "_2", "_3"...
// appended when another input already took it, or when the name is one of the
// inputs themselves (--draw into the photos' own folder must not overwrite
// them). Names are final: save_annotated() would append ".png" to other
// extensions, so that is done here, before checking for clashes.
std::vector<std::filesystem::path> draw_targets(const std::vector<InputItem>& items, const std::string& dir) {
    namespace fs = std::filesystem;
    std::vector<fs::path> out;
    if (dir.empty()) return out;
    const auto key = [](const fs::path& p) {
        std::error_code ec;
        const fs::path c = fs::weakly_canonical(p, ec);
        return (ec ? p.lexically_normal() : c).string();
    };
    std::set<std::string> taken;
    for (const auto& item : items) taken.insert(key(item.path));
    for (const auto& item : items) {
        fs::path name = fs::path(item.path).filename();
        std::string ext = name.extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") name += ".png";
        fs::path target = fs::path(dir) / name;
        for (int n = 2; !taken.insert(key(target)).second; ++n)
            target = fs::path(dir) / (name.stem().string() + fmt::format("_{}", n) + name.extension().string());
        out.push_back(std::move(target));
    }
    return out;
}

// This worker's inputs of the whole batch `all`, and their --draw targets.
// The targets are chosen over the whole batch, so that workers drawing into
// one folder pick the same unique names and never overwrite each other.
void select_shard(const Shard& shard, std::vector<InputItem>& all, std::vector<std::filesystem::path>& targets,
                  const Context& ctx) {
    std::vector<InputItem> mine;
    std::vector<std::filesystem::path> my_targets;
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (shard_of(all[i].key, shard.count) != shard.index) continue;
        mine.push_back(std::move(all[i]));
        if (!targets.empty()) my_targets.push_back(std::move(targets[i]));
    }
    const bool spelled_out = shard.source.rfind("--shard", 0) == 0;
    ctx.info(fmt::format("shard {}/{}{}: {} of {} inputs", shard.index, shard.count,
                         spelled_out ? "" : fmt::format(" ({})", shard.source), mine.size(), all.size()));
    all = std::move(mine);
    targets = std::move(my_targets);
}

int run_analyze(AnalyzeCommand& cmd, Context& ctx) {
    const auto format = parse_record_format(cmd.format);
    // Checked before stdin is read or a model loaded: a misconfigured worker stops at once.
    std::optional<Shard> shard;
    if (cmd.shard == "auto")
        shard = shard_from_environment([](const char* name) { return std::getenv(name); });
    else if (!cmd.shard.empty())
        shard = parse_shard(cmd.shard);
    auto items = expand_inputs(cmd.paths, cmd.recursive, &std::cin);
    if (items.empty()) throw Error(ErrorKind::usage, "no input images (give files, folders, or - for stdin)");
    auto targets = draw_targets(items, cmd.draw_dir);
    // An empty shard is no error: with more workers than inputs some get none.
    if (shard) select_shard(*shard, items, targets, ctx);
    if (!cmd.draw_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(cmd.draw_dir, ec);
        if (ec)
            throw Error(ErrorKind::io,
                        fmt::format("cannot create --draw directory '{}': {}", cmd.draw_dir, ec.message()));
    }
    cmd.session.analyze = cmd.options;
    cmd.session.thumbnails = !cmd.no_thumbnails;
    AnalysisSession session(ctx.home, load_manifest(ctx.manifest_path()), cmd.session, log_to(ctx));
    const auto& v = session.versions();
    ctx.debug(fmt::format("models: detector {}, landmarks {}, embedder {}, gender {}", v.detector, v.landmarks,
                          v.embedder, v.gender.empty() ? "none" : v.gender));
    if (cmd.xmp && !session.identifies())
        ctx.warn(fmt::format("no gallery at '{}': no face can be named, so --xmp writes no regions (enroll first)",
                             Gallery::describe_location(ctx.home.gallery_location())));
    const ImageLimits limits{cmd.max_pixels, ImageLimits{}.max_file_bytes};

    RecordWriter writer(std::cout, format);
    std::size_t failures = 0;
    // One worker (one photo, or --jobs 1) runs the prototype itself instead of a copy.
    const int jobs = std::max(1, std::min<int>(jobs_or_cores(cmd.jobs), static_cast<int>(items.size())));
    std::optional<Analyzer> only;
    if (jobs == 1) only.emplace(session.take_prototype());
    ordered_parallel<ItemOutcome>(
        items.size(), jobs,
        [&] {
            return [&, analyzer = only ? std::move(*only) : Analyzer(session.prototype())](std::size_t i) mutable {
                ItemOutcome out;
                const auto& item = items[i];
                try {
                    if (item.error) throw Error(ErrorKind::invalid_input, *item.error);
                    out.analysis = session.analyze_file(analyzer, item.path, limits);
                    out.record = session.record(out.analysis, cmd.embeddings);
                    if (!targets.empty() && !out.analysis.skipped) {
                        const auto& a = out.analysis;
                        out.record["drawn"] =
                            save_annotated(draw_faces(a.image.bgr, a.result.faces), targets[i]).string();
                    }
                    out.analysis.image.bgr.release();  // only --draw needs the pixels
                } catch (const std::exception& e) {
                    out.fail(item.path, e);
                }
                return out;
            };
        },
        [&](std::size_t i, ItemOutcome&& out) {
            if (!out.failed) {
                try {
                    session.identify(out.analysis, out.record);
                } catch (const std::exception& e) {
                    out.fail(items[i].path, e);
                }
            }
            // On this thread, in input order: exiv2's XMP toolkit is not thread-safe.
            if (cmd.xmp && !out.failed && !out.analysis.skipped) {
                try {
                    out.record["xmp"] = write_record_xmp(items[i].path, out.record, cmd.xmp_options.options());
                } catch (const std::exception& e) {
                    ++failures;
                    const auto* error = dynamic_cast<const Error*>(&e);
                    const std::string message =
                        error ? e.what() : fmt::format("cannot write XMP for '{}': {}", items[i].path, e.what());
                    ctx.error(message);
                    out.record["xmp"] = {{"error", error_json(error ? error->kind() : ErrorKind::internal, message)}};
                }
            }
            if (out.failed) {
                ++failures;
                ctx.error(out.message);
            }
            writer.write(out.failed ? "error" : out.analysis.skipped ? "skipped" : "analysis", std::move(out.record));
        });
    writer.finish();
    if (failures > 0) ctx.debug(fmt::format("{} of {} inputs failed", failures, items.size()));
    return failures > 0 ? 1 : 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_analyze(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<AnalyzeCommand>();
    auto* sub =
        app.add_subcommand("analyze", "Detect faces, landmarks, gender (and age) in photos; one record per image");
    sub->add_option("paths", cmd->paths, "Image files, folders, or - to read paths from stdin")->required();
    sub->add_flag("-r,--recursive", cmd->recursive, "Descend into subfolders");
    add_detection_options(sub, cmd->options);
    sub->add_option("--jitter", cmd->options.jitter, "Average descriptors over N jittered copies (slower, steadier)")
        ->check(CLI::Range(0, 100))
        ->capture_default_str();
    sub->add_option("-j,--jobs", cmd->jobs, "Worker threads (default: number of cores)")->check(CLI::Range(1, 256));
    sub->add_option("--format", cmd->format, "Output format")
        ->check(CLI::IsMember({"jsonl", "json", "csv"}))
        ->capture_default_str();
    sub->add_flag("--embeddings", cmd->embeddings, "Include each face's 128-D descriptor");
    sub->add_option("--draw", cmd->draw_dir, "Write annotated copies into this folder");
    sub->add_option("--max-pixels", cmd->max_pixels, "Refuse images declaring more pixels than this")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40))
        ->capture_default_str();
    sub->add_flag("--store", cmd->session.store,
                  "Record images and detections in the gallery (strangers get stable ids); "
                  "images stored before with the same models are skipped");
    sub->add_flag("--force", cmd->session.force, "With --store: analyse and store images again even when unchanged");
    sub->add_flag("--no-thumbnails", cmd->no_thumbnails,
                  "With --store: store no face thumbnails (`faceq gallery thumbnails` makes them later)");
    sub->add_option("--shard", cmd->shard,
                    "Analyse only shard K of N (K/N, 0-based) of the inputs, so N workers split one batch without "
                    "talking; 'auto' reads Kubernetes' JOB_COMPLETION_INDEX + FACEQ_SHARD_COUNT or Slurm's "
                    "SLURM_ARRAY_TASK_ID/_MIN/_COUNT. Inputs split by a hash of their path relative to the folder "
                    "argument they were found in (a file given directly or on stdin: its path as given), so "
                    "workers mounting the photos at different roots agree");
    add_calibration_flags(sub, cmd->session.calibration);
    auto* xmp = sub->add_flag("--xmp", cmd->xmp,
                              "Write each photo's named faces as XMP face regions (MWG) into its sidecar, replacing "
                              "those faceq wrote before; other tags and regions stay, the photo is never touched");
    add_xmp_options(sub, cmd->xmp_options, xmp);
    return {sub, [cmd, &ctx] { return run_analyze(*cmd, ctx); }};
}

}  // namespace faceq::cli
