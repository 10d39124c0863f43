// cmd_stats.cpp — `faceq stats`: the gallery at a glance — persons known and
// unknown, samples, images, detections (by decision, and per day for the last
// 30 days, UTC), database size, the installed embedder and the embedders the
// samples were computed with. A table for people by default; `--format json`
// prints one JSON object for dashboards. A home without a gallery reports
// zeros (and creates nothing).
#include <fmt/format.h>

#include <ctime>
#include <iostream>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/text.hpp"
#include "faceq/base/time.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/models/deploy.hpp"
#include "faceq/models/models.hpp"
#include "faceq/session/identification.hpp"
#include "faceq/session/records.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct StatsCommand {
    std::string format = "text";
};

void print_text(const nlohmann::json& j) {
    const auto& p = j["persons"];
    const auto& d = j["detections"];
    std::cout << fmt::format("persons      {} ({} known, {} unknown)\n", p["total"].get<long>(), p["known"].get<long>(),
                             p["unknown"].get<long>());
    std::cout << fmt::format("samples      {}\n", j["samples"].get<long>());
    std::cout << fmt::format("images       {}\n", j["images"].get<long>());
    std::cout << fmt::format("detections   {} ({} known, {} unknown, {} ambiguous); last {}\n", d["total"].get<long>(),
                             d["known"].get<long>(), d["unknown"].get<long>(), d["ambiguous"].get<long>(),
                             d["last"].is_null() ? "never" : d["last"].get<std::string>());
    std::cout << fmt::format("database     {} ({:.1f} MB, schema {})\n",
                             printable(j["database"]["path"].get<std::string>()),
                             j["database"]["bytes"].get<double>() / 1e6, j["database"]["schema_version"].get<int>());
    const auto& e = j["embedder"];
    std::cout << fmt::format("embedder     {}\n",
                             e["installed"].is_null() ? "(none installed)" : e["installed"].get<std::string>());
    for (const auto& g : e["gallery"])
        std::cout << fmt::format(
            "  samples by {}: {} ({} persons){}\n", g["embedder"].get<std::string>(), g["samples"].get<long>(),
            g["persons"].get<long>(),
            !e["installed"].is_null() && g["embedder"] == e["installed"] ? "" : "  <- not comparable, not used");
    std::cout << "detections per day (last 30 days, UTC)\n";
    long most = 1;
    for (const auto& day : j["detections_per_day"]) most = std::max(most, day["detections"].get<long>());
    for (const auto& day : j["detections_per_day"]) {
        const long n = day["detections"].get<long>();
        std::cout << fmt::format("  {} {:>7} {}\n", day["date"].get<std::string>(), n,
                                 std::string(static_cast<std::size_t>(40 * n / most), '#'));
    }
}

int run_stats(const StatsCommand& cmd, Context& ctx) {
    std::optional<std::string> embedder;
    try {  // the descriptors the default pipeline computes (embedder + alignment)
        if (auto e = find_installed_embedder(ctx.home.models_dir(), ctx.manifest_path())) embedder = e->id;
    } catch (const Error& e) {
        ctx.debug(fmt::format("no embedder: {}", e.what()));
    }
    auto gallery = open_gallery(ctx.home, false);
    GalleryStats s;
    const std::int64_t now = unix_now();
    if (gallery) {
        s = gallery->stats(now);
    } else {
        s.schema_version = 0;
        // Same shape without a database: 30 days of zeros.
        for (std::int64_t day = now - now % 86400 - 29 * 86400; day <= now; day += 86400)
            s.detections_per_day.emplace_back(iso_day(day), 0);
    }
    const auto j = stats_json(
        s, gallery ? s.database_location : Gallery::describe_location(ctx.home.gallery_location()), embedder);
    if (cmd.format == "json")
        print_record("stats", j);
    else
        print_text(j);
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_stats(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<StatsCommand>();
    auto* sub = app.add_subcommand("stats", "Gallery statistics: persons, samples, detections per day, size, embedder");
    sub->add_option("--format", cmd->format, "text for people, json for dashboards")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();
    return {sub, [cmd, &ctx] { return run_stats(*cmd, ctx); }};
}

}  // namespace faceq::cli
