// cmd_bench_store.cpp — `faceq bench store --to URL|FILE`: recorded images and
// detections per second from N concurrent writers into one gallery database,
// synthetic descriptors, no image analysis (faceq/session/store_bench.hpp).
// The target must be an empty gallery: the bench writes synthetic rows.
#include <fmt/format.h>

#include <iostream>

#include "context.hpp"
#include "faceq/session/store_bench.hpp"

namespace faceq::cli {
namespace {

struct BenchStoreCommand {
    StoreBenchOptions options;
    std::string format = "table";
};

int bench_store_cmd(const BenchStoreCommand& cmd, Context& ctx) {
    const StoreBenchResult r = run_store_bench(cmd.options, log_to(ctx));
    const auto& o = cmd.options;
    if (cmd.format == "jsonl") {
        print_record("store_bench", {{"engine", r.engine},
                                     {"to", Gallery::describe_location(o.location)},
                                     {"writers", o.writers},
                                     {"persons", o.persons},
                                     {"faces_per_image", o.faces_per_image},
                                     {"new_share", o.new_share},
                                     {"seconds", r.seconds},
                                     {"images", r.images},
                                     {"detections", r.detections},
                                     {"new_strangers", r.new_strangers},
                                     {"images_per_second", r.images_per_second},
                                     {"detections_per_second", r.detections_per_second},
                                     {"p50_ms", r.p50_ms},
                                     {"p99_ms", r.p99_ms},
                                     {"enroll_seconds", r.enroll_seconds}});
        return 0;
    }
    std::cout << fmt::format(
        "{} ({}), {} writers, {:.1f} s, {} known persons, {} faces per image, {:.0f}% new strangers\n"
        "recorded   {:>9.1f} images/s  {:>9.1f} detections/s  ({} images, {} detections, {} new strangers)\n"
        "per image  p50 {:.2f} ms  p99 {:.2f} ms (one transaction each)\n",
        r.engine, Gallery::describe_location(o.location), o.writers, r.seconds, o.persons, o.faces_per_image,
        o.new_share * 100, r.images_per_second, r.detections_per_second, r.images, r.detections, r.new_strangers,
        r.p50_ms, r.p99_ms);
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_bench_store(CLI::App& bench, Context& ctx) {
    auto cmd = std::make_shared<BenchStoreCommand>();
    auto* sub = bench.add_subcommand(
        "store", "Recorded images/s into a gallery database from concurrent writers (synthetic, no analysis)");
    sub->add_option("--to", cmd->options.location, "An EMPTY gallery: postgresql://... or a new SQLite file")
        ->required();
    sub->add_option("--writers", cmd->options.writers, "Concurrent writers, one connection each")
        ->check(CLI::Range(1, 256));
    sub->add_option("--seconds", cmd->options.seconds, "How long they write")->check(CLI::Range(0.1, 3600.0));
    sub->add_option("--persons", cmd->options.persons, "Known persons enrolled first")->check(CLI::Range(1, 10000000));
    sub->add_option("--faces", cmd->options.faces_per_image, "Faces per image")->check(CLI::Range(1, 100));
    sub->add_option("--new-share", cmd->options.new_share, "Share of faces that are new strangers")
        ->check(CLI::Range(0.0, 1.0));
    sub->add_option("--seed", cmd->options.seed, "Random seed");
    sub->add_option("--embedder", cmd->options.embedder,
                    "Embedder id the synthetic descriptors are recorded under (default bench@1)");
    sub->add_option("--format", cmd->format, "table or jsonl")->check(CLI::IsMember({"table", "jsonl"}));
    return {sub, [cmd, &ctx] { return bench_store_cmd(*cmd, ctx); }};
}

}  // namespace faceq::cli
