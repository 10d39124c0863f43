// registry.cpp — the plain-file model registry (see registry.hpp and
// docs/registry.md for the layout).
//
// Every read-modify-write happens under an exclusive flock on registry/.lock;
// every JSON file is replaced with write_file_atomic; new version folders are
// filled under a temporary name and renamed into place, so a crash leaves
// either no version or a complete one (and at worst a stray ".tmp-" folder,
// swept by the next writer).
#include "faceq/models/registry.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <system_error>

#include "faceq/base/error.hpp"
#include "faceq/base/fsutil.hpp"
#include "faceq/base/time.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int registry_schema = 1;

// ---------------------------------------------------------------- files

std::optional<json> read_json_if_exists(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("registry file '{}' does not parse: {}", path.string(), e.what()));
    }
}

void write_json(const fs::path& path, const json& j) { write_file_atomic(path, j.dump(2) + "\n"); }

void make_dirs(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
}

// Names become directory names: keep them plain.
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

// An exclusive flock on registry/.lock for the lifetime of the object.
class RegistryLock {
public:
    explicit RegistryLock(const fs::path& root) {
        make_dirs(root);
        const fs::path path = root / ".lock";
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0)
            throw Error(ErrorKind::io, fmt::format("cannot open '{}': {}", path.string(), std::strerror(errno)));
        while (::flock(fd_, LOCK_EX) != 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            ::close(fd_);
            throw Error(ErrorKind::io, fmt::format("cannot lock '{}': {}", path.string(), std::strerror(e)));
        }
    }
    ~RegistryLock() { ::close(fd_); }  // closing releases the lock
    RegistryLock(const RegistryLock&) = delete;
    RegistryLock& operator=(const RegistryLock&) = delete;

private:
    int fd_ = -1;
};

// ---------------------------------------------------------------- processes

std::string this_host() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "";
    return buf;
}

// The start time of a process (clock ticks since boot, /proc/<pid>/stat field
// 22): with the pid it names one process, even after the pid is reused.
std::string process_start(std::int64_t pid) {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string stat;
    if (!in || !std::getline(in, stat)) return "";
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return "";
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    // Fields after "(comm)" start at 3 (state); the start time is field 22.
    for (int i = 3; i <= 22 && rest >> field; ++i) {
        if (i == 22) return field;
    }
    return "";
}

bool process_alive(std::int64_t pid, const std::string& start) {
    if (pid <= 0) return false;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
    return start.empty() || process_start(pid) == start;
}

// ---------------------------------------------------------------- runs

fs::path runs_dir(const Home& home) { return home.registry_dir() / "runs"; }
fs::path models_dir(const Home& home) { return home.registry_dir() / "models"; }
fs::path model_dir(const Home& home, const std::string& name) { return models_dir(home) / name; }
fs::path version_dir(const Home& home, const std::string& name, int v) {
    return model_dir(home, name) / "versions" / std::to_string(v);
}

std::string new_run_id() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    std::random_device rd;
    std::mt19937 gen(rd() ^ static_cast<unsigned>(::getpid()));
    return fmt::format("{}-{:03d}-{:06x}", stamp, ms, gen() & 0xffffff);
}

RunInfo run_from_json(const json& j, const fs::path& dir) {
    RunInfo r;
    r.dir = dir;
    try {
        r.id = j.at("id").get<std::string>();
        r.experiment = j.at("experiment").get<std::string>();
        const auto status = parse_run_status(j.at("status").get<std::string>());
        if (!status) throw Error(ErrorKind::invalid_input, "bad status");
        r.status = *status;
        r.start_time = j.value("start_time", "");
        r.end_time = j["end_time"].is_string() ? j["end_time"].get<std::string>() : "";
        r.pid = j.value("pid", std::int64_t{0});
        r.host = j.value("host", "");
        r.git_version = j["git_version"].is_string() ? j["git_version"].get<std::string>() : "";
        r.faceq_version = j.value("faceq_version", "");
        r.error = j["error"].is_string() ? j["error"].get<std::string>() : "";
        r.params = j.value("params", json::object());
        r.tags = j.value("tags", json::object());
        r.metrics = j.value("metrics", json::object());
        r.artifacts = j.value("artifacts", std::vector<std::string>{});
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("registry file '{}' is malformed: {}", (dir / "run.json").string(), e.what()));
    } catch (const Error&) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("registry file '{}' has an unknown status", (dir / "run.json").string()));
    }
    return r;
}

