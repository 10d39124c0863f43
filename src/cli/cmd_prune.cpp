// cmd_prune.cpp — `faceq prune --older-than 30d [--strangers] [--dry-run]`:
// deletes detections older than the age given (s, m, h, d or w), in one
// transaction; with --strangers also unknown persons that have no detection
// left and were not seen since. Images stay recorded, so a cron `analyze
// --store` does not analyse old photos again. Prints one JSON line with the
// counts.
#include <fmt/format.h>

#include <ctime>
#include <iostream>
#include <regex>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/session/identification.hpp"
#include "faceq/session/records.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct PruneCommand {
    std::string older_than;
    bool strangers = false;
    bool dry_run = false;
};

std::int64_t parse_age_seconds(const std::string& text) {
    static const std::regex re("^([0-9]{1,9})([smhdw])$");
    std::smatch m;
    if (!std::regex_match(text, m, re))
        throw Error(ErrorKind::usage,
                    fmt::format("--older-than '{}': expected a number and a unit, e.g. 30d, 12h, 2w", text));
    const std::int64_t n = std::stoll(m[1]);
    switch (m[2].str()[0]) {
        case 's':
            return n;
        case 'm':
            return n * 60;
        case 'h':
            return n * 3600;
        case 'd':
            return n * 86400;
        default:
            return n * 7 * 86400;
    }
}

int run_prune(const PruneCommand& cmd, Context& ctx) {
    const std::int64_t before = unix_now() - parse_age_seconds(cmd.older_than);
    auto gallery = open_gallery(ctx.home, false);
    PruneResult r;
    if (gallery) r = gallery->prune(before, cmd.strangers, cmd.dry_run);
    const nlohmann::json j{{"before", iso_time(before)},
                           {"detections_deleted", r.detections},
                           {"strangers_deleted", r.strangers},
                           {"dry_run", cmd.dry_run}};
    print_record("prune", j);
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_prune(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<PruneCommand>();
    auto* sub = app.add_subcommand("prune", "Delete old detections (and forgotten strangers) from the gallery");
    sub->add_option("--older-than", cmd->older_than, "Age of the detections to delete, e.g. 30d, 12h, 2w")->required();
    sub->add_flag("--strangers", cmd->strangers, "Also delete unknown persons not seen since, with no detection left");
    sub->add_flag("--dry-run", cmd->dry_run, "Count what would be deleted; change nothing");
    return {sub, [cmd, &ctx] { return run_prune(*cmd, ctx); }};
}

}  // namespace faceq::cli
