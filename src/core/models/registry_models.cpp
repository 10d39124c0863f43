// registry_models.cpp — the registry's models (see
// faceq/models/registry.hpp): registering a finished run as a new version,
// listing versions, the best one by a metric, aliases (deploy moves
// "production" and keeps "previous"), cleaning old versions, and
// find_deployed().
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <set>
#include <system_error>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/models/registry.hpp"
#include "models/registry_impl.hpp"

namespace faceq {

using namespace registry_impl;

namespace {

json read_model_json(const Home& home, const std::string& name) {
    auto j = read_json_if_exists(model_dir(home, name) / "model.json");
    if (!j)
        return json{{"schema", registry_schema},
                    {"name", name},
                    {"created_at", utc_now_iso8601()},
                    {"next_version", 1},
                    {"aliases", json::object()}};
    if (!j->contains("aliases") || !(*j)["aliases"].is_object()) (*j)["aliases"] = json::object();
    return *j;
}

std::vector<int> version_numbers(const Home& home, const std::string& name) {
    std::vector<int> out;
    std::error_code ec;
    const fs::path dir = model_dir(home, name) / "versions";
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n.empty() || n.size() > 9 ||
            !std::all_of(n.begin(), n.end(), [](unsigned char c) { return std::isdigit(c); }))
            continue;
        std::error_code ec2;
        if (fs::is_regular_file(e.path() / "version.json", ec2)) out.push_back(std::stoi(n));
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Removes ".tmp-" and ".trash-" folders left by a writer that died.
void sweep_versions(const Home& home, const std::string& name) {
    std::error_code ec;
    const fs::path dir = model_dir(home, name) / "versions";
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind(".tmp-", 0) == 0 || n.rfind(".trash-", 0) == 0) {
            std::error_code ec2;
            fs::remove_all(e.path(), ec2);
        }
    }
}

ModelVersion version_from_json(const json& j, const fs::path& dir) {
    ModelVersion v;
    v.dir = dir;
    try {
        v.name = j.at("name").get<std::string>();
        const auto number = integer_field(j, "version", 0);
        if (!number || *number < 1 || *number > std::numeric_limits<int>::max())
            throw Error(ErrorKind::invalid_input, fmt::format("registry file '{}' is malformed: version is not a "
                                                              "positive integer",
                                                              (dir / "version.json").string()));
        v.version = static_cast<int>(*number);
        v.run_id = j.value("run_id", "");
        v.experiment = j.value("experiment", "");
        v.created_at = j.value("created_at", "");
        v.description = j.value("description", "");
        v.metrics = j.value("metrics", json::object());
        v.params = j.value("params", json::object());
        v.tags = j.value("tags", json::object());
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("registry file '{}' is malformed: {}", (dir / "version.json").string(), e.what()));
    }
    return v;
}

void check_keep(int keep) {
    if (keep < 1) throw Error(ErrorKind::usage, fmt::format("--keep {}: keep at least one version", keep));
}

// What clean() deletes of `numbers` (ascending): all but the newest `keep`,
// never an aliased one.
std::vector<int> removable_versions(const std::vector<int>& numbers, const std::set<int>& aliased, int keep) {
    std::vector<int> out;
    const std::size_t kept_newest = std::min(numbers.size(), static_cast<std::size_t>(keep));
    for (std::size_t i = 0; i + kept_newest < numbers.size(); ++i)
        if (!aliased.count(numbers[i])) out.push_back(numbers[i]);
    return out;
}

}  // namespace

// ====================================================================== find_deployed

std::optional<DeployedModel> find_deployed(const Home& home, const std::string& name, const std::string& alias) {
    const auto model = read_json_if_exists(model_dir(home, name) / "model.json");
    if (!model) return std::nullopt;
    const auto aliases = model->value("aliases", json::object());
    if (!aliases.contains(alias) || !aliases[alias].is_number_integer()) return std::nullopt;
    const int version = aliases[alias].get<int>();
    const fs::path dir = version_dir(home, name, version);
    const auto v = read_json_if_exists(dir / "version.json");
    if (!v) return std::nullopt;
    DeployedModel out;
    out.name = name;
    out.version = version;
    out.artifacts_dir = dir / "artifacts";
    out.metrics = v->value("metrics", json::object());
    return out;
}

