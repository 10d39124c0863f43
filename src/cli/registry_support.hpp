// registry_support.hpp — what register-model, deploy and models share: the
// installed embedder (heads and calibrations are only valid for the embedder
// they were trained on, tag "embedder") and the JSON shape of an alias move.
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "context.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/registry.hpp"

namespace faceq::cli {

// The installed embedder's version ("name@sha12"), or "" when none is.
inline std::string installed_embedder(const Context& ctx) {
    try {
        const Manifest manifest = load_manifest(ctx.manifest_path());
        if (const auto e = find_installed(ctx.home.models_dir(), manifest, role::embedder)) return e->version();
    } catch (const std::exception&) {
        // No manifest or models: nothing to compare against.
    }
    return "";
}

// Why `v` cannot serve the installed embedder, or "" when it can (or when the
// version does not depend on an embedder).
inline std::string embedder_mismatch(const ModelVersion& v, const std::string& installed) {
    const std::string trained = v.tags.value("embedder", "");
    if (trained.empty() || installed.empty() || trained == installed) return "";
    return fmt::format("version {} of '{}' was trained for embedder {}, but {} is installed", v.version, v.name,
                       trained, installed);
}

inline nlohmann::json move_to_json(const AliasMove& m) {
    using nlohmann::json;
    return json{{"name", m.name},
                {"production", m.production},
                {"previous", m.previous ? json(*m.previous) : json(nullptr)},
                {"production_before", m.production_before ? json(*m.production_before) : json(nullptr)},
                {"changed", m.changed}};
}

}  // namespace faceq::cli
