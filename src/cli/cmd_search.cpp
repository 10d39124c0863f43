// cmd_search.cpp — `faceq search --name TEXT`: persons whose name (or id)
// contains TEXT, ignoring case, with sample and detection counts and when
// they were last seen (like the reference's GET /search?name=); `faceq search
// --face IMAGE [--top K]`: for each face in the photo, the K nearest persons,
// known and unknown, with distances and the decision the calibration gives.
// JSON Lines on stdout; no match is not an error (no lines, exit 0).
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/session/analysis_session.hpp"
#include "faceq/session/records.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct SearchCommand {
    std::optional<std::string> name;
    std::string face;
    int top = 5;
    std::string format = "jsonl";
    CalibrationChoice calibration;
    AnalyzeOptions analyze;  // with --face: the pipeline that describes its faces
};

int search_by_name(const SearchCommand& cmd, Context& ctx, RecordWriter& writer) {
    auto gallery = open_gallery(ctx.home, false);
    std::size_t n = 0;
    if (gallery)
        for (const auto& p : gallery->find_persons(*cmd.name)) {
            writer.write("person", person_json(p));
            ++n;
        }
    if (n == 0) ctx.info(fmt::format("no person matches '{}'", *cmd.name));
    return 0;
}

int search_by_face(const SearchCommand& cmd, Context& ctx, RecordWriter& writer) {
    SessionOptions options;
    options.analyze = cmd.analyze;
    options.analyze.gender = false;
    options.deployed_head = false;
    options.calibration = cmd.calibration;
    const AnalysisSession session(ctx.home, load_manifest(ctx.manifest_path()), options, log_to(ctx));
    Analyzer analyzer(session.prototype());
    const auto result = session.analyze_file(analyzer, cmd.face, ImageLimits{}).result;
    if (result.faces.empty()) ctx.info(fmt::format("no face found in '{}'", cmd.face));
    Gallery* gallery = session.gallery();
    const IdentifyContext& identify = session.identification().context;
    const std::string& embedder = identify.embedder;
    for (std::size_t i = 0; i < result.faces.size(); ++i) {
        const auto& f = result.faces[i];
        nlohmann::json record{
            {"file", cmd.face},
            {"face", i},
            {"bbox", {{"x", f.bbox.x}, {"y", f.bbox.y}, {"width", f.bbox.width}, {"height", f.bbox.height}}}};
        nlohmann::json matches = nlohmann::json::array();
        if (gallery) {
            for (const auto& m : gallery->nearest(f.descriptor, embedder, static_cast<std::size_t>(cmd.top)))
                matches.push_back({{"person_id", m.person.public_id},
                                   {"name", m.person.name ? nlohmann::json(*m.person.name) : nlohmann::json(nullptr)},
                                   {"kind", m.person.kind},
                                   {"distance", std::round(m.distance * 1e4) / 1e4}});
            nlohmann::json face;
            add_identity(face, gallery->identify({f.descriptor}, identify).front());
            record.update(face);
        }
        record["matches"] = std::move(matches);
        writer.write("face_match", std::move(record));
    }
    return 0;
}

int run_search(SearchCommand& cmd, Context& ctx) {
    if (cmd.name.has_value() == !cmd.face.empty())
        throw Error(ErrorKind::usage, "give either --name TEXT or --face IMAGE");
    RecordWriter writer(std::cout, cmd.format == "json" ? RecordFormat::json : RecordFormat::jsonl);
    const int rc = cmd.name ? search_by_name(cmd, ctx, writer) : search_by_face(cmd, ctx, writer);
    writer.finish();
    return rc;
}

}  // namespace

std::pair<CLI::App*, Runner> register_search(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<SearchCommand>();
    auto* sub = app.add_subcommand("search", "Find persons by name, or the persons nearest to the faces in a photo");
    sub->add_option("--name", cmd->name, "Case-insensitive part of a name or person id ('' lists everyone)");
    sub->add_option("--face", cmd->face, "A photo: list the nearest persons for each face in it");
    add_detection_options(sub, cmd->analyze);
    sub->add_option("--top", cmd->top, "With --face: how many persons per face")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    sub->add_option("--format", cmd->format, "Output format")
        ->check(CLI::IsMember({"jsonl", "json"}))
        ->capture_default_str();
    add_calibration_flags(sub, cmd->calibration);
    return {sub, [cmd, &ctx] { return run_search(*cmd, ctx); }};
}

}  // namespace faceq::cli
