// cmd_export.cpp — `faceq export xmp`: what the gallery holds of each
// recorded photo, written as face regions into the photo's XMP sidecar
// (session/xmp_faces.hpp, docs/xmp.md). One "xmp" record per photo and an
// "xmp_export" summary; a photo missing or changed since it was recorded is
// skipped with a warning; exit 1 when a sidecar could not be read or written
// (the others are written all the same).

#include <iostream>

#include "context.hpp"
#include "faceq/session/records.hpp"
#include "faceq/session/xmp_faces.hpp"
#include "gallery_support.hpp"
#include "xmp_options.hpp"

namespace faceq::cli {
namespace {

struct ExportXmpCommand {
    XmpCliOptions xmp;
    int jobs = 0;
};

int run_export_xmp(const ExportXmpCommand& cmd, Context& ctx) {
    auto gallery = require_home_gallery(ctx);
    RecordWriter writer(std::cout, RecordFormat::jsonl);
    const std::size_t failed = export_gallery_xmp(
        *gallery, cmd.xmp.options(), jobs_or_cores(cmd.jobs),
        [&](std::string_view type, nlohmann::json record) { writer.write(type, std::move(record)); },
        [&](const std::string& message) { ctx.error(message); }, [&](const std::string& m) { ctx.warn(m); });
    return failed > 0 ? 1 : 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_export(CLI::App& app, Context& ctx) {
    auto* sub = app.add_subcommand("export", "Write what the gallery knows into files other tools read");
    sub->require_subcommand(1);
    auto cmd = std::make_shared<ExportXmpCommand>();
    auto* xmp = sub->add_subcommand(
        "xmp",
        "Write the faces of every photo the gallery recorded (analyze --store) as XMP face regions (MWG, as "
        "digiKam, darktable and Lightroom read them) into the photo's sidecar; the photo is never touched, other "
        "tags and regions in the sidecar stay. Photos missing or changed since are skipped");
    add_xmp_options(xmp, cmd->xmp);
    xmp->add_option("-j,--jobs", cmd->jobs, "Threads reading photos (default: number of cores)")
        ->check(CLI::Range(1, 256));
    return {sub, [cmd, &ctx] { return run_export_xmp(*cmd, ctx); }};
}

}  // namespace faceq::cli
