// cmd_analyze.cpp — `faceq analyze PATH...`: one record per image on stdout.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <iostream>
#include <set>
#include <thread>

#include "analyze_identity.hpp"
#include "context.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/sysinfo.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/draw.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/session/records.hpp"

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
    IdentifyOptions identify;
};

struct ItemOutcome {
    nlohmann::json record;
    bool failed = false;
    std::string message;
    PendingIdentity identity;
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

int run_analyze(AnalyzeCommand& cmd, Context& ctx) {
    const auto format = parse_record_format(cmd.format);
    const auto items = expand_inputs(cmd.paths, cmd.recursive, &std::cin);
    if (items.empty()) throw Error(ErrorKind::usage, "no input images (give files, folders, or - for stdin)");

    if (!cmd.draw_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(cmd.draw_dir, ec);
        if (ec)
            throw Error(ErrorKind::io,
                        fmt::format("cannot create --draw directory '{}': {}", cmd.draw_dir, ec.message()));
    }
    const auto manifest = load_manifest(ctx.manifest_path());
    const auto models = find_model_set(ctx.home, manifest, cmd.options.detector == "cnn");
    set_blas_threads(1);  // parallelism is across images, one BLAS thread per worker
    const Analyzer prototype(models, cmd.options);
    ctx.debug(fmt::format("models: detector {}, landmarks {}, embedder {}, gender {}", prototype.versions().detector,
                          prototype.versions().landmarks, prototype.versions().embedder,
                          prototype.versions().gender.empty() ? "none" : prototype.versions().gender));

    AnalyzeIdentity identity(ctx, models, prototype.versions(), cmd.identify);
    const auto targets = draw_targets(items, cmd.draw_dir);
    const ImageLimits limits{cmd.max_pixels, ImageLimits{}.max_file_bytes};
    const int jobs = cmd.jobs > 0 ? cmd.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

    RecordWriter writer(std::cout, format);
    std::size_t failures = 0;
    ordered_parallel<ItemOutcome>(
        items.size(), jobs,
        [&] {
            return [&, analyzer = Analyzer(prototype)](std::size_t i) mutable {
                ItemOutcome out;
                const auto& item = items[i];
                if (item.error) {
                    out.failed = true;
                    out.message = *item.error;
                    out.record = error_record(item.path, ErrorKind::invalid_input, *item.error);
                    return out;
                }
                try {
                    const auto start = std::chrono::steady_clock::now();
                    const auto image = load_image_file(item.path, limits);
                    if (auto skipped = identity.unchanged(item.path, image.sha256)) {
                        out.record = std::move(*skipped);
                        return out;
                    }
                    const double decode_ms =
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
                    auto result = analyzer.analyze(image.bgr);
                    result.times.decode = decode_ms;
                    const double elapsed =
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
                    out.record = analysis_record(item.path, result, analyzer.versions(), elapsed, cmd.embeddings);
                    out.identity = identity.pending(item.path, image, result);
                    if (!targets.empty()) {
                        const auto written = save_annotated(draw_faces(image.bgr, result.faces), targets[i]);
                        out.record["drawn"] = written.string();
                    }
                } catch (const Error& e) {
                    out.failed = true;
                    out.message = e.what();
                    out.record = error_record(item.path, e.kind(), e.what());
                } catch (const std::exception& e) {
                    out.failed = true;
                    out.message = fmt::format("cannot analyze '{}': {}", item.path, e.what());
                    out.record = error_record(item.path, ErrorKind::internal, out.message);
                }
                return out;
            };
        },
        [&](std::size_t i, ItemOutcome&& out) {
            if (!out.failed && identity.active()) {
                try {
                    identity.apply(out.record, out.identity);
                } catch (const Error& e) {
                    out.failed = true;
                    out.message = e.what();
                    out.record = error_record(items[i].path, e.kind(), e.what());
                }
            }
            if (out.failed) {
                ++failures;
                ctx.error(out.message);
            }
            writer.write(out.record);
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
    add_identify_options(sub, cmd->identify);
    return {sub, [cmd, &ctx] { return run_analyze(*cmd, ctx); }};
}

}  // namespace faceq::cli
