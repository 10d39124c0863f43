// faceq/registry.hpp — the model registry: MLflow's concepts (experiments,
// runs, registered models with numbered versions, aliases) as plain files
// under <home>/registry, readable by people and by jq. Layout and semantics:
// docs/registry.md.
//
// Invariants: every JSON file is replaced atomically (temp + fsync + rename);
// metrics are append-only JSON Lines; version numbers of a model only grow;
// an alias points at an existing version.
//
// Errors: Error{not_found} for a missing run, model or version; Error{io} when
// the file system fails; Error{invalid_input} for a registry file that does
// not parse. Reading is safe from any number of processes.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "faceq/home.hpp"

namespace faceq {

// One registered model version that an alias points at.
struct DeployedModel {
    std::string name;
    int version = 0;
    std::filesystem::path artifacts_dir;  // the version's own copy of its run's artifacts
    nlohmann::json metrics;               // the run's final metrics ({} when none)
};

// The version an alias ("production") of registered model `name` points at, if
// any. std::nullopt when the model, the alias or the version does not exist.
std::optional<DeployedModel> find_deployed(const Home& home, const std::string& name,
                                           const std::string& alias = "production");

}  // namespace faceq
