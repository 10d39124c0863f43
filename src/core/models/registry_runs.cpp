// registry_runs.cpp — the registry's runs (see faceq/models/registry.hpp):
// creating one, logging its metrics, ending it, reading it back (a RUNNING
// run whose process is gone is recorded as FAILED), listing and filtering
// them; and RunGuard.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/models/registry.hpp"
#include "models/registry_impl.hpp"

namespace faceq {

using namespace registry_impl;

namespace {

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
    const std::string file = (dir / "run.json").string();
    RunInfo r;
    r.dir = dir;
    std::optional<RunStatus> status;
    std::optional<std::int64_t> pid;
    try {
        r.id = j.at("id").get<std::string>();
        r.experiment = j.at("experiment").get<std::string>();
        status = parse_run_status(j.at("status").get<std::string>());
        r.start_time = j.value("start_time", "");
        r.end_time = string_or_empty(j, "end_time");  // null while running
        pid = integer_field(j, "pid", 0);
        r.host = j.value("host", "");
        r.git_version = string_or_empty(j, "git_version");  // null when unknown
        r.faceq_version = j.value("faceq_version", "");
        r.error = string_or_empty(j, "error");  // null unless failed
        r.params = j.value("params", json::object());
        r.tags = j.value("tags", json::object());
        r.metrics = j.value("metrics", json::object());
        r.artifacts = j.value("artifacts", std::vector<std::string>{});
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input, fmt::format("registry file '{}' is malformed: {}", file, e.what()));
    }
    if (!status) throw Error(ErrorKind::invalid_input, fmt::format("registry file '{}' has an unknown status", file));
    if (!pid)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("registry file '{}' is malformed: pid is not an integer", file));
    r.status = *status;
    r.pid = *pid;
    return r;
}

// A RUNNING run whose process is gone (same host, pid dead or reused). A
// malformed pid reads as no process: run_from_json() then reports the file.
bool is_orphaned(const json& j) {
    if (string_or_empty(j, "status") != "RUNNING") return false;
    if (string_or_empty(j, "host") != this_host()) return false;  // cannot tell from here
    return !process_alive(integer_field(j, "pid", 0).value_or(0), string_or_empty(j, "process_start"));
}

}  // namespace

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
                                            integer_field(*j, "pid", 0).value_or(0), string_or_empty(*j, "host"));
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
        // A torn last line, or one that is not a metric: skipped.
        if (j.is_discarded() || !j.is_object() || !j.contains("key") || !j["key"].is_string()) continue;
        MetricPoint p;
        p.key = j["key"].get<std::string>();
        const auto value = j.find("value");  // null for a value that was not finite
        p.value = value != j.end() && value->is_number() ? value->get<double>() : std::nan("");
        p.step = integer_field(j, "step", 0).value_or(0);
        p.timestamp = string_or_empty(j, "timestamp");
        out.push_back(std::move(p));
    }
    return out;
}

// ---------------------------------------------------------------- RunGuard

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
