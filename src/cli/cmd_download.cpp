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
//   faceq download dataset utkface [--from URL|FILE] [--limit N] [--seed N]
//                          [--mirror DIR|URL] [--force]
//
// fetches a training archive listed in data/datasets.json (from --from, else
// the mirror, else its upstream URL), checks it and unpacks its images into
// <home>/datasets/<name>/images; prints one record (status, images, source).
//
// `download` is a group: each kind of thing it fetches is a nested subcommand
// registered by its own function below.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/download.hpp"
#include "faceq/models/models.hpp"
#include "faceq/training/datasets.hpp"
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

bool is_http_url(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

// Checked here rather than deep in the download so that a typo in --mirror or
// FACEQ_MIRROR is a usage error (exit 2), not six failed models.
void check_mirror(const std::string& mirror) {
    if (mirror.empty() || is_http_url(mirror)) return;
    std::string dir = mirror;
    if (dir.rfind("file:", 0) == 0) dir = dir.substr(dir.rfind("file://", 0) == 0 ? 7 : 5);
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(
            ErrorKind::usage,
            fmt::format("mirror '{}': not a directory nor an http(s) URL (from --mirror or FACEQ_MIRROR)", mirror));
}

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
            std::cout << j.dump() << '\n';
        } else {
            rows.push_back({e->name, e->role, std::to_string(e->priority), human_size(e->size), e->license,
                            installed ? installed->version() : "no", e->url});
        }
    }
    if (!as_json) print_table(rows);
    std::cout.flush();
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

    // A role counts as done when any of its entries is in place; with --only,
    // each named model is its own "role".
    std::map<std::string, bool> wanted;
    std::vector<std::vector<std::string>> rows{{"NAME", "ROLE", "STATUS", "VERSION", "SOURCE / MESSAGE"}};
    const bool as_table = opt.format == "table";
    for (const auto& r : results) {
        const std::string key = opt.only.empty() ? r.role : r.name;
        const bool ok = r.status == "installed" || r.status == "already installed";
        wanted[key] = wanted[key] || ok;

        std::optional<InstalledModel> installed;
        if (ok)
            if (const ModelEntry* e = manifest.find(r.name)) installed = read_installed(models_dir, *e);
        const std::string version = installed ? installed->version() : "";

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
            j["version"] = installed ? json(version) : json(nullptr);
            j["path"] = installed ? json(installed->path.string()) : json(nullptr);
            if (!r.message.empty()) j["message"] = r.message;
            std::cout << j.dump() << '\n';
        }
    }
    if (as_table) print_table(rows);
    std::cout.flush();

    // The error line stands on its own (the warnings above vanish under -q):
    // it names what is missing and the last reason each could not be had.
    std::map<std::string, std::string> last_failure;
    for (const auto& r : results)
        if (r.status == "failed") last_failure[opt.only.empty() ? r.role : r.name] = r.message;
    std::string names, why;
    for (const auto& [key, ok] : wanted) {
        if (ok) continue;
        names += (names.empty() ? "'" : ", '") + key + "'";
        why += (why.empty() ? "" : "; ") + last_failure[key];
    }
    if (names.empty()) return 0;
    const bool one = names.find(',') == std::string::npos;
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

struct DatasetOptions {
    std::string name;
    std::string from;
    std::string mirror;
    std::size_t limit = 0;
    std::uint64_t seed = 1;
    bool force = false;
};

int install_dataset(const Context& ctx, const DatasetOptions& opt) {
    const DatasetEntry entry = find_dataset_entry(ctx.data_dir / "datasets.json", opt.name);
    DatasetDownloadOptions options;
    options.from = opt.from;
    options.mirror = opt.mirror.empty() ? ctx.mirror : opt.mirror;
    if (options.from.empty()) check_mirror(options.mirror);
    options.limit = opt.limit;
    options.seed = opt.seed;
    options.force = opt.force;
    options.fetch.progress = [&ctx](const Progress& p) { draw_progress(ctx, p.label, p.done, p.total); };
    options.log = log_to(ctx);
    const DatasetDownloadResult r = download_dataset(ctx.home, entry, options);
    end_progress(ctx);
    ctx.info(fmt::format("{}: {} ({} of {} images{}) in '{}'", entry.name, r.status, r.images, r.images_in_archive,
                         r.verified ? ", sha256 verified" : "", (r.dir / "images").string()));
    json j{{"dataset", entry.name},
           {"status", r.status},
           {"images", r.images},
           {"images_in_archive", r.images_in_archive},
           {"limit", opt.limit},
           {"source", r.source},
           {"sha256", r.sha256},
           {"verified", r.verified},
           {"path", (r.dir / "images").string()},
           {"license", entry.license}};
    std::cout << j.dump() << std::endl;
    return 0;
}

std::pair<CLI::App*, Runner> register_download_dataset(CLI::App& download, Context& ctx) {
    auto opt = std::make_shared<DatasetOptions>();
    CLI::App* sub = download.add_subcommand("dataset", "Fetch and unpack a training dataset into <home>/datasets");
    sub->fallthrough();
    sub->add_option("name", opt->name, "Dataset name (see data/datasets.json): utkface")->required();
    sub->add_option("--from", opt->from, "Archive URL or local file (default: the mirror, else upstream)");
    sub->add_option("--mirror", opt->mirror, "Directory or base URL holding the archive (default: $FACEQ_MIRROR)");
    sub->add_option("--limit", opt->limit, "Unpack only N images (a fixed pseudo-random subset; 0 = all)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", opt->seed, "Seed choosing the --limit subset");
    sub->add_flag("--force", opt->force, "Fetch and unpack again even when present");
    return {sub, [opt, &ctx]() { return install_dataset(ctx, *opt); }};
}

}  // namespace

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
