// registry_support.hpp — what deploy and the models subcommands share: the
// installed embedder that the deploy rules compare versions against
// (faceq/models/deploy.hpp), the JSON shape of an alias move, and the
// `models` group's --name (cmd_models.cpp binds it, the subcommands of
// cmd_models_production.cpp read it).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "context.hpp"
#include "faceq/models/deploy.hpp"
#include "faceq/models/registry.hpp"

namespace faceq::cli {

// The embedder installed in the home, or std::nullopt when none is;
// Error{model} when its file is damaged (checked as `how` says).
inline std::optional<EmbedderIdentity> installed_embedder(const Context& ctx, Verify how = Verify::stamp) {
    return find_installed_embedder(ctx.home.models_dir(), ctx.manifest_path(), how);
}

inline nlohmann::json move_to_json(const AliasMove& m) {
    using nlohmann::json;
    return json{{"name", m.name},
                {"production", m.production},
                {"previous", m.previous ? json(*m.previous) : json(nullptr)},
                {"production_before", m.production_before ? json(*m.production_before) : json(nullptr)},
                {"changed", m.changed}};
}

// `models --name`, shared by the group's subcommands; empty when not given.
using ModelName = std::shared_ptr<const std::string>;

inline std::string model_or_default(const std::string& name) { return name.empty() ? "age-gender" : name; }

std::pair<CLI::App*, Runner> register_models_rollback(CLI::App& models, Context& ctx, ModelName name);
std::pair<CLI::App*, Runner> register_models_clean(CLI::App& models, Context& ctx, ModelName name);
std::pair<CLI::App*, Runner> register_models_check(CLI::App& models, Context& ctx, ModelName name);

}  // namespace faceq::cli
