// cmd_serve.cpp — `faceq serve`: the HTTP API (see faceq/http/server.hpp and
// docs/api.md). This file binds the options, reads the API key, listens
// first (so /health answers 503 while the models load), loads the models and
// the gallery, and stops gracefully on SIGINT/SIGTERM: requests in flight are
// answered, then faceq exits 0. A second signal ends the process at once.
// Exit codes: 0 stopped by a signal, 1 cannot listen or load, 2 usage.
#include <fmt/format.h>
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/http/api_key.hpp"
#include "faceq/http/server.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "gallery_support.hpp"
#include "signals.hpp"

namespace faceq::cli {
namespace {

struct ServeCommand {
    HttpOptions http;
    int jobs = 0;
    double max_upload_mb = 20;
    int read_timeout = 30;
    int write_timeout = 30;
    std::string api_key_file;
    bool no_store = false;
    AnalyzeOptions options;
    std::uint64_t max_pixels = ImageLimits{}.max_pixels;
    CalibrationChoice calibration;
};

// ---------------------------------------------------------------- serve

ServiceSetup load(ServeCommand& cmd, const Context& ctx) {
    SessionOptions options;
    options.analyze = cmd.options;
    options.calibration = cmd.calibration;
    options.store = !cmd.no_store;
    options.skip_unchanged = false;  // every upload is analysed
    options.create_gallery = true;
    ServiceSetup setup;
    setup.session =
        std::make_unique<AnalysisSession>(ctx.home, load_manifest(ctx.manifest_path()), options, log_to(ctx));
    setup.limits = ImageLimits{cmd.max_pixels, ImageLimits{}.max_file_bytes};
    setup.jobs = cmd.jobs;
    setup.home = ctx.home;
    setup.manifest_path = ctx.manifest_path();
    // After POST /api/models/deploy or /rollback: the same session, with the
    // models then in production (resolve_models, resolve_calibration).
    setup.reload = [options, &ctx] {
        return std::make_unique<AnalysisSession>(ctx.home, load_manifest(ctx.manifest_path()), options, log_to(ctx));
    };
    return setup;
}

// Whether `host` is an address of this machine only (127.0.0.0/8, ::1,
// localhost): without an API key, deploy and rollback are refused otherwise.
bool is_loopback(const std::string& host) {
    return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// glibc gives every thread that allocates its own malloc arena (up to 8 per
// core), and each arena keeps the freed buffers of the images its thread
// decoded and detected in: with 8 HTTP threads the RSS crept up ~15% over a
// few minutes of load. Requests allocate little besides those buffers, so
// sharing `jobs` arenas costs no measurable speed and keeps the RSS flat
// (docs/benchmarks.md). MALLOC_ARENA_MAX, when set, wins.
void limit_malloc_arenas(int jobs) {
    if (std::getenv("MALLOC_ARENA_MAX")) return;
    mallopt(M_ARENA_MAX, std::max(2, jobs));
}

// Every open connection is a file descriptor. With the soft limit many
// systems start processes with (1,024) the server would run out of them before
// --max-connections (accept then fails and retries, SQLite cannot open its
// files), so the soft limit is raised towards the hard one; if that is still
// short, the operator is told.
void raise_fd_limit(int max_connections, const Context& ctx) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    const rlim_t wanted = static_cast<rlim_t>(max_connections) + 256;  // models, the gallery, logs, accepts
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= wanted) return;
    const rlim_t before = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, lim.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) lim.rlim_cur = before;
    if (lim.rlim_cur < wanted)
        ctx.warn(fmt::format("open files are limited to {} (ulimit -n): fewer than --max-connections {} can be served",
                             lim.rlim_cur, max_connections));
}

