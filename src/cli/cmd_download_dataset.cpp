// cmd_download_dataset.cpp — `faceq download dataset`: the nested subcommand
// of the `download` group (cmd_download.cpp) that fetches training data.
//
//   faceq download dataset utkface [--from URL|FILE] [--limit N] [--seed N]
//                          [--mirror DIR|URL] [--force]
//
// fetches a training archive listed in data/datasets.json (from --from, else
// the mirror, else its upstream URL), checks it and unpacks its images into
// <home>/datasets/<name>/images; prints one record (status, images, source).
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "context.hpp"
#include "faceq/models/source.hpp"
#include "faceq/training/datasets.hpp"

namespace faceq::cli {
namespace {

using json = nlohmann::ordered_json;

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
    print_record("dataset", std::move(j));
    return 0;
}

}  // namespace

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

}  // namespace faceq::cli
