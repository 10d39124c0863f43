// registry.cpp — the plain-file model registry (see registry.hpp and
// docs/registry.md for the layout).
#include "faceq/registry.hpp"

#include <fmt/format.h>

#include <fstream>
#include <system_error>

#include "faceq/error.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A registry JSON file, or std::nullopt when it does not exist.
std::optional<json> read_json_if_exists(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input, fmt::format("registry file '{}' does not parse: {}", path.string(), e.what()));
    }
}

fs::path model_dir(const Home& home, const std::string& name) { return home.registry_dir() / "models" / name; }

}  // namespace

std::optional<DeployedModel> find_deployed(const Home& home, const std::string& name, const std::string& alias) {
    const auto model = read_json_if_exists(model_dir(home, name) / "model.json");
    if (!model) return std::nullopt;
    const auto aliases = model->value("aliases", json::object());
    if (!aliases.contains(alias) || !aliases[alias].is_number_integer()) return std::nullopt;
    const int version = aliases[alias].get<int>();
    const fs::path dir = model_dir(home, name) / "versions" / std::to_string(version);
    const auto v = read_json_if_exists(dir / "version.json");
    if (!v) return std::nullopt;
    DeployedModel out;
    out.name = name;
    out.version = version;
    out.artifacts_dir = dir / "artifacts";
    out.metrics = v->value("metrics", json::object());
    return out;
}

}  // namespace faceq