int run_serve(ServeCommand& cmd, Context& ctx) {
    raise_fd_limit(cmd.http.max_connections, ctx);
    cmd.http.max_upload_bytes = static_cast<std::uint64_t>(cmd.max_upload_mb * 1024 * 1024);
    cmd.http.read_timeout = std::chrono::seconds(cmd.read_timeout);
    cmd.http.write_timeout = std::chrono::seconds(cmd.write_timeout);

    ServiceInfo info;
    info.version = faceq::version();
    info.max_body_bytes = cmd.http.max_upload_bytes;
    info.exposed = !is_loopback(cmd.http.host);
    if (auto key = read_api_key(cmd.api_key_file, log_to(ctx))) {
        ctx.debug(fmt::format("API key from {}", key->source));
        info.api_key = std::move(key->value);
    }
    const bool keyed = info.api_key.has_value();
    const int jobs = jobs_or_cores(cmd.jobs);
    cmd.jobs = jobs;
    limit_malloc_arenas(jobs);
    info.access_log = [&ctx](const std::string& line) { ctx.info(fmt::format("{} {}", utc_now_iso8601(), line)); };
    info.error_log = [&ctx](const std::string& message) { ctx.error(message); };
    ApiService service(std::move(info));

    HttpServer http(service, cmd.http);
    StopSignals signals(stop_server);
    const int port = http.bind();
    const std::string host = cmd.http.host.find(':') != std::string::npos ? "[" + cmd.http.host + "]" : cmd.http.host;
    ctx.info(fmt::format("listening on http://{}:{} ({} worker threads{})", host, port, cmd.http.threads,
                         service.ready() ? "" : "; loading models"));

    std::atomic<int> stopped_by{0};
    std::thread watcher([&] {
        const int sig = StopSignals::wait();
        if (sig == 0) return;
        stopped_by = sig;
        ctx.info(fmt::format("{} received: finishing the requests in flight, then stopping",
                             sig == SIGINT ? "SIGINT" : "SIGTERM"));
        http.stop();
    });
    std::thread server([&] { http.run(); });
    const auto finish = [&] {
        server.join();
        StopSignals::wake();
        watcher.join();
    };

    try {
        service.start(load(cmd, ctx));
    } catch (...) {
        http.stop();
        finish();
        throw;
    }
    if (stopped_by == 0)
        ctx.info(fmt::format("ready: {} analyses at once{}{}", jobs, cmd.no_store ? ", detections not stored" : "",
                             keyed ? ", API key required" : ""));
    finish();
    if (stopped_by == 0) {
        ctx.error(fmt::format("the server on port {} stopped unexpectedly", port));
        return 1;
    }
    ctx.info("stopped");
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_serve(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<ServeCommand>();
    auto* sub =
        app.add_subcommand("serve", "Serve the HTTP API: /health, /analyze, /register, /stats, /search, /metrics");
    sub->add_option("--host", cmd->http.host, "Address to listen on (0.0.0.0 for every interface)")
        ->capture_default_str();
    sub->add_option("-p,--port", cmd->http.port, "TCP port (0: any free port, printed on stderr)")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    sub->add_option("--threads", cmd->http.threads,
                    "Requests answered at once (analyses also wait for one of --jobs); idle connections hold none")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    sub->add_option("-j,--jobs", cmd->jobs,
                    "Analyses at once, one copy of the networks each (default: number of cores)")
        ->check(CLI::Range(1, 256));
    sub->add_option("--max-upload-mb", cmd->max_upload_mb, "Largest request body in MiB; larger ones get 413")
        ->check(CLI::Range(0.001, 4096.0))
        ->capture_default_str();
    sub->add_option("--max-pixels", cmd->max_pixels, "Refuse images declaring more pixels than this (413)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40))
        ->capture_default_str();
    sub->add_option("--read-timeout", cmd->read_timeout, "Seconds for a whole request (head and body) to arrive")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    sub->add_option("--max-connections", cmd->http.max_connections,
                    "Connections open at once (idle ones included); further ones are closed on accept")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    sub->add_option("--write-timeout", cmd->write_timeout, "Seconds to wait while sending a response")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    sub->add_option("--api-key-file", cmd->api_key_file,
                    "File holding the API key every route but /health requires (default: $FACEQ_API_KEY; none: open)");
    sub->add_flag("--no-store", cmd->no_store, "Identify faces without recording images and detections");
    add_detection_options(sub, cmd->options);
    add_calibration_flags(sub, cmd->calibration);
    return {sub, [cmd, &ctx] { return run_serve(*cmd, ctx); }};
}

}  // namespace faceq::cli