// A RUNNING run whose process is gone (same host, pid dead or reused).
bool is_orphaned(const json& j) {
    if (j.value("status", "") != "RUNNING") return false;
    if (j.value("host", "") != this_host()) return false;  // cannot tell from here
    return !process_alive(j.value("pid", std::int64_t{0}), j.value("process_start", ""));
}

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

// ---------------------------------------------------------------- models

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
        v.version = j.at("version").get<int>();
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

std::optional<double> metric_value(const json& metrics, const std::string& key) {
    if (!metrics.contains(key) || !metrics[key].is_number()) return std::nullopt;
    const double v = metrics[key].get<double>();
    if (!std::isfinite(v)) return std::nullopt;
    return v;
}

}  // namespace

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
    for (const auto& v : versions)
        for (const auto& k : v.tags.value("headline_metrics", std::vector<std::string>{}))
            if (seen.insert(k).second) keys.push_back(k);
    if (keys.empty())
        for (const auto& v : versions)
            for (const auto& [k, val] : v.metrics.items())
                if (val.is_number() && seen.insert(k).second) keys.push_back(k);
    return keys;
}

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

// ====================================================================== Registry: runs

Registry::Registry(Home home) : home_(std::move(home)) {}

fs::path Registry::root() const { return home_.registry_dir(); }

RunInfo Registry::create_run(const std::string& experiment, const json& params, const json& tags,
                             const std::string& git_version) {
    check_name("experiment", experiment);
    RegistryLock lock(root());
    make_dirs(runs_dir(home_));
    std::string id;
    fs::path dir;
    do {
        id = new_run_id();
        dir = runs_dir(home_) / id;
    } while (fs::exists(dir));
    make_dirs(dir / "artifacts");
    const std::int64_t pid = ::getpid();
    json j{{"schema", registry_schema},
           {"id", id},
           {"experiment", experiment},
           {"status", "RUNNING"},
           {"start_time", utc_now_iso8601()},
           {"end_time", nullptr},
           {"pid", pid},
           {"host", this_host()},
           {"process_start", process_start(pid)},
           {"git_version", git_version.empty() ? json(nullptr) : json(git_version)},
           {"faceq_version", faceq::version()},
           {"error", nullptr},
           {"params", params.is_object() ? params : json::object()},
           {"tags", tags.is_object() ? tags : json::object()},
           {"metrics", json::object()},
           {"artifacts", json::array()}};
    write_file_atomic(dir / "metrics.jsonl", "");
    write_json(dir / "run.json", j);
    return run_from_json(j, dir);
}

void Registry::log_metric(const std::string& run_id, const std::string& key, double value, std::int64_t step) {
    log_metrics(run_id, json{{key, value}}, step);
}

void Registry::log_metrics(const std::string& run_id, const json& values, std::int64_t step) {
    check_name("run", run_id);
    const fs::path path = runs_dir(home_) / run_id / "metrics.jsonl";
    std::string lines;
    const std::string now = utc_now_iso8601();
    for (const auto& [key, value] : values.items()) {
        if (!value.is_number()) continue;
        const double v = value.get<double>();
        json line{
            {"key", key}, {"value", std::isfinite(v) ? json(v) : json(nullptr)}, {"step", step}, {"timestamp", now}};
        lines += line.dump() + "\n";
    }
    if (lines.empty()) return;
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        throw Error(ErrorKind::io, fmt::format("cannot append to '{}': {}", path.string(), std::strerror(errno)));
    const ssize_t n = ::write(fd, lines.data(), lines.size());
    const int e = errno;
    ::fdatasync(fd);
    ::close(fd);
    if (n != static_cast<ssize_t>(lines.size()))
        throw Error(ErrorKind::io, fmt::format("cannot append to '{}': {}", path.string(), std::strerror(e)));
}

void Registry::update_run(const std::string& run_id, const json& params, const json& tags, const json& metrics) {
    check_name("run", run_id);
    RegistryLock lock(root());
    const fs::path dir = runs_dir(home_) / run_id;
    auto j = read_json_if_exists(dir / "run.json");
    if (!j) throw Error(ErrorKind::not_found, fmt::format("no run '{}' in '{}'", run_id, root().string()));
    if (params.is_object()) (*j)["params"].update(params);
    if (tags.is_object()) (*j)["tags"].update(tags);
    if (metrics.is_object()) (*j)["metrics"].update(metrics);
    write_json(dir / "run.json", *j);
}

