// registry.cpp — the plain-file model registry (see registry.hpp and
// docs/registry.md for the layout): the files, the lock, run statuses and
// metric filters (registry_impl.hpp). Runs are in registry_runs.cpp, model
// versions and aliases in registry_models.cpp.
//
// Every read-modify-write happens under an exclusive flock on registry/.lock;
// every JSON file is replaced with write_file_atomic; new version folders are
// filled under a temporary name and renamed into place, so a crash leaves
// either no version or a complete one (and at worst a stray ".tmp-" folder,
// swept by the next writer).
#include "faceq/models/registry.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <system_error>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "models/registry_impl.hpp"

namespace faceq {

namespace registry_impl {

std::optional<json> read_json_if_exists(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("registry file '{}' does not parse: {}", path.string(), e.what()));
    }
    if (!j.is_object())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("registry file '{}' is not a JSON object but {}", path.string(), j.type_name()));
    return j;
}

void write_json(const fs::path& path, const json& j) { write_file_atomic(path, j.dump(2) + "\n"); }

void make_dirs(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
}

void check_name(const std::string& what, const std::string& name) {
    const bool ok = !name.empty() && name.size() <= 100 && name.front() != '.' && name.front() != '-' &&
                    std::all_of(name.begin(), name.end(), [](unsigned char c) {
                        return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.';
                    });
    if (!ok)
        throw Error(
            ErrorKind::usage,
            fmt::format("{} '{}' is not a valid name (letters, digits, '-', '_', '.'; at most 100)", what, name));
}

RegistryLock::RegistryLock(const fs::path& root) {
    make_dirs(root);
    const fs::path path = root / ".lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(ErrorKind::io, fmt::format("cannot open '{}': {}", path.string(), std::strerror(errno)));
    while (::flock(fd_, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        const int e = errno;
        ::close(fd_);
        throw Error(ErrorKind::io, fmt::format("cannot lock '{}': {}", path.string(), std::strerror(e)));
    }
}

RegistryLock::~RegistryLock() { ::close(fd_); }

std::vector<std::string> list_files(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return out;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        std::error_code ec2;
        if (it->is_regular_file(ec2)) out.push_back(it->path().lexically_relative(dir).generic_string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string string_or_empty(const json& j, const char* key) {
    const auto it = j.find(key);  // end() for a j that is not an object
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::int64_t> integer_field(const json& j, const char* key, std::int64_t fallback) {
    const auto it = j.find(key);
    if (it == j.end()) return fallback;
    if (it->is_number_unsigned()) {
        if (it->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return std::nullopt;
        return static_cast<std::int64_t>(it->get<std::uint64_t>());
    }
    if (it->is_number_integer()) return it->get<std::int64_t>();
    return std::nullopt;
}

std::optional<double> metric_value(const json& metrics, const std::string& key) {
    if (!metrics.contains(key) || !metrics[key].is_number()) return std::nullopt;
    const double v = metrics[key].get<double>();
    if (!std::isfinite(v)) return std::nullopt;
    return v;
}

}  // namespace registry_impl

using namespace registry_impl;

// ====================================================================== status, filters

const char* to_string(RunStatus s) noexcept {
    switch (s) {
        case RunStatus::running:
            return "RUNNING";
        case RunStatus::finished:
            return "FINISHED";
        case RunStatus::failed:
            return "FAILED";
    }
    return "FAILED";
}

std::optional<RunStatus> parse_run_status(const std::string& s) {
    std::string u = s;
    std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (u == "RUNNING") return RunStatus::running;
    if (u == "FINISHED") return RunStatus::finished;
    if (u == "FAILED") return RunStatus::failed;
    return std::nullopt;
}

bool MetricCondition::matches(const json& metrics) const {
    const auto v = metric_value(metrics, key);
    if (!v) return false;
    if (op == "<") return *v < value;
    if (op == "<=") return *v <= value;
    if (op == ">") return *v > value;
    if (op == ">=") return *v >= value;
    if (op == "=" || op == "==") return *v == value;
    if (op == "!=") return *v != value;
    return false;
}

MetricCondition parse_metric_condition(const std::string& text) {
    const auto pos = text.find_first_of("<>=!");
    if (pos == 0 || pos == std::string::npos)
        throw Error(ErrorKind::usage,
                    fmt::format("metric filter '{}' is not KEY<OP>VALUE (e.g. test_age_mae<5)", text));
    MetricCondition c;
    c.key = text.substr(0, pos);
    std::size_t end = pos + 1;
    if (end < text.size() && text[end] == '=') ++end;
    c.op = text.substr(pos, end - pos);
    if (c.op == "!") throw Error(ErrorKind::usage, fmt::format("metric filter '{}': use != for not equal", text));
    try {
        std::size_t used = 0;
        const std::string rest = text.substr(end);
        c.value = std::stod(rest, &used);
        if (used != rest.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
        throw Error(ErrorKind::usage, fmt::format("metric filter '{}': '{}' is not a number", text, text.substr(end)));
    }
    return c;
}

std::vector<std::string> headline_metrics(const std::vector<ModelVersion>& versions) {
    std::vector<std::string> keys;
    std::set<std::string> seen;
    for (const auto& v : versions) {
        // Tags are whatever the run was given: only a list's strings count.
        const auto it = v.tags.find("headline_metrics");
        if (it == v.tags.end() || !it->is_array()) continue;
        for (const auto& k : *it)
            if (k.is_string() && seen.insert(k.get<std::string>()).second) keys.push_back(k.get<std::string>());
    }
    if (keys.empty())
        for (const auto& v : versions)
            for (const auto& [k, val] : v.metrics.items())
                if (val.is_number() && seen.insert(k).second) keys.push_back(k);
    return keys;
}

Registry::Registry(Home home) : home_(std::move(home)) {}

fs::path Registry::root() const { return home_.registry_dir(); }

}  // namespace faceq
