// cmd_models.cpp — `faceq models`: the registered models (the reference's
// check_models.py and model_utils.py).
//
//   faceq models list [--name NAME] [--format table|json]
//   faceq models performance [--name NAME] [--metric KEY]... [--format table|json]
//   faceq models rollback [N] [--name NAME] [--force]
//   faceq models clean --keep K [--name NAME] [--dry-run]
//   faceq models compare A B [--name NAME]
//   faceq models check [--name NAME]
//
// list: every version with its aliases, run, embedder and headline metric.
// performance: versions x metrics (the run's headline_metrics tag unless
// --metric is given). rollback: production -> N (default: the `previous`
// alias), previous -> what production was. clean: deletes all but the newest
// K versions, never an aliased one. compare: params and metrics side by side.
// check (the reference's check_models.py): whether NAME's production version
// exists and was trained for the installed embedder; one JSON line, exit 1
// when it is not usable (scripts use it to train only when needed).
// NAME defaults to age-gender (list: all models).
#include <fmt/format.h>

#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/registry.hpp"
#include "registry_support.hpp"
#include "table.hpp"

namespace faceq::cli {
namespace {

using json = nlohmann::json;

struct ModelsCmd {
    std::string name, format = "table";
    std::vector<std::string> metrics;
    int rollback_to = 0;
    int keep = 5;
    bool dry_run = false, force = false;
    int a = 0, b = 0;
    std::string name_or_default() const { return name.empty() ? "age-gender" : name; }
};

std::string join(const std::vector<std::string>& parts, const char* sep = ",") {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
    return out;
}

json version_json(const ModelVersion& v) {
    return json{{"name", v.name},
                {"version", v.version},
                {"aliases", v.aliases},
                {"run_id", v.run_id},
                {"experiment", v.experiment},
                {"created_at", v.created_at},
                {"description", v.description},
                {"embedder", v.tags.value("embedder", "")},
                {"metrics", v.metrics},
                {"path", v.dir.string()}};
}

int list_cmd(const Context& ctx, const ModelsCmd& cmd) {
    const Registry registry(ctx.home);
    const auto names = cmd.name.empty() ? registry.model_names() : std::vector<std::string>{cmd.name};
    std::vector<std::vector<std::string>> rows{{"MODEL", "VERSION", "ALIASES", "RUN", "CREATED", "EMBEDDER", "METRIC"}};
    for (const auto& name : names) {
        for (const auto& v : registry.versions(name)) {
            if (cmd.format == "json") {
                std::cout << version_json(v).dump() << '\n';
                continue;
            }
            const std::string key = v.tags.value("primary_metric", "");
            rows.push_back({v.name, std::to_string(v.version), v.aliases.empty() ? "-" : join(v.aliases), v.run_id,
                            v.created_at, v.tags.value("embedder", "-"),
                            key.empty() ? "-" : key + "=" + metric_cell(v.metrics, key)});
        }
    }
    if (cmd.format == "json")
        std::cout.flush();
    else
        print_table(rows);
    if (names.empty()) ctx.info(fmt::format("no registered models in '{}'", registry.root().string()));
    return 0;
}

int performance_cmd(const Context& ctx, const ModelsCmd& cmd) {
    const Registry registry(ctx.home);
    const auto versions = registry.versions(cmd.name_or_default());
    std::vector<std::string> keys = cmd.metrics;
    if (keys.empty()) {
        // The headline metrics the runs named, in their order, then nothing else.
        std::set<std::string> seen;
        for (const auto& v : versions)
            for (const auto& k : v.tags.value("headline_metrics", std::vector<std::string>{}))
                if (seen.insert(k).second) keys.push_back(k);
        if (keys.empty())
            for (const auto& v : versions)
                for (const auto& [k, val] : v.metrics.items())
                    if (val.is_number() && seen.insert(k).second) keys.push_back(k);
    }
    if (cmd.format == "json") {
        for (const auto& v : versions) {
            json m = json::object();
            for (const auto& k : keys) m[k] = v.metrics.contains(k) ? v.metrics[k] : json(nullptr);
            std::cout << json{{"name", v.name}, {"version", v.version}, {"aliases", v.aliases}, {"metrics", m}}.dump()
                      << '\n';
        }
        std::cout.flush();
        return 0;
    }
    std::vector<std::string> header{"VERSION", "ALIASES"};
    header.insert(header.end(), keys.begin(), keys.end());
    std::vector<std::vector<std::string>> rows{header};
    for (const auto& v : versions) {
        std::vector<std::string> row{std::to_string(v.version), v.aliases.empty() ? "-" : join(v.aliases)};
        for (const auto& k : keys) row.push_back(metric_cell(v.metrics, k));
        rows.push_back(std::move(row));
    }
    print_table(rows);
    return 0;
}

int rollback_cmd(const Context& ctx, const ModelsCmd& cmd) {
    Registry registry(ctx.home);
    const std::string name = cmd.name_or_default();
    int target = cmd.rollback_to;
    registry.versions(name);  // an unknown model is "not found", not a usage error
    if (target == 0) {
        const auto al = registry.aliases(name);
        const auto it = al.find("previous");
        if (it == al.end())
            throw Error(ErrorKind::usage,
                        fmt::format("model '{}' has no previous version to roll back to; give a version", name));
        target = it->second;
    }
    const ModelVersion v = registry.version(name, target);
    if (const auto mismatch = embedder_mismatch(v, installed_embedder(ctx)); !mismatch.empty()) {
        if (!cmd.force) throw Error(ErrorKind::usage, mismatch + " (--force rolls back anyway)");
        ctx.warn(mismatch);
    }
    const AliasMove move = registry.deploy(name, target);
    ctx.info(move.changed ? fmt::format("'{}': rolled back production to version {} (previous = {})", name, target,
                                        move.previous ? std::to_string(*move.previous) : "none")
                          : fmt::format("'{}': version {} is already in production", name, target));
    std::cout << move_to_json(move).dump() << std::endl;
    return 0;
}

int clean_cmd(const Context& ctx, const ModelsCmd& cmd) {
    Registry registry(ctx.home);
    const std::string name = cmd.name_or_default();
    std::vector<int> deleted;
    if (cmd.dry_run) {
        const auto versions = registry.versions(name);
        const std::size_t keep = static_cast<std::size_t>(cmd.keep);
        for (std::size_t i = 0; i + keep < versions.size(); ++i)
            if (versions[i].aliases.empty()) deleted.push_back(versions[i].version);
    } else {
        deleted = registry.clean(name, cmd.keep);
    }
    std::vector<std::string> names;
    for (int d : deleted) names.push_back(std::to_string(d));
    ctx.info(fmt::format("'{}': {} {} version{}{}", name, cmd.dry_run ? "would delete" : "deleted", deleted.size(),
                         deleted.size() == 1 ? "" : "s", deleted.empty() ? "" : " (" + join(names, ", ") + ")"));
    std::cout << json{{"name", name}, {"keep", cmd.keep}, {"dry_run", cmd.dry_run}, {"deleted", deleted}}.dump()
              << std::endl;
    return 0;
}

int compare_cmd(const Context& ctx, const ModelsCmd& cmd) {
    const Registry registry(ctx.home);
    const std::string name = cmd.name_or_default();
    const ModelVersion a = registry.version(name, cmd.a), b = registry.version(name, cmd.b);
    if (cmd.format == "json") {
        std::cout << json{{"name", name},
                          {"a", version_json(a)},
                          {"b", version_json(b)},
                          {"params", {{"a", a.params}, {"b", b.params}}}}
                         .dump()
                  << std::endl;
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"", fmt::format("version {}", a.version), fmt::format("version {}", b.version), "DIFF (B-A)"}};
    rows.push_back({"run", a.run_id, b.run_id, ""});
    rows.push_back({"created", a.created_at, b.created_at, ""});
    rows.push_back(
        {"aliases", a.aliases.empty() ? "-" : join(a.aliases), b.aliases.empty() ? "-" : join(b.aliases), ""});
    rows.push_back({"embedder", a.tags.value("embedder", "-"), b.tags.value("embedder", "-"), ""});
    auto section = [&](const char* title, const json& ja, const json& jb, bool diff) {
        std::set<std::string> keys;
        for (const auto& [k, v] : ja.items()) keys.insert(k);
        for (const auto& [k, v] : jb.items()) keys.insert(k);
        if (keys.empty()) return;
        rows.push_back({title, "", "", ""});
        for (const auto& k : keys) {
            std::string d;
            if (diff && ja.contains(k) && jb.contains(k) && ja[k].is_number() && jb[k].is_number())
                d = fmt::format("{:+.4g}", jb[k].get<double>() - ja[k].get<double>());
            else if (!diff && ja.value(k, json()) != jb.value(k, json()))
                d = "differs";
            rows.push_back({"  " + k, metric_cell(ja, k), metric_cell(jb, k), d});
        }
    };
    section("params", a.params, b.params, false);
    section("metrics", a.metrics, b.metrics, true);
    print_table(rows);
    return 0;
}

int check_cmd(const Context& ctx, const ModelsCmd& cmd) {
    const Registry registry(ctx.home);
    const std::string name = cmd.name_or_default();
    json j{{"name", name}, {"production", nullptr}, {"usable", false}};
    std::string why;
    const auto al = registry.aliases(name);
    if (const auto it = al.find("production"); it == al.end()) {
        why = fmt::format("model '{}' has no production version", name);
    } else {
        j["production"] = it->second;
        const ModelVersion v = registry.version(name, it->second);
        j["embedder"] = v.tags.value("embedder", "");
        why = embedder_mismatch(v, installed_embedder(ctx));
    }
    j["usable"] = why.empty();
    if (!why.empty()) j["reason"] = why;
    std::cout << j.dump() << std::endl;
    if (why.empty()) {
        ctx.info(fmt::format("'{}': version {} is in production", name, j["production"].get<int>()));
        return 0;
    }
    ctx.info(why);
    return 1;
}

}  // namespace

