// faceq/models/deploy.hpp — the rules that move a registered model's
// `production` alias (`faceq deploy`, `faceq models rollback`) and say whether
// what is in production can run here (`faceq models check`).
//
// Every rule applies the one embedder rule (embedder_mismatch(), models.hpp):
// a version trained on descriptors — a head, a calibration — is only valid
// for the embedder that computed them. A version records that embedder in its
// run's tags "embedder" (the id) and "embedder_sha256"; a version without
// them depends on no embedder. When no embedder is installed (`installed` is
// std::nullopt) there is nothing to compare against and every version passes.
//
//   deploy    --version N: N, refused for another embedder unless forced;
//             else the best version by a metric (as given, else the newest
//             version's tags primary_metric / primary_mode) among those
//             trained for the installed embedder (all when forced)
//   rollback  production -> N (default: the `previous` alias), refused for
//             another embedder unless forced
//   check     production exists and was trained for the installed embedder
//
// Errors: Error{not_found} for an unknown model or version, or when no
// version has the metric; Error{usage} for a request that cannot be met (no
// metric or mode to choose by, no previous version, a version for another
// embedder without `force`); the registry's errors otherwise.
// Thread-safety: as the Registry (several processes may deploy at once; the
// alias move itself is atomic).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "faceq/base/progress.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/registry.hpp"

namespace faceq {

// The embedder a version was trained for (its run's tags); empty when none.
EmbedderIdentity trained_embedder(const ModelVersion& v);

// Why `v` cannot serve the `installed` embedder — "version <n> of '<name>'
// was trained for embedder <id>, but <id> is installed" — or "" when it can
// (or when no embedder is installed).
std::string version_embedder_mismatch(const ModelVersion& v, const std::optional<EmbedderIdentity>& installed);

// The embedder installed in `models_dir` according to the manifest at
// `manifest_path`; std::nullopt when none is installed or the manifest cannot
// be read (then there is nothing to compare versions against). Throws only
// Error{model} for an installed embedder whose file fails verify_installed(),
// checked as `how` says.
std::optional<EmbedderIdentity> find_installed_embedder(const std::filesystem::path& models_dir,
                                                        const std::filesystem::path& manifest_path,
                                                        Verify how = Verify::stamp);

struct DeployRequest {
    std::string name;          // registered model
    std::string metric, mode;  // choose by; empty: the newest version's primary_metric / primary_mode tags
    int version = 0;           // > 0: deploy this one
    bool force = false;        // also a version trained for another embedder
};

struct Deployment {
    AliasMove move;
    std::string why;  // "as asked" | "best <metric> (<mode>) = <value>"
};

// Chooses the version by the rules above and points production at it.
// `log` gets "warning: <mismatch>" for a forced version and
// "debug: skipping: <mismatch>" for each version the embedder rule leaves out.
Deployment deploy_model(Registry& registry, const DeployRequest& request,
                        const std::optional<EmbedderIdentity>& installed, const LogFn& log);

struct RollbackRequest {
    std::string name;
    int version = 0;  // 0: the `previous` alias
    bool force = false;
};

// Points production back at an earlier version (see above); `log` gets
// "warning: <mismatch>" when forced.
AliasMove rollback_model(Registry& registry, const RollbackRequest& request,
                         const std::optional<EmbedderIdentity>& installed, const LogFn& log);

struct ProductionCheck {
    std::string name;
    std::optional<int> production;  // the version production points at
    std::string embedder;           // the id it was trained for ("" when none or no production)
    std::string reason;             // why it is not usable; "" when it is
    bool usable() const { return reason.empty(); }
};

// Whether `name` has a production version valid for the `installed` embedder.
ProductionCheck check_production(const Registry& registry, const std::string& name,
                                 const std::optional<EmbedderIdentity>& installed);

}  // namespace faceq
