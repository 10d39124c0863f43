// cmd_models.cpp — `faceq models`: the registered models (the reference's
// check_models.py and model_utils.py). This file holds the group and the
// views; rollback, clean and check are in cmd_models_production.cpp.
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
// --metric is given). compare: params and metrics side by side.
// NAME defaults to age-gender (list: all models).
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/models/registry.hpp"
#include "registry_support.hpp"
#include "table.hpp"

namespace faceq::cli {
namespace {

using json = nlohmann::json;

struct ModelsCmd {
    std::shared_ptr<std::string> name = std::make_shared<std::string>();  // --name
    std::string format = "table";
    std::vector<std::string> metrics;
    int a = 0, b = 0;
    std::string name_or_default() const { return model_or_default(*name); }
};

std::string aliases_cell(const ModelVersion& v) {
    return v.aliases.empty() ? "-" : fmt::format("{}", fmt::join(v.aliases, ","));
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
    const auto names = cmd.name->empty() ? registry.model_names() : std::vector<std::string>{*cmd.name};
    std::vector<std::vector<std::string>> rows{{"MODEL", "VERSION", "ALIASES", "RUN", "CREATED", "EMBEDDER", "METRIC"}};
    for (const auto& name : names) {
        for (const auto& v : registry.versions(name)) {
            if (cmd.format == "json") {
                print_record("model_version", version_json(v));
                continue;
            }
            const std::string key = v.tags.value("primary_metric", "");
            rows.push_back({v.name, std::to_string(v.version), aliases_cell(v), v.run_id, v.created_at,
                            v.tags.value("embedder", "-"),
                            key.empty() ? "-" : key + "=" + metric_cell(v.metrics, key)});
        }
    }
    if (cmd.format != "json") print_table(rows);
    if (names.empty()) ctx.info(fmt::format("no registered models in '{}'", registry.root().string()));
    return 0;
}

int performance_cmd(const Context& ctx, const ModelsCmd& cmd) {
    const Registry registry(ctx.home);
    const auto versions = registry.versions(cmd.name_or_default());
    const std::vector<std::string> keys = cmd.metrics.empty() ? headline_metrics(versions) : cmd.metrics;
    if (cmd.format == "json") {
        for (const auto& v : versions) {
            json m = json::object();
            for (const auto& k : keys) m[k] = v.metrics.contains(k) ? v.metrics[k] : json(nullptr);
            print_record("model_metrics",
                         {{"name", v.name}, {"version", v.version}, {"aliases", v.aliases}, {"metrics", m}});
        }
        return 0;
    }
    std::vector<std::string> header{"VERSION", "ALIASES"};
    header.insert(header.end(), keys.begin(), keys.end());
    std::vector<std::vector<std::string>> rows{header};
    for (const auto& v : versions) {
        std::vector<std::string> row{std::to_string(v.version), aliases_cell(v)};
        for (const auto& k : keys) row.push_back(metric_cell(v.metrics, k));
        rows.push_back(std::move(row));
    }
    print_table(rows);
    return 0;
}

int compare_cmd(const Context& ctx, const ModelsCmd& cmd) {
    const Registry registry(ctx.home);
    const std::string name = cmd.name_or_default();
    const ModelVersion a = registry.version(name, cmd.a), b = registry.version(name, cmd.b);
    if (cmd.format == "json") {
        print_record("model_comparison", {{"name", name},
                                          {"a", version_json(a)},
                                          {"b", version_json(b)},
                                          {"params", {{"a", a.params}, {"b", b.params}}}});
        return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"", fmt::format("version {}", a.version), fmt::format("version {}", b.version), "DIFF (B-A)"}};
    rows.push_back({"run", a.run_id, b.run_id, ""});
    rows.push_back({"created", a.created_at, b.created_at, ""});
    rows.push_back({"aliases", aliases_cell(a), aliases_cell(b), ""});
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

}  // namespace

std::pair<CLI::App*, Runner> register_models(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<ModelsCmd>();
    CLI::App* models =
        app.add_subcommand("models", "Registered models: list, performance, rollback, clean, compare, check");
    models->require_subcommand(1, 1);
    models->fallthrough();  // inherited by the nested subcommands: --name may follow them
    models->add_option("--name", *cmd->name, "Registered model (default: age-gender; list: all)");

    CLI::App* list = models->add_subcommand("list", "Versions with aliases, runs and headline metrics");
    list->add_option("--format", cmd->format, "stdout format")->check(CLI::IsMember({"table", "json"}));

    CLI::App* perf = models->add_subcommand("performance", "Every version's metrics in one table");
    perf->add_option("--metric", cmd->metrics, "Show these metrics (repeatable; default: the headline ones)");
    perf->add_option("--format", cmd->format, "stdout format")->check(CLI::IsMember({"table", "json"}));

    // The subcommands that act on versions live in cmd_models_production.cpp.
    std::vector<std::pair<CLI::App*, Runner>> nested{{list, [&ctx, cmd] { return list_cmd(ctx, *cmd); }},
                                                     {perf, [&ctx, cmd] { return performance_cmd(ctx, *cmd); }},
                                                     register_models_rollback(*models, ctx, cmd->name),
                                                     register_models_clean(*models, ctx, cmd->name)};

    CLI::App* compare = models->add_subcommand("compare", "Two versions' params and metrics side by side");
    compare->add_option("a", cmd->a, "First version")->required()->check(CLI::PositiveNumber);
    compare->add_option("b", cmd->b, "Second version")->required()->check(CLI::PositiveNumber);
    compare->add_option("--format", cmd->format, "stdout format")->check(CLI::IsMember({"table", "json"}));
    nested.push_back({compare, [&ctx, cmd] { return compare_cmd(ctx, *cmd); }});
    nested.push_back(register_models_check(*models, ctx, cmd->name));

    return {models, [nested]() {
                for (const auto& [sub, run] : nested)
                    if (sub->parsed()) return run();
                return 2;
            }};
}

}  // namespace faceq::cli