std::pair<CLI::App*, Runner> register_models(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<ModelsCmd>();
    CLI::App* models =
        app.add_subcommand("models", "Registered models: list, performance, rollback, clean, compare, check");
    models->require_subcommand(1, 1);
    models->fallthrough();
    models->add_option("--name", cmd->name, "Registered model (default: age-gender; list: all)");

    CLI::App* list = models->add_subcommand("list", "Versions with aliases, runs and headline metrics");
    list->add_option("--format", cmd->format, "stdout format")->check(CLI::IsMember({"table", "json"}));
    list->fallthrough();

    CLI::App* perf = models->add_subcommand("performance", "Every version's metrics in one table");
    perf->add_option("--metric", cmd->metrics, "Show these metrics (repeatable; default: the headline ones)");
    perf->add_option("--format", cmd->format, "stdout format")->check(CLI::IsMember({"table", "json"}));
    perf->fallthrough();

    CLI::App* rollback = models->add_subcommand("rollback", "Point production at an earlier version");
    rollback->add_option("version", cmd->rollback_to, "Version (default: the previous alias)")
        ->check(CLI::PositiveNumber);
    rollback->add_flag("--force", cmd->force, "Even a version trained for another embedder");
    rollback->fallthrough();

    CLI::App* clean = models->add_subcommand("clean", "Delete old versions (never an aliased one)");
    clean->add_option("--keep", cmd->keep, "Keep the newest K versions")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    clean->add_flag("--dry-run", cmd->dry_run, "Only say what would be deleted");
    clean->fallthrough();

    CLI::App* compare = models->add_subcommand("compare", "Two versions' params and metrics side by side");
    compare->add_option("a", cmd->a, "First version")->required()->check(CLI::PositiveNumber);
    compare->add_option("b", cmd->b, "Second version")->required()->check(CLI::PositiveNumber);
    compare->add_option("--format", cmd->format, "stdout format")->check(CLI::IsMember({"table", "json"}));
    compare->fallthrough();

    CLI::App* check = models->add_subcommand("check", "Is there a usable production version? (exit 1 if not)");
    check->fallthrough();

    return {models, [&ctx, cmd, list, perf, rollback, clean, compare, check]() {
                if (check->parsed()) return check_cmd(ctx, *cmd);
                if (list->parsed()) return list_cmd(ctx, *cmd);
                if (perf->parsed()) return performance_cmd(ctx, *cmd);
                if (rollback->parsed()) return rollback_cmd(ctx, *cmd);
                if (clean->parsed()) return clean_cmd(ctx, *cmd);
                if (compare->parsed()) return compare_cmd(ctx, *cmd);
                return 2;
            }};
}

}  // namespace faceq::cli
