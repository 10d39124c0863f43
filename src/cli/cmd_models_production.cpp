// cmd_models_production.cpp — the `faceq models` subcommands that act on a
// registered model's versions (the group and its views: cmd_models.cpp):
//
//   faceq models rollback [N] [--name NAME] [--force]
//   faceq models clean --keep K [--name NAME] [--dry-run]
//   faceq models check [--name NAME]
//
// rollback: production -> N (default: the `previous` alias), previous -> what
// production was; refused for a version trained for another embedder unless
// --force. clean: deletes all but the newest K versions, never an aliased
// one. check (the reference's check_models.py): whether NAME's production
// version exists and was trained for the installed embedder; one JSON line,
// exit 1 when it is not usable (scripts use it to train only when needed).
// The rules are faceq/models/deploy.hpp's. NAME defaults to age-gender.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/models/deploy.hpp"
#include "faceq/models/registry.hpp"
#include "registry_support.hpp"

namespace faceq::cli {
namespace {

using json = nlohmann::json;

struct ProductionCmd {
    int rollback_to = 0;
    int keep = 5;
    bool dry_run = false, force = false;
};

int rollback_cmd(const Context& ctx, const std::string& name, const ProductionCmd& cmd) {
    Registry registry(ctx.home);
    const AliasMove move =
        rollback_model(registry, {name, cmd.rollback_to, cmd.force}, installed_embedder(ctx), log_to(ctx));
    ctx.info(move.changed ? fmt::format("'{}': rolled back production to version {} (previous = {})", name,
                                        move.production, move.previous ? std::to_string(*move.previous) : "none")
                          : fmt::format("'{}': version {} is already in production", name, move.production));
    print_record("deployment", move_to_json(move));
    return 0;
}

int clean_cmd(const Context& ctx, const std::string& name, const ProductionCmd& cmd) {
    Registry registry(ctx.home);
    const std::vector<int> deleted =
        cmd.dry_run ? registry.versions_to_clean(name, cmd.keep) : registry.clean(name, cmd.keep);
    ctx.info(fmt::format("'{}': {} {} version{}{}", name, cmd.dry_run ? "would delete" : "deleted", deleted.size(),
                         deleted.size() == 1 ? "" : "s",
                         deleted.empty() ? "" : fmt::format(" ({})", fmt::join(deleted, ", "))));
    print_record("model_clean", {{"name", name}, {"keep", cmd.keep}, {"dry_run", cmd.dry_run}, {"deleted", deleted}});
    return 0;
}

int check_cmd(const Context& ctx, const std::string& name) {
    // A check hashes the installed embedder it vouches for, whatever its stamp says.
    const ProductionCheck c = check_production(Registry(ctx.home), name, installed_embedder(ctx, Verify::rehash));
    json j{
        {"name", c.name}, {"production", c.production ? json(*c.production) : json(nullptr)}, {"usable", c.usable()}};
    if (c.production) j["embedder"] = c.embedder;
    if (!c.usable()) j["reason"] = c.reason;
    print_record("production_check", std::move(j));
    ctx.info(c.usable() ? fmt::format("'{}': version {} is in production", c.name, *c.production) : c.reason);
    return c.usable() ? 0 : 1;
}

}  // namespace

std::pair<CLI::App*, Runner> register_models_rollback(CLI::App& models, Context& ctx, ModelName name) {
    auto cmd = std::make_shared<ProductionCmd>();
    CLI::App* sub = models.add_subcommand("rollback", "Point production at an earlier version");
    sub->add_option("version", cmd->rollback_to, "Version (default: the previous alias)")->check(CLI::PositiveNumber);
    sub->add_flag("--force", cmd->force, "Even a version trained for another embedder");
    return {sub, [&ctx, cmd, name]() { return rollback_cmd(ctx, model_or_default(*name), *cmd); }};
}

std::pair<CLI::App*, Runner> register_models_clean(CLI::App& models, Context& ctx, ModelName name) {
    auto cmd = std::make_shared<ProductionCmd>();
    CLI::App* sub = models.add_subcommand("clean", "Delete old versions (never an aliased one)");
    sub->add_option("--keep", cmd->keep, "Keep the newest K versions")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    sub->add_flag("--dry-run", cmd->dry_run, "Only say what would be deleted");
    return {sub, [&ctx, cmd, name]() { return clean_cmd(ctx, model_or_default(*name), *cmd); }};
}

std::pair<CLI::App*, Runner> register_models_check(CLI::App& models, Context& ctx, ModelName name) {
    CLI::App* sub = models.add_subcommand("check", "Is there a usable production version? (exit 1 if not)");
    return {sub, [&ctx, name]() { return check_cmd(ctx, model_or_default(*name)); }};
}

}  // namespace faceq::cli