// ====================================================================== Registry: models

RunInfo Registry::last_successful_run(const std::string& name) const {
    RunFilter f;
    f.status = RunStatus::finished;
    for (const auto& r : runs(f)) {
        const std::string tagged = r.tags.value("model_name", "");
        if (tagged == name || (tagged.empty() && r.experiment == name)) return r;
    }
    throw Error(ErrorKind::not_found,
                fmt::format("no finished run for model '{}' in '{}' (train one first, e.g. faceq train age-gender)",
                            name, root().string()));
}

ModelVersion Registry::register_model(const std::string& name, const std::string& run_id,
                                      const std::string& description) {
    check_name("model", name);
    const RunInfo r = run(run_id);
    if (r.status != RunStatus::finished)
        throw Error(ErrorKind::usage, fmt::format("run '{}' is {}, not FINISHED: only finished runs can be registered",
                                                  run_id, to_string(r.status)));
    RegistryLock lock(root());
    const fs::path versions = model_dir(home_, name) / "versions";
    make_dirs(versions);
    sweep_versions(home_, name);
    json model = read_model_json(home_, name);
    int n = model.value("next_version", 1);
    for (int existing : version_numbers(home_, name)) n = std::max(n, existing + 1);

    const fs::path staging = versions / fmt::format(".tmp-{}-{}", n, ::getpid());
    std::error_code ec;
    fs::remove_all(staging, ec);
    make_dirs(staging);
    fs::copy(r.artifacts_dir(), staging / "artifacts", fs::copy_options::recursive, ec);
    if (ec) {
        fs::remove_all(staging, ec);
        throw Error(ErrorKind::io, fmt::format("cannot copy the artifacts of run '{}' from '{}': {}", run_id,
                                               r.artifacts_dir().string(), ec.message()));
    }
    json artifacts = json::array();
    for (const auto& rel : list_files(staging / "artifacts")) {
        const fs::path p = staging / "artifacts" / rel;
        artifacts.push_back({{"path", rel}, {"bytes", fs::file_size(p)}, {"sha256", sha256_file(p)}});
    }
    const std::string created = utc_now_iso8601();
    json v{{"schema", registry_schema},
           {"name", name},
           {"version", n},
           {"run_id", r.id},
           {"experiment", r.experiment},
           {"created_at", created},
           {"description", description},
           {"metrics", r.metrics},
           {"params", r.params},
           {"tags", r.tags},
           {"git_version", r.git_version.empty() ? json(nullptr) : json(r.git_version)},
           {"artifacts", artifacts}};
    write_json(staging / "version.json", v);
    rename_durable(staging, versions / std::to_string(n));
    model["next_version"] = n + 1;
    model["updated_at"] = created;
    write_json(model_dir(home_, name) / "model.json", model);
    return version_from_json(v, versions / std::to_string(n));
}

