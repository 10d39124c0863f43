// cmd_gallery.cpp — `faceq gallery reindex | thumbnails | copy | export | import`.
//
// copy --to DEST / export FILE / import FILE move a gallery between SQLite
// and PostgreSQL (Gallery::copy_to: one transaction in the destination,
// verified by counts and a digest of every row before it commits): copy
// writes the home's gallery (--db/FACEQ_DB, else faceq.db) into DEST, a
// PostgreSQL URL or an SQLite file; export writes it into a new SQLite file
// (built as FILE.part and renamed when complete, so a killed export leaves no
// FILE); import copies FILE (an SQLite gallery, or a URL) into the home's
// gallery. The destination must be empty. One `gallery_copy` record; exit 0,
// 1 on failure (nothing written), 2 for bad use.
//
// `faceq gallery reindex`: re-describes the gallery's
// samples and detections with the installed pipeline (the detection options
// as for analyze), so a gallery moves to a new detector or alignment (see
// faceq/session/reindex.hpp). One `reindex_skipped` record per stored face
// left as it was (missing or changed photo, no face at its box), then one
// `reindex` record with the counts. Ctrl-C stops after the photos in flight;
// what was done stays, and a second run resumes. Exit 0 when every stale
// descriptor was re-described, 1 when some were skipped, 130 when interrupted.
//
// `faceq gallery thumbnails [--dry-run]`: makes the face thumbnails the
// gallery lacks from the photos they were recorded from, when those still
// exist unchanged (faceq/session/thumbnails.hpp). One `thumbnails_skipped`
// record per face left without one (missing or changed photo), then one
// `thumbnails` record with the counts. Ctrl-C stops after the photos in
// flight; what was stored stays, and a second run goes on. Exit codes as
// reindex's.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/session/identification.hpp"
#include "faceq/session/reindex.hpp"
#include "faceq/session/thumbnails.hpp"
#include "gallery_support.hpp"
#include "signals.hpp"

