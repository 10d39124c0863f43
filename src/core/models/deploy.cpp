// deploy.cpp — see faceq/models/deploy.hpp.
#include "faceq/models/deploy.hpp"

#include <fmt/format.h>

#include <tuple>
#include <utility>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/models/resolve.hpp"

namespace faceq {
namespace {

void say(const LogFn& log, const std::string& line) {
    if (log) log(line);
}

// Applies the embedder rule to a version the user named: refused unless
// forced (`what` says what --force does), a warning when forced.
void check_named_version(const ModelVersion& v, const std::optional<EmbedderIdentity>& installed, bool force,
                         const char* what, const LogFn& log) {
    const std::string mismatch = version_embedder_mismatch(v, installed);
    if (mismatch.empty()) return;
    if (!force) throw Error(ErrorKind::usage, fmt::format("{} (--force {} anyway)", mismatch, what));
    say(log, "warning: " + mismatch);
}

// The best version by a metric (see deploy.hpp), with the reason for people.
std::pair<int, std::string> best_for(const Registry& registry, const DeployRequest& request,
                                     const std::vector<ModelVersion>& versions,
                                     const std::optional<EmbedderIdentity>& installed, const LogFn& log) {
    // The metric: as given, else what the newest version's run named.
    std::string metric = request.metric, mode = request.mode;
    if (metric.empty()) metric = versions.back().tags.value("primary_metric", "");
    if (mode.empty()) mode = request.metric.empty() ? versions.back().tags.value("primary_mode", "") : "";
    if (metric.empty())
        throw Error(ErrorKind::usage, fmt::format("model '{}' names no metric to choose by: give --metric M --mode "
                                                  "min|max, or --version N",
                                                  request.name));
    if (mode.empty()) throw Error(ErrorKind::usage, fmt::format("give --mode min|max for metric '{}'", metric));
    const auto eligible = [&](const ModelVersion& v) {
        const auto mismatch = version_embedder_mismatch(v, installed);
        if (!mismatch.empty()) say(log, "debug: skipping: " + mismatch);
        return request.force || mismatch.empty();
    };
    const auto best = registry.best_version(request.name, metric, mode, eligible);
    if (!best)
        throw Error(ErrorKind::not_found,
                    fmt::format("no version of '{}' has metric '{}'{}", request.name, metric,
                                installed ? fmt::format(" and was trained for embedder {}", installed->id) : ""));
    return {best->version, fmt::format("best {} ({}) = {:.4g}", metric, mode, best->metrics[metric].get<double>())};
}

}  // namespace

EmbedderIdentity trained_embedder(const ModelVersion& v) {
    return {v.tags.value("embedder", ""), v.tags.value("embedder_sha256", "")};
}

std::string version_embedder_mismatch(const ModelVersion& v, const std::optional<EmbedderIdentity>& installed) {
    if (!installed) return "";
    const std::string why = embedder_mismatch(trained_embedder(v), *installed);
    return why.empty() ? "" : fmt::format("version {} of '{}' was {}", v.version, v.name, why);
}

std::optional<EmbedderIdentity> find_installed_embedder(const std::filesystem::path& models_dir,
                                                        const std::filesystem::path& manifest_path, Verify how) {
    Manifest manifest;
    try {
        manifest = load_manifest(manifest_path);
    } catch (const std::exception&) {
        return std::nullopt;  // no manifest: nothing to compare against
    }
    // A damaged embedder is reported (verify_installed), never compared as if installed.
    if (const auto e = find_installed(models_dir, manifest, role::embedder, how)) return embedder_identity(*e);
    return std::nullopt;
}

Deployment deploy_model(Registry& registry, const DeployRequest& request,
                        const std::optional<EmbedderIdentity>& installed, const LogFn& log) {
    const auto versions = registry.versions(request.name);
    if (versions.empty()) throw Error(ErrorKind::not_found, fmt::format("model '{}' has no versions", request.name));
    int target = request.version;
    std::string why = "as asked";
    if (target > 0)
        check_named_version(registry.version(request.name, target), installed, request.force, "deploys it", log);
    else
        std::tie(target, why) = best_for(registry, request, versions, installed, log);
    return {registry.deploy(request.name, target), why};
}

AliasMove rollback_model(Registry& registry, const RollbackRequest& request,
                         const std::optional<EmbedderIdentity>& installed, const LogFn& log) {
    registry.versions(request.name);  // an unknown model is "not found", not a usage error
    int target = request.version;
    if (target == 0) {
        const auto al = registry.aliases(request.name);
        const auto it = al.find("previous");
        if (it == al.end())
            throw Error(
                ErrorKind::usage,
                fmt::format("model '{}' has no previous version to roll back to; give a version", request.name));
        target = it->second;
    }
    check_named_version(registry.version(request.name, target), installed, request.force, "rolls back", log);
    return registry.deploy(request.name, target);
}

ProductionCheck check_production(const Registry& registry, const std::string& name,
                                 const std::optional<EmbedderIdentity>& installed) {
    ProductionCheck c;
    c.name = name;
    const auto al = registry.aliases(name);
    const auto it = al.find("production");
    if (it == al.end()) {
        c.reason = fmt::format("model '{}' has no production version", name);
        return c;
    }
    c.production = it->second;
    const ModelVersion v = registry.version(name, it->second);
    c.embedder = trained_embedder(v).id;
    c.reason = version_embedder_mismatch(v, installed);
    return c;
}

}  // namespace faceq