std::vector<std::string> Registry::model_names() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(models_dir(home_), ec)) {
        std::error_code ec2;
        if (fs::is_regular_file(e.path() / "model.json", ec2)) out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::map<std::string, int> Registry::aliases(const std::string& name) const {
    check_name("model", name);
    std::map<std::string, int> out;
    const auto model = read_json_if_exists(model_dir(home_, name) / "model.json");
    if (!model) return out;
    const json al = model->value("aliases", json::object());
    for (const auto& [alias, v] : al.items())
        if (v.is_number_integer()) out[alias] = v.get<int>();
    return out;
}

std::vector<ModelVersion> Registry::versions(const std::string& name) const {
    check_name("model", name);
    if (!fs::exists(model_dir(home_, name) / "model.json"))
        throw Error(ErrorKind::not_found,
                    fmt::format("no registered model '{}' in '{}' (see: faceq models list)", name, root().string()));
    const auto al = aliases(name);
    std::vector<ModelVersion> out;
    for (int n : version_numbers(home_, name)) {
        const fs::path dir = version_dir(home_, name, n);
        const auto j = read_json_if_exists(dir / "version.json");
        if (!j) continue;  // deleted meanwhile
        ModelVersion v = version_from_json(*j, dir);
        for (const auto& [alias, target] : al)
            if (target == n) v.aliases.push_back(alias);
        out.push_back(std::move(v));
    }
    return out;
}

ModelVersion Registry::version(const std::string& name, int v) const {
    for (auto& mv : versions(name))
        if (mv.version == v) return mv;
    throw Error(ErrorKind::not_found, fmt::format("model '{}' has no version {}", name, v));
}

std::optional<ModelVersion> Registry::best_version(const std::string& name, const std::string& metric,
                                                   const std::string& mode,
                                                   const std::function<bool(const ModelVersion&)>& eligible) const {
    if (mode != "min" && mode != "max") throw Error(ErrorKind::usage, fmt::format("mode '{}' is not min or max", mode));
    std::optional<ModelVersion> best;
    double best_value = 0;
    for (auto& v : versions(name)) {
        const auto value = metric_value(v.metrics, metric);
        if (!value || (eligible && !eligible(v))) continue;
        // Ties go to the newer version.
        if (!best || (mode == "min" ? *value <= best_value : *value >= best_value)) {
            best_value = *value;
            best = std::move(v);
        }
    }
    return best;
}

AliasMove Registry::deploy(const std::string& name, int version) {
    check_name("model", name);
    RegistryLock lock(root());
    if (!fs::is_regular_file(version_dir(home_, name, version) / "version.json"))
        throw Error(ErrorKind::usage,
                    fmt::format("model '{}' has no version {} (see: faceq models list)", name, version));
    json model = read_model_json(home_, name);
    auto& al = model["aliases"];
    AliasMove move;
    move.name = name;
    move.production = version;
    if (al.contains("production") && al["production"].is_number_integer())
        move.production_before = al["production"].get<int>();
    if (al.contains("previous") && al["previous"].is_number_integer()) move.previous = al["previous"].get<int>();
    if (move.production_before == version) return move;
    if (move.production_before) {
        al["previous"] = *move.production_before;
        move.previous = move.production_before;
    }
    al["production"] = version;
    model["updated_at"] = utc_now_iso8601();
    write_json(model_dir(home_, name) / "model.json", model);
    move.changed = true;
    return move;
}

void Registry::set_alias(const std::string& name, const std::string& alias, int version) {
    check_name("model", name);
    check_name("alias", alias);
    RegistryLock lock(root());
    if (!fs::exists(model_dir(home_, name) / "model.json"))
        throw Error(ErrorKind::not_found, fmt::format("no registered model '{}'", name));
    json model = read_model_json(home_, name);
    if (version == 0) {
        model["aliases"].erase(alias);
    } else {
        if (!fs::is_regular_file(version_dir(home_, name, version) / "version.json"))
            throw Error(ErrorKind::usage, fmt::format("model '{}' has no version {}", name, version));
        model["aliases"][alias] = version;
    }
    model["updated_at"] = utc_now_iso8601();
    write_json(model_dir(home_, name) / "model.json", model);
}

std::vector<int> Registry::versions_to_clean(const std::string& name, int keep) const {
    check_keep(keep);
    std::vector<int> numbers;
    std::set<int> aliased;
    for (const auto& v : versions(name)) {
        numbers.push_back(v.version);
        if (!v.aliases.empty()) aliased.insert(v.version);
    }
    return removable_versions(numbers, aliased, keep);
}

std::vector<int> Registry::clean(const std::string& name, int keep) {
    check_name("model", name);
    check_keep(keep);
    RegistryLock lock(root());
    if (!fs::exists(model_dir(home_, name) / "model.json"))
        throw Error(ErrorKind::not_found, fmt::format("no registered model '{}'", name));
    sweep_versions(home_, name);
    const json model = read_model_json(home_, name);
    std::set<int> aliased;
    for (const auto& [alias, v] : model["aliases"].items())
        if (v.is_number_integer()) aliased.insert(v.get<int>());
    const std::vector<int> deleted = removable_versions(version_numbers(home_, name), aliased, keep);
    for (const int n : deleted) {
        // Rename first: a version folder is either complete or gone.
        const fs::path dir = version_dir(home_, name, n);
        const fs::path trash = dir.parent_path() / fmt::format(".trash-{}-{}", n, ::getpid());
        rename_durable(dir, trash);
        std::error_code ec;
        fs::remove_all(trash, ec);
    }
    return deleted;
}

}  // namespace faceq
