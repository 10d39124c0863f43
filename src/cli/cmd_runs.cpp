// cmd_runs.cpp — `faceq runs list|show`: the training runs in the registry.
//
//   faceq runs list [--experiment E] [--status running|finished|failed]
//                   [--metric KEY<OP>VALUE]... [--limit N] [--format table|json]
//   faceq runs show RUN_ID [--history]
//
// list: newest first, a table by default (JSON Lines with --format json, one
// run.json per line). show: the run's record as one JSON object; --history
// adds every step metric from metrics.jsonl. Reading a RUNNING run whose
// process is gone marks it FAILED (see registry.hpp).
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/registry.hpp"
#include "table.hpp"

namespace faceq::cli {
namespace {

using json = nlohmann::json;

struct RunsCmd {
    std::string experiment, status, format = "table", run_id;
    std::vector<std::string> metrics;
    std::size_t limit = 0;
    bool history = false;
};

json run_to_json(const RunInfo& r) {
    json j{{"id", r.id},
           {"experiment", r.experiment},
           {"status", to_string(r.status)},
           {"start_time", r.start_time},
           {"end_time", r.end_time.empty() ? json(nullptr) : json(r.end_time)},
           {"pid", r.pid},
           {"host", r.host},
           {"git_version", r.git_version.empty() ? json(nullptr) : json(r.git_version)},
           {"faceq_version", r.faceq_version},
           {"error", r.error.empty() ? json(nullptr) : json(r.error)},
           {"params", r.params},
           {"tags", r.tags},
           {"metrics", r.metrics},
           {"artifacts", r.artifacts},
           {"path", r.dir.string()}};
    return j;
}

int list_runs(const Context& ctx, const RunsCmd& cmd) {
    RunFilter filter;
    filter.experiment = cmd.experiment;
    if (!cmd.status.empty()) filter.status = parse_run_status(cmd.status);
    for (const auto& m : cmd.metrics) filter.metrics.push_back(parse_metric_condition(m));
    const Registry registry(ctx.home);
    auto runs = registry.runs(filter);
    if (cmd.limit > 0 && runs.size() > cmd.limit) runs.resize(cmd.limit);
    if (cmd.format == "json") {
        for (const auto& r : runs) print_record("run", run_to_json(r));
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{"RUN", "EXPERIMENT", "STATUS", "STARTED", "ENDED", "METRIC"}};
    for (const auto& r : runs) {
        // The run's headline metric (its tag primary_metric), else nothing.
        const std::string key = r.tags.value("primary_metric", "");
        const std::string metric = key.empty() ? "" : key + "=" + metric_cell(r.metrics, key);
        rows.push_back({r.id, r.experiment, to_string(r.status), r.start_time, r.end_time.empty() ? "-" : r.end_time,
                        r.status == RunStatus::failed && !r.error.empty() ? "error: " + r.error : metric});
    }
    print_table(rows);
    if (runs.empty()) ctx.info(fmt::format("no runs match in '{}'", registry.root().string()));
    return 0;
}

int show_run(const Context& ctx, const RunsCmd& cmd) {
    const Registry registry(ctx.home);
    json j = run_to_json(registry.run(cmd.run_id));
    if (cmd.history) {
        json h = json::array();
        for (const auto& p : registry.metric_history(cmd.run_id))
            h.push_back({{"key", p.key},
                         {"value", std::isnan(p.value) ? json(nullptr) : json(p.value)},
                         {"step", p.step},
                         {"timestamp", p.timestamp}});
        j["history"] = std::move(h);
    }
    print_record("run", std::move(j));
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_runs(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<RunsCmd>();
    CLI::App* runs = app.add_subcommand("runs", "Training runs in the registry");
    runs->require_subcommand(1, 1);
    runs->fallthrough();

    CLI::App* list = runs->add_subcommand("list", "Runs, newest first, with filters");
    list->add_option("--experiment,-e", cmd->experiment, "Only this experiment (age-gender, recognition, smoke)");
    list->add_option("--status", cmd->status, "Only runs with this status")
        ->check(CLI::IsMember({"running", "finished", "failed", "RUNNING", "FINISHED", "FAILED"}));
    list->add_option("--metric", cmd->metrics, "Final metric condition, e.g. 'test_age_mae<5' (repeatable)")
        ->type_name("KEY<OP>VALUE");
    list->add_option("--limit", cmd->limit, "At most N runs");
    list->add_option("--format", cmd->format, "stdout format")->check(CLI::IsMember({"table", "json"}));

    CLI::App* show = runs->add_subcommand("show", "One run as JSON: params, tags, metrics, artifacts");
    show->add_option("run", cmd->run_id, "Run id (see: faceq runs list)")->required();
    show->add_flag("--history", cmd->history, "Include every step metric (metrics.jsonl)");

    return {runs, [&ctx, cmd, list, show]() {
                if (list->parsed()) return list_runs(ctx, *cmd);
                if (show->parsed()) return show_run(ctx, *cmd);
                return 2;
            }};
}

}  // namespace faceq::cli