void Registry::end_run(const std::string& run_id, RunStatus status, const std::string& error) {
    check_name("run", run_id);
    RegistryLock lock(root());
    const fs::path dir = runs_dir(home_) / run_id;
    auto j = read_json_if_exists(dir / "run.json");
    if (!j) throw Error(ErrorKind::not_found, fmt::format("no run '{}' in '{}'", run_id, root().string()));
    (*j)["status"] = to_string(status);
    (*j)["end_time"] = utc_now_iso8601();
    (*j)["error"] = error.empty() ? json(nullptr) : json(error);
    (*j)["artifacts"] = list_files(dir / "artifacts");
    write_json(dir / "run.json", *j);
}

RunInfo Registry::run(const std::string& run_id) const {
    check_name("run", run_id);
    const fs::path dir = runs_dir(home_) / run_id;
    auto j = read_json_if_exists(dir / "run.json");
    if (!j)
        throw Error(ErrorKind::not_found,
                    fmt::format("no run '{}' in '{}' (see: faceq runs list)", run_id, root().string()));
    if (is_orphaned(*j)) {
        // Its process is gone: the run can never finish. Record that, under
        // the lock and only if nobody ended it meanwhile.
        try {
            RegistryLock lock(root());
            j = read_json_if_exists(dir / "run.json");
            if (j && is_orphaned(*j)) {
                (*j)["status"] = "FAILED";
                (*j)["end_time"] = utc_now_iso8601();
                (*j)["error"] = fmt::format("process {} on {} ended without finishing the run (killed or crashed)",
                                            j->value("pid", std::int64_t{0}), j->value("host", ""));
                (*j)["artifacts"] = list_files(dir / "artifacts");
                write_json(dir / "run.json", *j);
            }
        } catch (const Error&) {
            // A read-only registry: report FAILED without recording it.
            (*j)["status"] = "FAILED";
        }
    }
    return run_from_json(*j, dir);
}

std::vector<RunInfo> Registry::runs(const RunFilter& filter) const {
    std::vector<RunInfo> out;
    std::error_code ec;
    std::vector<std::string> ids;
    for (const auto& e : fs::directory_iterator(runs_dir(home_), ec)) {
        std::error_code ec2;
        if (e.is_directory(ec2) && fs::is_regular_file(e.path() / "run.json", ec2))
            ids.push_back(e.path().filename().string());
    }
    std::sort(ids.rbegin(), ids.rend());
    for (const auto& id : ids) {
        RunInfo r;
        try {
            r = run(id);
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::invalid_input) throw;
            // One damaged run must not hide the others: list it as FAILED.
            r.id = id;
            r.dir = runs_dir(home_) / id;
            r.status = RunStatus::failed;
            r.error = e.what();
        }
        if (!filter.experiment.empty() && r.experiment != filter.experiment) continue;
        if (filter.status && r.status != *filter.status) continue;
        if (!std::all_of(filter.metrics.begin(), filter.metrics.end(),
                         [&](const MetricCondition& c) { return c.matches(r.metrics); }))
            continue;
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<MetricPoint> Registry::metric_history(const std::string& run_id) const {
    const RunInfo r = run(run_id);
    std::vector<MetricPoint> out;
    std::ifstream in(r.dir / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        const json j = json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("key")) continue;  // a torn last line
        MetricPoint p;
        p.key = j.value("key", "");
        p.value = j["value"].is_number() ? j["value"].get<double>() : std::nan("");
        p.step = j.value("step", std::int64_t{0});
        p.timestamp = j.value("timestamp", "");
        out.push_back(std::move(p));
    }
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

// ====================================================================== RunGuard

RunGuard::~RunGuard() {
    if (ended_) return;
    try {
        registry_.end_run(id_, RunStatus::failed, "stopped before it finished");
    } catch (...) {
        // The process is unwinding already; a run left RUNNING reads as FAILED
        // once this process is gone.
    }
}

void RunGuard::finish() {
    registry_.end_run(id_, RunStatus::finished);
    ended_ = true;
}

void RunGuard::fail(const std::string& why) {
    ended_ = true;
    registry_.end_run(id_, RunStatus::failed, why);
}

}  // namespace faceq
