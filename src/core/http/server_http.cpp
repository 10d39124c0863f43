// server_http.cpp — HttpServer: the thin glue between cpp-httplib and
// ApiService (see server.hpp). It converts requests and responses, and wires
// the library's limits, timeouts, thread pool, error pages and logger; every
// decision about what to answer is ApiService's.
#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "faceq/base/error.hpp"
#include "faceq/http/server.hpp"

namespace faceq {
namespace {

using Clock = std::chrono::steady_clock;

// When the request being served on this thread arrived (set by the
// pre-routing handler, read by the logger). cpp-httplib serves one
// connection's requests on one worker thread from start to end, so a
// thread_local carries it from one callback to the other.
thread_local Clock::time_point t_request_start{};

void write_response(httplib::Response& res, const ApiResponse& r) {
    res.status = r.status;
    for (const auto& [k, v] : r.headers) res.set_header(k.c_str(), v);
    res.set_content(r.body, r.content_type.c_str());
}

ApiRequest to_api_request(const httplib::Request& req) {
    ApiRequest r;
    r.method = req.method;
    r.path = req.path;
    for (const auto& [k, v] : req.params) r.query.emplace_back(k, v);
    r.content_type = req.get_header_value("Content-Type");
    r.authorization = req.get_header_value("Authorization");
    r.api_key = req.get_header_value("X-API-Key");
    for (const auto& [name, part] : req.files)
        r.form.push_back({part.name, part.filename, part.content_type, std::string_view(part.content)});
    return r;
}

}  // namespace

struct HttpServer::Impl {
    ApiService& service;
    HttpOptions options;
    httplib::Server server;
    bool bound = false;

    std::mutex mutex;
    std::condition_variable changed;
    bool stop_requested = false;

    Impl(ApiService& s, const HttpOptions& o) : service(s), options(o) {}
};

HttpServer::HttpServer(ApiService& service, const HttpOptions& options)
    : impl_(std::make_unique<Impl>(service, options)) {
    auto& svr = impl_->server;
    ApiService* api = &service;
    const auto threads = static_cast<std::size_t>(std::max(1, options.threads));
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    svr.set_payload_max_length(static_cast<std::size_t>(options.max_upload_bytes));
    svr.set_read_timeout(options.read_timeout);
    svr.set_write_timeout(options.write_timeout);
    svr.set_keep_alive_timeout(static_cast<time_t>(options.keep_alive_timeout.count()));
    svr.set_keep_alive_max_count(1000);
    // cpp-httplib's default is SO_REUSEPORT, with which a second server on
    // the same port binds fine and silently takes half the connections.
    // SO_REUSEADDR alone still allows a quick restart (TIME_WAIT) but makes
    // a port in use a bind error.
    svr.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });

    svr.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
        t_request_start = Clock::now();
        return httplib::Server::HandlerResponse::Unhandled;
    });
    // Every method and path goes to the service, which routes (404, 405).
    const auto handler = [api](const httplib::Request& req, httplib::Response& res) {
        write_response(res, api->handle(to_api_request(req)));
    };
    svr.Get(".*", handler);
    svr.Post(".*", handler);
    svr.Put(".*", handler);
    svr.Patch(".*", handler);
    svr.Delete(".*", handler);
    svr.Options(".*", handler);
    // Statuses cpp-httplib sets itself (400 malformed, 413 over the limit...)
    // get the same JSON error body as the service's own.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([api](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        const auto r = api->http_error(res.status);
        res.set_content(r.body, r.content_type.c_str());
        return httplib::Server::HandlerResponse::Handled;
    }));
    // Only reached by a bug: ApiService::handle() does not throw.
    svr.set_exception_handler([api](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        write_response(res, api->internal_error(fmt::format("{} {}: {}", req.method, req.path, what)));
    });
    svr.set_logger([api](const httplib::Request& req, const httplib::Response& res) {
        double seconds = -1;
        if (t_request_start != Clock::time_point{}) {
            seconds = std::chrono::duration<double>(Clock::now() - t_request_start).count();
            t_request_start = Clock::time_point{};
        }
        api->finish_request(req.method, req.path, res.status, seconds);
    });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
    auto& m = *impl_;
    int port = m.options.port;
    errno = 0;
    if (port == 0) {
        port = m.server.bind_to_any_port(m.options.host);
        if (port <= 0) port = -1;
    } else if (!m.server.bind_to_port(m.options.host, port)) {
        port = -1;
    }
    if (port < 0) {
        const int e = errno;
        throw Error(ErrorKind::io, fmt::format("cannot listen on '{}:{}': {}", m.options.host, m.options.port,
                                               e != 0 ? std::strerror(e) : "address not available or in use"));
    }
    m.bound = true;
    return port;
}

void HttpServer::run() {
    auto& m = *impl_;
    if (!m.bound) throw Error(ErrorKind::internal, "HttpServer::run() before bind()");
    {
        std::lock_guard<std::mutex> lock(m.mutex);
        if (m.stop_requested) return;
    }
    // cpp-httplib's stop() does nothing until its loop runs (a stop that
    // arrives while the loop is starting would be lost) and must not be
    // called twice (it asserts on the closed socket): this watcher calls it
    // once, as soon as both a stop was asked for and the loop is running.
    bool finished = false;
    std::thread watcher([&m, &finished] {
        std::unique_lock<std::mutex> lock(m.mutex);
        bool stopped = false;
        while (!finished) {
            if (m.stop_requested && !stopped && m.server.is_running()) {
                stopped = true;
                lock.unlock();
                m.server.stop();
                lock.lock();
                continue;
            }
            m.changed.wait_for(lock, std::chrono::milliseconds(20));
        }
    });
    m.server.listen_after_bind();
    {
        std::lock_guard<std::mutex> lock(m.mutex);
        finished = true;
    }
    m.changed.notify_all();
    watcher.join();
}

void HttpServer::stop() noexcept {
    auto& m = *impl_;
    {
        std::lock_guard<std::mutex> lock(m.mutex);
        m.stop_requested = true;
    }
    m.changed.notify_all();
}

}  // namespace faceq
