// cmd_download.cpp — `faceq download models`: fetch, verify and install the
// models listed in data/models.json into <home>/models, or list them.
//
//   faceq download models [--mirror DIR|URL] [--only NAME]... [--force]
//                         [--list] [--format table|json]
//
// stdout: one record per model (JSON Lines by default for installs, a table by
// default for --list). stderr: one line per model (installed, already
// installed, or why it failed), progress bars on a TTY. Exit 1 when a role (or
// a model named with --only) could not be installed.
//
// `download` is a group: each kind of thing it fetches is a nested subcommand
// registered by its own function (`download dataset`: cmd_download_dataset.cpp).
#include <fmt/format.h>

#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/download.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/source.hpp"
#include "table.hpp"

namespace faceq::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

struct ModelsOptions {
    std::string mirror;
    std::vector<std::string> only;
    bool force = false;
    bool list = false;
    std::string format;  // empty: a table for --list, JSON Lines for installs
};

std::string human_size(std::uint64_t bytes) {
    if (bytes == 0) return "?";
    if (bytes < 1000) return fmt::format("{} B", bytes);
    if (bytes < 1000 * 1000) return fmt::format("{:.1f} kB", static_cast<double>(bytes) / 1e3);
    return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
}

std::vector<const ModelEntry*> selected(const Manifest& manifest, const std::vector<std::string>& only) {
    std::vector<const ModelEntry*> out;
    if (only.empty()) {
        for (const auto& m : manifest.models) out.push_back(&m);
        return out;
    }
    for (const auto& name : only) {
        const ModelEntry* e = manifest.find(name);
        if (!e)
            throw Error(ErrorKind::usage, fmt::format("unknown model '{}' (see `faceq download models --list`)", name));
        out.push_back(e);
    }
    return out;
}

int list_models(const Context& ctx, const ModelsOptions& opt) {
    const Manifest manifest = load_manifest(ctx.manifest_path());
    const fs::path models_dir = ctx.home.models_dir();
    const bool as_json = opt.format == "json";
    std::vector<std::vector<std::string>> rows{{"NAME", "ROLE", "PRIORITY", "SIZE", "LICENSE", "INSTALLED", "SOURCE"}};
    for (const ModelEntry* e : selected(manifest, opt.only)) {
        const auto installed = read_installed(models_dir, *e);
        if (as_json) {
            json j{{"name", e->name},
                   {"role", e->role},
                   {"priority", e->priority},
                   {"source", e->url},
                   {"source_file", e->source_file},
                   {"size", e->size},
                   {"sha256", e->sha256},
                   {"license", e->license},
                   {"installed", installed.has_value()}};
            j["version"] = installed ? json(installed->version()) : json(nullptr);
            j["path"] = installed ? json(installed->path.string()) : json(nullptr);
            print_record("model_file", std::move(j));
        } else {
            rows.push_back({e->name, e->role, std::to_string(e->priority), human_size(e->size), e->license,
                            installed ? installed->version() : "no", e->url});
        }
    }
    if (!as_json) print_table(rows);
    return 0;
}

int install(const Context& ctx, const ModelsOptions& opt) {
    const Manifest manifest = load_manifest(ctx.manifest_path());
    const fs::path models_dir = ctx.home.models_dir();
    DownloadOptions options;
    options.mirror = opt.mirror.empty() ? ctx.mirror : opt.mirror;
    check_mirror(options.mirror);
    options.only = opt.only;
    options.force = opt.force;
    options.fetch.progress = [&ctx](const Progress& p) { draw_progress(ctx, p.label, p.done, p.total); };
    options.log = log_to(ctx);

    const std::vector<DownloadResult> results = install_models(manifest, models_dir, options);
    end_progress(ctx);

    std::vector<std::vector<std::string>> rows{{"NAME", "ROLE", "STATUS", "VERSION", "SOURCE / MESSAGE"}};
    const bool as_table = opt.format == "table";
    for (const auto& r : results) {
        const std::string version = r.installed ? r.installed->version() : "";
        if (r.status == "installed")
            ctx.info(fmt::format("{}: installed ({}) from {}", r.name, version, r.source));
        else if (r.status == "already installed")
            ctx.info(fmt::format("{}: already installed ({})", r.name, version));
        else
            ctx.warn(fmt::format("{}: {}: {}", r.name, r.status, r.message));

        if (as_table) {
            rows.push_back(
                {r.name, r.role, r.status, version.empty() ? "-" : version, r.message.empty() ? r.source : r.message});
        } else {
            json j{{"name", r.name}, {"role", r.role}, {"status", r.status}, {"source", r.source}};
            j["version"] = r.installed ? json(version) : json(nullptr);
            j["path"] = r.installed ? json(r.installed->path.string()) : json(nullptr);
            if (!r.message.empty()) j["message"] = r.message;
            print_record("model_install", std::move(j));
        }
    }
    if (as_table) print_table(rows);

    // The error line stands on its own (the warnings above vanish under -q):
    // it names what is missing and the last reason each could not be had.
    const auto unmet = unmet_requests(results, !opt.only.empty());
    if (unmet.empty()) return 0;
    std::string names, why;
    for (const auto& [key, reason] : unmet) {
        names += (names.empty() ? "'" : ", '") + key + "'";
        why += (why.empty() ? "" : "; ") + reason;
    }
    const bool one = unmet.size() == 1;
    ctx.error(
        fmt::format("could not install {} {} into '{}': {}",
                    opt.only.empty() ? (one ? "a model for role" : "models for roles") : (one ? "model" : "models"),
                    names, models_dir.string(), why),
        "copy the files named in data/models.json (source_file) into a directory or onto a web server "
        "and pass --mirror DIR|URL, or set FACEQ_MIRROR");
    return 1;
}

std::pair<CLI::App*, Runner> register_download_models(CLI::App& download, Context& ctx) {
    auto opt = std::make_shared<ModelsOptions>();
    CLI::App* sub = download.add_subcommand("models", "Install the models in data/models.json into <home>/models");
    sub->fallthrough();
    sub->add_option("--mirror", opt->mirror,
                    "Directory or base URL holding the upstream files under their own names (default: "
                    "$FACEQ_MIRROR)");
    sub->add_option("--only", opt->only, "Install just these models (repeat, or separate with commas)")
        ->delimiter(',')
        ->type_name("NAME");
    sub->add_flag("--force", opt->force, "Fetch again even when installed");
    sub->add_flag("--list", opt->list, "List the models in the manifest and whether they are installed");
    sub->add_option("--format", opt->format, "stdout format (default: table for --list, json otherwise)")
        ->check(CLI::IsMember({"table", "json"}));
    return {sub, [opt, &ctx]() { return opt->list ? list_models(ctx, *opt) : install(ctx, *opt); }};
}

}  // namespace

std::pair<CLI::App*, Runner> register_download_dataset(CLI::App& download, Context& ctx);

std::pair<CLI::App*, Runner> register_download(CLI::App& app, Context& ctx) {
    CLI::App* download = app.add_subcommand("download", "Fetch what faceq needs (models, datasets)");
    download->require_subcommand(1, 1);
    download->fallthrough();
    std::vector<std::pair<CLI::App*, Runner>> nested{register_download_models(*download, ctx),
                                                     register_download_dataset(*download, ctx)};
    return {download, [nested]() {
                for (const auto& [sub, run] : nested)
                    if (sub->parsed()) return run();
                return 2;
            }};
}

}  // namespace faceq::cli
