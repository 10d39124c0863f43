// cmd_deploy.cpp — `faceq deploy`: point a registered model's `production`
// alias at its best version (the reference's deploy_model.py); `previous`
// remembers the version production pointed at before.
//
//   faceq deploy [--name NAME] [--metric M --mode min|max] [--version N] [--force]
//
// NAME defaults to age-gender. Without --version, the best version by M
// (default: the metric the training run named, tag primary_metric/mode) among
// those trained for the installed embedder. --version N deploys N, refused
// when it was trained for another embedder (unless --force); the rules are
// faceq/models/deploy.hpp's. stdout: the alias move as one JSON line;
// deploying what is already production changes nothing.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "context.hpp"
#include "faceq/models/deploy.hpp"
#include "faceq/models/registry.hpp"
#include "registry_support.hpp"

namespace faceq::cli {
namespace {

struct DeployCmd {
    std::string name = "age-gender", metric, mode;
    int version = 0;
    bool force = false;
};

int deploy_cmd(const Context& ctx, const DeployCmd& cmd) {
    Registry registry(ctx.home);
    const Deployment d = deploy_model(registry, {cmd.name, cmd.metric, cmd.mode, cmd.version, cmd.force},
                                      installed_embedder(ctx), log_to(ctx));
    const AliasMove& move = d.move;
    if (move.changed)
        ctx.info(fmt::format("'{}': production -> version {} ({}){}", cmd.name, move.production, d.why,
                             move.previous ? fmt::format("; previous = {}", *move.previous) : ""));
    else
        ctx.info(fmt::format("'{}': version {} is already in production ({})", cmd.name, move.production, d.why));
    print_record("deployment", move_to_json(move));
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_deploy(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<DeployCmd>();
    CLI::App* sub = app.add_subcommand("deploy", "Point a model's production alias at its best (or a chosen) version");
    sub->add_option("--name", cmd->name, "Registered model")->capture_default_str();
    sub->add_option("--metric", cmd->metric, "Final metric to choose by (default: the run's primary metric)");
    sub->add_option("--mode", cmd->mode, "Whether lower or higher is better")->check(CLI::IsMember({"min", "max"}));
    sub->add_option("--version", cmd->version, "Deploy this version")->check(CLI::PositiveNumber);
    sub->add_flag("--force", cmd->force, "Deploy even a version trained for another embedder");
    return {sub, [&ctx, cmd]() { return deploy_cmd(ctx, *cmd); }};
}

}  // namespace faceq::cli
