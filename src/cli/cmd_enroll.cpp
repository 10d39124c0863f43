// cmd_enroll.cpp — `faceq enroll --name NAME IMAGE...` and `faceq enroll --dir
// DIR` (one folder per person, folder name = name): registers known persons
// from photos with one face each. One record per person on stdout:
//   {"person", "person_id", "created", "added", "skipped": [{file, reason}],
//    "failed": [{file, error: {kind, message}}]}
// Each person's samples are written in one transaction once all of its photos
// are analysed, so an interrupted run leaves whole persons, and running it
// again skips what is enrolled (photos already enrolled are not analysed).
// Exit 1 when a photo or a person failed (no face, several faces without
// --pick largest, unreadable, bad folder name).
//
// `faceq enroll --from-xmp DIR [-r]` (session/xmp_faces.hpp): the persons
// named in the photos' XMP face regions (sidecars, else embedded), each region
// matched to the face faceq detects there; then one "xmp_enroll" summary.
// Regions without a matching face are warnings (and listed in the summary);
// exit 1 only when a photo's XMP or image could not be read or a person failed.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "context.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/session/analysis_session.hpp"
#include "faceq/session/enroller.hpp"
#include "faceq/session/records.hpp"
#include "faceq/session/xmp_faces.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct EnrollCommand {
    std::optional<std::string> name;
    std::vector<std::string> images;
    std::string dir;
    std::string from_xmp;
    bool recursive = false;
    std::string pick = "one";
    int jobs = 0;
    AnalyzeOptions options;
};

std::vector<PersonPhotos> plan(const EnrollCommand& cmd) {
    if (!cmd.dir.empty()) return plan_person_folders(cmd.dir);
    PersonPhotos job;
    job.name = check_person_name(*cmd.name);  // a bad name is a usage error here
    job.photos = expand_inputs(cmd.images, false, nullptr);
    return {job};
}

int run_enroll(EnrollCommand& cmd, Context& ctx) {
    if (!cmd.from_xmp.empty() && (cmd.name || !cmd.dir.empty() || !cmd.images.empty()))
        throw Error(ErrorKind::usage, "--from-xmp DIR takes no --name, --dir or photos: the regions name the persons");
    if (cmd.recursive && cmd.from_xmp.empty()) throw Error(ErrorKind::usage, "-r/--recursive goes with --from-xmp");
    if (std::error_code ec; !cmd.from_xmp.empty() && !std::filesystem::is_directory(cmd.from_xmp, ec))
        throw Error(ErrorKind::not_found,
                    fmt::format("no such directory '{}'", cmd.from_xmp));  // before loading models
    if (cmd.from_xmp.empty() && cmd.dir.empty() != cmd.name.has_value())
        throw Error(ErrorKind::usage,
                    "give either --name NAME with photos, --dir DIR (one folder per person) or --from-xmp DIR");
    if (cmd.name && cmd.images.empty()) throw Error(ErrorKind::usage, "--name needs at least one photo");
    if (!cmd.dir.empty() && !cmd.images.empty())
        throw Error(ErrorKind::usage, "--dir takes no photos: each subfolder of DIR is one person");
    const auto persons = cmd.from_xmp.empty() ? plan(cmd) : std::vector<PersonPhotos>{};

    SessionOptions options;
    options.analyze = cmd.options;
    options.analyze.gender = false;  // samples need descriptors only
    options.deployed_head = false;
    options.create_gallery = true;
    const AnalysisSession session(ctx.home, load_manifest(ctx.manifest_path()), options, log_to(ctx));
    RecordWriter writer(std::cout, RecordFormat::jsonl);
    if (!cmd.from_xmp.empty()) {
        const std::size_t failures = enroll_from_xmp(
            session, cmd.from_xmp, {cmd.recursive, jobs_or_cores(cmd.jobs)},
            [&](std::string_view type, nlohmann::json record) { writer.write(type, std::move(record)); },
            [&](const std::string& message) { ctx.error(message); }, log_to(ctx));
        return failures > 0 ? 1 : 0;
    }
    const std::size_t failures = enroll_persons(
        session, persons, {cmd.pick == "largest", jobs_or_cores(cmd.jobs)},
        [&](nlohmann::json record) { writer.write("enrollment", std::move(record)); },
        [&](const std::string& message) { ctx.error(message); });
    return failures > 0 ? 1 : 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_enroll(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<EnrollCommand>();
    auto* sub = app.add_subcommand("enroll", "Register known persons from photos (one face per photo)");
    sub->add_option("images", cmd->images, "Photos of the person (files or folders)");
    sub->add_option("-n,--name", cmd->name, "The person's name (1-128 characters)");
    sub->add_option("--dir", cmd->dir, "Enroll one person per subfolder of DIR (folder name = name)");
    sub->add_option("--from-xmp", cmd->from_xmp,
                    "Enroll the persons named in the XMP face regions (MWG: digiKam, Lightroom, darktable, exiftool) "
                    "of the photos in DIR: sidecars photo.jpg.xmp or photo.xmp, else XMP embedded in the photo. Each "
                    "region is matched to the face faceq detects there; regions without one are reported, not guessed");
    sub->add_flag("-r,--recursive", cmd->recursive, "With --from-xmp: descend into subfolders");
    sub->add_option("--pick", cmd->pick, "Several faces in a photo: fail (one) or take the largest")
        ->check(CLI::IsMember({"one", "largest"}))
        ->capture_default_str();
    sub->add_option("-j,--jobs", cmd->jobs, "Worker threads (default: number of cores)")->check(CLI::Range(1, 256));
    // The same detection options as analyze: a gallery's descriptors depend on
    // the detector and the alignment, so enrolling must be able to match them.
    add_detection_options(sub, cmd->options);
    return {sub, [cmd, &ctx] { return run_enroll(*cmd, ctx); }};
}

}  // namespace faceq::cli
