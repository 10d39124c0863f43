// cmd_bench_identify.cpp — `faceq bench identify DIR`: issue 11's protocol on
// a folder of identities (faceq/session/identify_bench.hpp): known people
// named right, strangers named, stranger consistency.
#include <fmt/format.h>

#include <iostream>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/session/identify_bench.hpp"
#include "faceq/session/records.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct BenchIdentifyCommand {
    std::string dir;
    IdentifyBenchOptions options;
    std::string order = "shuffled";
    int jobs = 0;
    std::string format = "table";
};

nlohmann::json to_json(const IdentifyBenchResult& r, const BenchIdentifyCommand& cmd) {
    return {{"dir", cmd.dir},
            {"enroll", cmd.options.enroll},
            {"strangers_share", cmd.options.strangers},
            {"seed", cmd.options.seed},
            {"order", cmd.order},
            {"known_identities", r.known_identities},
            {"stranger_identities", r.stranger_identities},
            {"enrolled_photos", r.enrolled_photos},
            {"enroll_failures", r.enroll_failures},
            {"known_probes", r.known_probes},
            {"known_right", r.known_right},
            {"known_wrong", r.known_wrong},
            {"known_unknown", r.known_unknown},
            {"known_ambiguous", r.known_ambiguous},
            {"known_missed", r.known_missed},
            {"stranger_probes", r.stranger_probes},
            {"strangers_named", r.strangers_named},
            {"stranger_missed", r.stranger_missed},
            {"stranger_sightings", r.stranger_sightings},
            {"unknown_persons", r.unknown_persons},
            {"known_named_right", r.known_named_right()},
            {"strangers_named_share", r.strangers_named_share()},
            {"stranger_consistency", r.stranger_consistency()},
            {"stranger_attributed", r.stranger_attributed},
            {"stranger_purity", r.stranger_purity()},
            {"cluster_detections", r.cluster_detections},
            {"cluster_reassigned", r.cluster_reassigned},
            {"cluster_agreement", r.cluster_agreement()},
            {"merge_candidates", r.candidates},
            {"merge_candidates_judged", r.candidates_judged},
            {"merge_candidates_right", r.candidates_right}};
}

int bench_identify_cmd(BenchIdentifyCommand& cmd, Context& ctx) {
    cmd.options.shuffle = cmd.order == "shuffled";
    cmd.options.jobs = jobs_or_cores(cmd.jobs);
    const auto progress = [&ctx](const Progress& p) { draw_progress(ctx, p.label, p.done, p.total); };
    const IdentifyBenchResult r =
        bench_identify(ctx.home, load_manifest(ctx.manifest_path()), cmd.dir, cmd.options, log_to(ctx), progress);
    end_progress(ctx);
    if (cmd.format == "jsonl") {
        print_record("identify_bench", to_json(r, cmd));
        return 0;
    }
    std::cout << fmt::format(
        "identities: {} known (enrolled with {} photos each, {} photos), {} strangers; probes in {} order, seed {}\n"
        "known people named right   {:>7.4f}  ({} of {}: {} named as another, {} unknown, {} ambiguous, {} without a "
        "face)\n"
        "strangers named as someone {:>7.4f}  ({} of {}; {} without a face)\n"
        "stranger consistency       {:>7.4f}  ({} of {} sightings carry their stranger's most common id; {} unknown "
        "persons made)\n"
        "stranger id purity         {:>7.4f}  ({} of {} photos given an unknown id are of its main identity)\n"
        "cluster agreement          {:>7.4f}  (faceq cluster moved {} of {} detections of unknown persons)\n"
        "merge candidates           {:>7}  ({} right of the {} holding probes)\n",
        r.known_identities, cmd.options.enroll, r.enrolled_photos, r.stranger_identities, cmd.order, cmd.options.seed,
        r.known_named_right(), r.known_right, r.known_probes, r.known_wrong, r.known_unknown, r.known_ambiguous,
        r.known_missed, r.strangers_named_share(), r.strangers_named, r.stranger_probes, r.stranger_missed,
        r.stranger_consistency(), r.stranger_consistent, r.stranger_sightings, r.unknown_persons, r.stranger_purity(),
        r.stranger_pure, r.stranger_attributed, r.cluster_agreement(), r.cluster_reassigned, r.cluster_detections,
        r.candidates, r.candidates_right, r.candidates_judged);
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_bench_identify(CLI::App& bench, Context& ctx) {
    auto cmd = std::make_shared<BenchIdentifyCommand>();
    auto* sub = bench.add_subcommand(
        "identify", "Identification on a folder of identities: known named, strangers named, stranger consistency");
    sub->add_option("dir", cmd->dir, "One subfolder of photos per person (as enroll --dir)")
        ->required()
        ->check(CLI::ExistingDirectory);
    sub->add_option("--enroll", cmd->options.enroll, "Photos enrolled per known person (the first by name)")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    sub->add_option("--strangers", cmd->options.strangers, "Share of the identities kept out of the gallery")
        ->check(CLI::Range(0.01, 0.99))
        ->capture_default_str();
    sub->add_option("--seed", cmd->options.seed, "Seed of the stranger choice and the probe order")
        ->capture_default_str();
    sub->add_option("--order", cmd->order, "Probe order: shuffled, or sorted (by person, then file)")
        ->check(CLI::IsMember({"shuffled", "sorted"}))
        ->capture_default_str();
    sub->add_option("--identities", cmd->options.identities, "Use only the first N identities (by name)");
    add_detection_options(sub, cmd->options.analyze);
    add_calibration_flags(sub, cmd->options.calibration);
    sub->add_option("-j,--jobs", cmd->jobs, "Worker threads (default: number of cores)")->check(CLI::Range(1, 256));
    sub->add_option("--format", cmd->format, "table or jsonl")->check(CLI::IsMember({"table", "jsonl"}));
    return {sub, [cmd, &ctx] { return bench_identify_cmd(*cmd, ctx); }};
}

}  // namespace faceq::cli