namespace faceq::cli {
namespace {

struct ReindexCommand {
    AnalyzeOptions options;
    int jobs = 0;
};

int run_reindex(const ReindexCommand& cmd, Context& ctx) {
    auto gallery = require_home_gallery(ctx);
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

struct ThumbnailsCommand {
    bool dry_run = false;
    int jobs = 0;
};

int run_thumbnails(const ThumbnailsCommand& cmd, Context& ctx) {
    auto gallery = require_home_gallery(ctx);
    StopSignals signals(stop_between_steps);
    const auto r = make_missing_thumbnails(
        *gallery, cmd.dry_run, jobs_or_cores(cmd.jobs), [] { return StopSignals::received(); },
        [&ctx](const Progress& p) { draw_progress(ctx, "thumbnails", p.done, p.total); },
        [](const ThumbnailSkip& s) {
            print_record("thumbnails_skipped", {{"kind", s.face.sample ? "sample" : "detection"},
                                                {"id", s.face.id},
                                                {"file", s.face.path},
                                                {"reason", s.reason}});
        });
    end_progress(ctx);
    const std::size_t made = r.samples_made + r.detections_made;
    print_record("thumbnails", {{"samples", {{"missing", r.samples}, {"made", r.samples_made}}},
                                {"detections", {{"missing", r.detections}, {"made", r.detections_made}}},
                                {"photos", r.photos},
                                {"skipped", r.skipped},
                                {"bytes_per_face", made ? std::round(double(r.bytes) / double(made)) : 0.0},
                                {"dry_run", r.dry_run},
                                {"interrupted", r.interrupted}});
    if (r.interrupted) {
        ctx.error("thumbnails interrupted; what was stored is kept, run it again to go on");
        return StopSignals::exit_code();
    }
    if (r.skipped)
        ctx.warn(
            fmt::format("{} stored faces have no thumbnail: their photos are missing or changed (see the "
                        "thumbnails_skipped records)",
                        r.skipped));
    return r.skipped ? 1 : 0;
}

struct CopyCommand {
    std::string to;    // copy --to
    std::string file;  // export / import
};

void print_copy(const CopyResult& r, const std::string& from, const std::string& to, double seconds) {
    print_record("gallery_copy", {{"from", Gallery::describe_location(from)},
                                  {"to", Gallery::describe_location(to)},
                                  {"persons", r.persons},
                                  {"samples", r.samples},
                                  {"images", r.images},
                                  {"detections", r.detections},
                                  {"rejections", r.rejections},
                                  {"thumbnails", r.thumbnails},
                                  {"digest", r.digest},
                                  {"verified", true},
                                  {"seconds", std::round(seconds * 1000) / 1000}});
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run_copy(const CopyCommand& cmd, Context& ctx) {
    const auto start = std::chrono::steady_clock::now();
    auto from = require_home_gallery(ctx);
    Gallery::Options options;
    options.log = log_to(ctx);
    auto to = Gallery::open(cmd.to, options);
    const auto r = from->copy_to(*to);
    print_copy(r, ctx.home.gallery_location(), cmd.to, seconds_since(start));
    return 0;
}

int run_export(const CopyCommand& cmd, Context& ctx) {
    const auto start = std::chrono::steady_clock::now();
    const std::filesystem::path file = cmd.file;
    std::error_code ec;
    if (std::filesystem::exists(file, ec))
        throw Error(ErrorKind::usage, fmt::format("'{}' exists; export writes a new file", file.string()));
    auto from = require_home_gallery(ctx);
    // Built beside FILE under another name, renamed when whole: a killed
    // export leaves no FILE (only FILE.part, which the next export replaces).
    const std::filesystem::path part = file.string() + ".part";
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(part.string() + suffix, ec);
    CopyResult r;
    try {
        Gallery to(part);
        r = from->copy_to(to);
    } catch (...) {
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(part.string() + suffix, ec);
        throw;
    }
    std::filesystem::rename(part, file, ec);
    if (ec)
        throw Error(ErrorKind::io,
                    fmt::format("cannot rename '{}' to '{}': {}", part.string(), file.string(), ec.message()));
    print_copy(r, ctx.home.gallery_location(), file.string(), seconds_since(start));
    return 0;
}

int run_import(const CopyCommand& cmd, Context& ctx) {
    const auto start = std::chrono::steady_clock::now();
    Gallery::Options options;
    options.create = false;
    options.log = log_to(ctx);
    if (!Gallery::is_database_url(cmd.file)) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(cmd.file, ec))
            throw Error(ErrorKind::not_found, fmt::format("no gallery file '{}'", cmd.file));
    }
    auto from = Gallery::open(cmd.file, options);
    auto to = open_gallery(ctx.home, true, log_to(ctx));
    const auto r = from->copy_to(*to);
    print_copy(r, cmd.file, ctx.home.gallery_location(), seconds_since(start));
    return 0;
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

    auto thumbs = std::make_shared<ThumbnailsCommand>();
    auto* thumbs_sub = sub->add_subcommand(
        "thumbnails", "Make the face thumbnails the gallery lacks from the photos, where unchanged (resumable)");
    thumbs_sub->add_flag("--dry-run", thumbs->dry_run, "Read and check the photos, count, store nothing");
    thumbs_sub->add_option("-j,--jobs", thumbs->jobs, "Worker threads (default: number of cores)")
        ->check(CLI::Range(1, 256));

    auto copy = std::make_shared<CopyCommand>();
    auto* copy_sub = sub->add_subcommand(
        "copy", "Copy the gallery into another database (PostgreSQL URL or SQLite file), verified, all or nothing");
    copy_sub->add_option("--to", copy->to, "The destination: postgresql://... or a file path (must be empty)")
        ->required();
    auto* export_sub = sub->add_subcommand("export", "Write the gallery into a new SQLite file, verified");
    export_sub->add_option("file", copy->file, "The new file")->required();
    auto* import_sub =
        sub->add_subcommand("import", "Copy a gallery file (or database URL) into this (empty) gallery, verified");
    import_sub->add_option("file", copy->file, "An SQLite gallery file, or postgresql://...")->required();
    return {sub, [cmd, copy, copy_sub, export_sub, import_sub, thumbs, thumbs_sub, &ctx] {
                if (thumbs_sub->parsed()) return run_thumbnails(*thumbs, ctx);
                if (copy_sub->parsed()) return run_copy(*copy, ctx);
                if (export_sub->parsed()) return run_export(*copy, ctx);
                if (import_sub->parsed()) return run_import(*copy, ctx);
                return run_reindex(*cmd, ctx);
            }};
}

}  // namespace faceq::cli
