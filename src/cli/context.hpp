// context.hpp — what every subcommand gets from main(): the resolved home,
// data directory, mirror, verbosity and terminal facts, plus the helpers that
// print to stderr in the house format ("faceq: error: <what> '<path>': <why>").
// Subcommands return an exit code (0 ok, 1 failure or partial failure,
// 2 usage) and never call exit().
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faceq/base/home.hpp"

namespace faceq {
struct AnalyzeOptions;
}

namespace faceq::cli {

struct Context {
    Home home;
    std::filesystem::path data_dir;
    std::string mirror;       // --mirror / FACEQ_MIRROR (for download)
    int verbosity = 0;        // -1 quiet, 0 normal, 1 verbose
    bool color = false;       // colour on stderr
    bool stderr_tty = false;  // progress bars only then

    std::filesystem::path manifest_path() const { return data_dir / "models.json"; }

    void error(const std::string& message, const std::string& hint = {}) const;
    void warn(const std::string& message) const;
    void info(const std::string& message) const;   // suppressed by -q
    void debug(const std::string& message) const;  // shown with -v
};

// Prints one JSON record of kind `type` (docs/records.md) on stdout, as one
// line, through the one RecordWriter, and flushes: for the commands that print
// a few records, not a stream of analyses.
void print_record(std::string_view type, nlohmann::json record);

// --detector, --upsample, --max-side, --min-face: how `analyze`, `serve` and
// `bench` find faces (one definition, so the three agree on names and ranges).
void add_detection_options(CLI::App* sub, AnalyzeOptions& options);
// --min-face alone (bench detection takes no other detection option),
// its default named from the detector table.
void add_min_face_option(CLI::App* sub, int& min_face);

// A subcommand registers its options on `app` and returns the function main()
// calls when the user chose it.
using Runner = std::function<int()>;
using Registrar = std::pair<CLI::App*, Runner> (*)(CLI::App& app, Context& ctx);

std::pair<CLI::App*, Runner> register_analyze(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_download(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_bench(CLI::App& app, Context& ctx);
// `bench detection`, a subcommand of `bench` (cmd_bench_detection.cpp).
std::pair<CLI::App*, Runner> register_bench_thumbnails(CLI::App& bench, Context& ctx);
std::pair<CLI::App*, Runner> register_bench_detection(CLI::App& bench, Context& ctx);
std::pair<CLI::App*, Runner> register_bench_identify(CLI::App& bench, Context& ctx);
std::pair<CLI::App*, Runner> register_bench_store(CLI::App& bench, Context& ctx);
std::pair<CLI::App*, Runner> register_prepare(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_runs(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_register_model(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_deploy(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_models(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_train(CLI::App& app, Context& ctx);
// The gallery (issue 3): cmd_enroll, cmd_search, cmd_stats, cmd_persons, cmd_prune, cmd_cluster.
std::pair<CLI::App*, Runner> register_enroll(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_search(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_stats(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_persons(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_prune(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_cluster(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_gallery(CLI::App& app, Context& ctx);
// XMP face regions (issue 15): cmd_export (`export xmp`).
std::pair<CLI::App*, Runner> register_export(CLI::App& app, Context& ctx);
// The HTTP API (issue 5): cmd_serve.
std::pair<CLI::App*, Runner> register_serve(CLI::App& app, Context& ctx);
// The shell completion script and the man page, generated from `app`'s tree
// (cmd_completion.cpp): registered after every other subcommand.
std::pair<CLI::App*, Runner> register_completion(CLI::App& app, Context& ctx);
std::pair<CLI::App*, Runner> register_manpage(CLI::App& app, Context& ctx);

// --jobs as given, or the number of cores when it was not (0).
int jobs_or_cores(int jobs);

// Draws a one-line progress bar on stderr when it is a TTY; no-op otherwise.
void draw_progress(const Context& ctx, const std::string& label, std::uint64_t done, std::uint64_t total);
void end_progress(const Context& ctx);
// A core library log callback for `ctx` (base/progress.hpp): ends a progress
// bar, prints lines starting "warning: " as warnings (as debug lines when
// `warnings_as_debug`), lines starting "debug: " only with -v, and the rest as info.
std::function<void(const std::string&)> log_to(const Context& ctx, bool warnings_as_debug = false);

}  // namespace faceq::cli
