// cmd_cluster.cpp — `faceq cluster`: groups the stored detections of strangers
// into persons with dlib's chinese_whispers (an edge between two faces nearer
// than the calibration's stranger_limit(), the distance up to which the
// incremental matching lets a stranger's faces lie; --threshold raises it),
// one transaction. Each
// group keeps the unknown id most of its faces already had, so ids stay
// stable across runs; strangers left with nothing are deleted. Prints one
// JSON line with the counts, then one "candidate" line per stranger that is
// probably a known person (faceq persons candidates).
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/session/identification.hpp"
#include "faceq/session/records.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct ClusterCommand {
    CalibrationChoice calibration;
};

int run_cluster(const ClusterCommand& cmd, Context& ctx) {
    const auto manifest = load_manifest(ctx.manifest_path());
    // The strangers the default pipeline stored (its embedder and alignment).
    const auto id = open_identification(
        ctx.home, embedder_identity(require_installed(ctx.home.models_dir(), manifest, role::embedder)),
        cmd.calibration, false, log_to(ctx));
    if (!id.gallery)
        throw Error(ErrorKind::not_found,
                    fmt::format("no gallery '{}'", Gallery::describe_location(ctx.home.gallery_location())));
    const auto& c = id.context.calibration;
    // Edges as far apart as the incremental matching lets a stranger's faces
    // be (stranger_limit()), so the two agree.
    const float edge = stranger_limit(c);
    const auto r = id.gallery->cluster(id.context.embedder, edge);
    const nlohmann::json j{{"detections", r.detections},
                           {"clusters", r.clusters},
                           {"persons_kept", r.persons_kept},
                           {"persons_created", r.persons_created},
                           {"persons_removed", r.persons_removed},
                           {"reassigned", r.reassigned},
                           {"threshold", std::round(edge * 1e4) / 1e4}};
    print_record("cluster", j);
    // Strangers that are probably a known person: reported, never merged.
    for (const auto& m : id.gallery->merge_candidates(id.context)) print_record("candidate", candidate_json(m));
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_cluster(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<ClusterCommand>();
    auto* sub = app.add_subcommand("cluster", "Group strangers' detections into unknown persons (stable ids)");
    add_calibration_flags(sub, cmd->calibration);
    return {sub, [cmd, &ctx] { return run_cluster(*cmd, ctx); }};
}

}  // namespace faceq::cli
