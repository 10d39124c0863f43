// server_http.cpp — HttpServer: the glue between Boost.Beast (header-only,
// Debian's libboost-dev) and ApiService (see server.hpp). It moves bytes and
// enforces the transport limits; every decision about what to answer is
// ApiService's. Why Beast and not cpp-httplib: docs/http.md (measured).
//
// Per connection, for each request:
//   1. wait for the first byte (the keep-alive timeout between requests);
//   2. one deadline, --read-timeout, for the head and the body together;
//   3. the head alone (at most 16 KiB, else 431), then ApiService::admit():
//      401/404/405/413/415/501 before any body byte is read;
//   4. the body, limited to --max-upload-mb counted after de-chunking (413);
//      bodies with a Content-Encoding never get here (admit: 415);
//   5. ApiService::handle() on the worker pool (--threads), never on the
//      event loops, which keep accepting and answering meanwhile;
//   6. the answer, then the next request from the same buffer: pipelined
//      requests are answered in order. Range headers are not looked at.
// At most --max-connections are open at once; the accept loop closes any
// further one at once (no answer: reading its request would be the work the
// cap is there to avoid).
// A refusal that leaves a body unread closes the connection: the server
// stops sending, reads and drops up to 8 MiB or 2 s of what the client still
// sends, at most 4 MiB/s (so that it sees the answer and not a reset, without
// letting an endless body cost more than that), then closes.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/http/server.hpp"

namespace faceq {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t header_limit = 16 * 1024;   // request line + headers
constexpr int listen_backlog = 1024;              // bursts of connections wait here, not in SYN retries
constexpr std::size_t drain_limit = 8u << 20;     // bytes dropped after a refusal, before closing
constexpr std::chrono::seconds drain_timeout{2};  // ... and how long that may take
// ... and how fast: drain_limit over drain_timeout (4 MiB/s). Unpaced, a client
// that sends an endless body and reconnects made the event loops read 9 MiB per
// connection as fast as loopback goes (600 MB/s, p99 of /health x2.4 for the
// others; docs/http.md); paced, the same client costs 6-8 MB/s.
constexpr double drain_bytes_per_second = static_cast<double>(drain_limit) / drain_timeout.count();
constexpr std::size_t first_read = 8 * 1024;  // bytes asked for when waiting for a request

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// %XX decoding; '+' is a space in query strings only.
std::string url_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

// "/path?a=1&b" -> path "/path", query {("a", "1"), ("b", "")}.
void split_target(std::string_view target, ApiRequestHead& head) {
    const auto mark = target.find('?');
    head.path = url_decode(target.substr(0, mark), false);
    if (mark == std::string_view::npos) return;
    std::string_view rest = target.substr(mark + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        if (!pair.empty()) {
            const auto eq = pair.find('=');
            head.query.emplace_back(url_decode(pair.substr(0, eq), true), eq == std::string_view::npos
                                                                              ? std::string()
                                                                              : url_decode(pair.substr(eq + 1), true));
        }
        if (amp == std::string_view::npos) break;
        rest = rest.substr(amp + 1);
    }
}

bool is_parse_error(const beast::error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_target).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message;
}

class Session;

// What the connections share; HttpServer::Impl is this.
struct Server {
    ApiService& service;
    HttpOptions options;
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    net::thread_pool workers;  // ApiService::handle() runs here
    bool bound = false;

    std::mutex mutex;
    bool stop_requested = false;
    std::map<const Session*, std::weak_ptr<Session>> sessions;
    std::atomic<int> connections{0};

    Server(ApiService& s, const HttpOptions& o)
        : service(s),
          options(o),
          ioc(std::clamp(o.threads, 1, 2)),
          workers(static_cast<std::size_t>(std::max(1, o.threads))) {}

    bool stopping() {
        std::lock_guard<std::mutex> lock(mutex);
        return stop_requested;
    }
    void accept();
    void shut_down();  // on the event loop, after stop()
};

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket&& socket, Server& server) : stream_(std::move(socket)), server_(server) {
        server_.connections.fetch_add(1);
    }
    ~Session() {
        server_.connections.fetch_sub(1);
        std::lock_guard<std::mutex> lock(server_.mutex);
        server_.sessions.erase(this);
    }

    void start() {
        {
            std::lock_guard<std::mutex> lock(server_.mutex);
            server_.sessions.emplace(this, weak_from_this());
        }
        net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->wait_request(); });
    }

    // stop(): a connection waiting for or reading a request closes now; one
    // whose request is being answered closes after the answer.
    void stop() {
        if (reading_) close();
    }
    net::any_io_executor executor() { return stream_.get_executor(); }

private:
    beast::tcp_stream stream_;
    Server& server_;
    beast::flat_buffer buffer_;  // outlives each request: pipelined bytes wait here
    std::optional<http::request_parser<http::string_body>> parser_;
    ApiRequest request_;
    std::string body_;  // request_.form points into it
    unsigned version_ = 11;
    bool head_only_ = false;  // a HEAD request: the answer without its body
    bool keep_alive_ = true;
    bool first_ = true;
    bool reading_ = false;
    Clock::time_point started_{};
    std::vector<char> drain_;
    std::size_t drained_ = 0;
    Clock::time_point drain_start_{};
    std::optional<net::steady_timer> drain_pause_;

    ApiService& api() { return server_.service; }

    // 1. Until the request's first byte: --read-timeout for a new
    // connection, the keep-alive timeout between requests.
    void wait_request() {
        reading_ = true;
        if (server_.stopping()) return close();
        if (buffer_.size() > 0) return read_head();
        stream_.expires_after(first_ ? server_.options.read_timeout : server_.options.keep_alive_timeout);
        stream_.async_read_some(buffer_.prepare(first_read),
                                [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                    if (ec) return self->close();
                                    self->buffer_.commit(n);
                                    self->read_head();
                                });
    }

    // 2.-3. The head, under the whole-request deadline.
    void read_head() {
        first_ = false;
        started_ = Clock::now();
        request_ = ApiRequest{};
        body_.clear();
        head_only_ = false;
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(header_limit));
        // No body limit yet: with one, Beast fails a large Content-Length in
        // the head, before admit() can say 401. The real one is set below.
        parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
        stream_.expires_after(server_.options.read_timeout);
        http::async_read_header(stream_, buffer_, *parser_,
                                [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_head(ec); });
    }

    void on_head(beast::error_code ec) {
        if (ec == http::error::header_limit) return refuse(api().http_error(431));
        if (is_parse_error(ec)) return refuse(api().http_error(400));
        if (ec) return close();  // timeout (already closed), reset, EOF, stop
        const auto& req = parser_->get();
        version_ = req.version();
        keep_alive_ = req.keep_alive();
        ApiRequestHead& head = request_;
        head.method = std::string(req.method_string());
        head_only_ = req.method() == http::verb::head;
        split_target(std::string_view(req.target().data(), req.target().size()), head);
        const auto field = [&req](auto name) {
            const auto v = req[name];
            return std::string(v.data(), v.size());
        };
        head.content_type = field(http::field::content_type);
        head.authorization = field(http::field::authorization);
        head.api_key = field("X-API-Key");
        if (const auto n = parser_->content_length()) head.content_length = *n;
        head.chunked = parser_->chunked();
        head.transfer_encoding = field(http::field::transfer_encoding);
        head.content_encoding = field(http::field::content_encoding);
        head.cookie = field(http::field::cookie);
        head.host = field(http::field::host);
        head.csrf_token = field("X-CSRF-Token");
        head.if_none_match = field(http::field::if_none_match);
        if (auto refused = api().admit(head)) {
            const bool body_unread = refused->close;
            return send(std::move(*refused), body_unread);
        }
        // The route's own limit (64 KiB for JSON) when tighter than --max-upload-mb.
        const std::uint64_t route_limit = api().body_limit(head);
        parser_->body_limit(route_limit > 0 ? std::min(route_limit, server_.options.max_upload_bytes)
                                            : server_.options.max_upload_bytes);
        if (beast::iequals(field(http::field::expect), "100-continue") && !parser_->is_done()) {
            auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, version_);
            return http::async_write(stream_, *go_on,
                                     [self = shared_from_this(), go_on](beast::error_code e, std::size_t) {
                                         if (e) return self->close();
                                         self->read_body();
                                     });
        }
        read_body();
    }

    // 4. The body, de-chunked, at most --max-upload-mb.
    void read_body() {
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
    }

    void on_body(beast::error_code ec) {
        if (ec == http::error::body_limit) return refuse(api().http_error(413));
        if (is_parse_error(ec)) return refuse(api().http_error(400));
        if (ec) return close();
        body_ = std::move(parser_->get().body());
        parser_.reset();
        request_.body = body_;
        if (request_.content_type.size() >= 19 &&
            beast::iequals(request_.content_type.substr(0, 19), "multipart/form-data") &&
            !parse_multipart(body_, request_.content_type, request_.form))
            return send(error_response(400, "invalid_input", "malformed multipart/form-data body"), false);
        handle();
    }

    // 5. The answer, computed off the event loop.
    void handle() {
        reading_ = false;
        stream_.expires_never();
        net::post(server_.workers, [self = shared_from_this(), guard = net::make_work_guard(server_.ioc)] {
            auto answer = std::make_shared<ApiResponse>(self->api().handle(self->request_));
            net::post(self->stream_.get_executor(), [self, answer] { self->send(std::move(*answer), false); });
        });
    }

    // A failure of the transport (431, 400, 413 while reading): the rest of
    // the request is not read.
    void refuse(ApiResponse answer) { send(std::move(answer), true); }

    // 6. The answer, then the next request (or the close).
    void send(ApiResponse answer, bool unread_body) {
        reading_ = false;
        const bool close_after = unread_body || !keep_alive_ || server_.stopping();
        const int status = answer.status;
        auto res =
            std::make_shared<http::response<http::string_body>>(static_cast<http::status>(answer.status), version_);
        if (!(answer.body.empty() && (status == 204 || status == 304)))
            res->set(http::field::content_type, answer.content_type);
        for (const auto& [k, v] : answer.headers) res->set(k, v);
        // No answer is to be sniffed into another type (a JSON string shown as HTML, say).
        res->set("X-Content-Type-Options", "nosniff");
        res->keep_alive(!close_after);
        if (head_only_) {
            res->content_length(answer.body.size());
        } else {
            res->body() = std::move(answer.body);
            res->prepare_payload();
        }
        stream_.expires_after(server_.options.write_timeout);
        http::async_write(
            stream_, *res,
            [self = shared_from_this(), res, status, close_after, unread_body](beast::error_code ec, std::size_t) {
                const double seconds = std::chrono::duration<double>(Clock::now() - self->started_).count();
                self->api().finish_request(self->request_.method, self->request_.path, status, seconds);
                if (ec) return self->close();
                if (unread_body) return self->drain();
                if (close_after) return self->close();
                self->wait_request();
            });
    }

    // After a refusal with the body unread: stop sending, drop what still
    // arrives (bounded), then close, so that the client reads the answer.
    void drain() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        drain_.resize(64 * 1024);
        drained_ = 0;
        drain_start_ = Clock::now();
        stream_.expires_after(drain_timeout);
        drain_more();
    }

    // Reads on only once the bytes dropped so far are within the pace; the
    // stream's deadline (drain_timeout) still ends it, paused or not: a read
    // started after it fails at once.
    void drain_more() {
        const auto due = drain_start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                            static_cast<double>(drained_) / drain_bytes_per_second));
        if (due > Clock::now()) {
            if (!drain_pause_) drain_pause_.emplace(stream_.get_executor());
            drain_pause_->expires_at(due);
            return drain_pause_->async_wait([self = shared_from_this()](beast::error_code ec) {
                if (ec) return self->close();
                self->drain_read();
            });
        }
        drain_read();
    }

    void drain_read() {
        stream_.async_read_some(net::buffer(drain_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
            self->drained_ += n;
            if (ec || self->drained_ >= drain_limit) return self->close();
            self->drain_more();
        });
    }

    void close() {
        reading_ = false;
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.socket().close(ignored);
    }
};

void Server::accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;  // stopped
        if (ec) {
            // Out of file descriptors, for instance: try again shortly.
            auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(50));
            timer->async_wait([this, timer](beast::error_code) {
                if (acceptor.is_open()) accept();
            });
            return;
        }
        if (connections.load() >= options.max_connections) {
            // Over the cap: closed at once, before reading anything, so that a
            // flood of connections costs one accept and one close each and
            // never a Session; a client that has not written yet sees EOF.
            beast::error_code ignored;
            socket.shutdown(tcp::socket::shutdown_both, ignored);
            socket.close(ignored);
        } else {
            std::make_shared<Session>(std::move(socket), *this)->start();
        }
        accept();
    });
}

void Server::shut_down() {
    beast::error_code ignored;
    acceptor.close(ignored);
    std::vector<std::shared_ptr<Session>> live;
    {
        std::lock_guard<std::mutex> lock(mutex);
        for (auto& [key, weak] : sessions)
            if (auto s = weak.lock()) live.push_back(std::move(s));
    }
    for (auto& s : live) net::post(s->executor(), [s] { s->stop(); });
}

}  // namespace

struct HttpServer::Impl : Server {
    using Server::Server;
};

HttpServer::HttpServer(ApiService& service, const HttpOptions& options)
    : impl_(std::make_unique<Impl>(service, options)) {}

HttpServer::~HttpServer() {
    stop();
    impl_->workers.join();
}

int HttpServer::bind() {
    auto& m = *impl_;
    try {
        tcp::resolver resolver(m.ioc);
        const auto endpoints = resolver.resolve(m.options.host, std::to_string(m.options.port),
                                                tcp::resolver::passive | tcp::resolver::numeric_service);
        beast::error_code ec = net::error::host_not_found;
        for (const auto& entry : endpoints) {
            beast::error_code ignored;
            m.acceptor.close(ignored);
            m.acceptor.open(entry.endpoint().protocol(), ec);
            // SO_REUSEADDR (a quick restart over TIME_WAIT), never SO_REUSEPORT:
            // with it a second server would bind the same port and silently
            // take half the connections.
            if (!ec) m.acceptor.set_option(net::socket_base::reuse_address(true), ec);
            if (!ec) m.acceptor.bind(entry.endpoint(), ec);
            if (!ec) m.acceptor.listen(listen_backlog, ec);
            if (!ec) break;
        }
        if (ec) throw beast::system_error(ec);
        m.bound = true;
        return m.acceptor.local_endpoint().port();
    } catch (const beast::system_error& e) {
        throw Error(ErrorKind::io,
                    fmt::format("cannot listen on '{}:{}': {}", m.options.host, m.options.port, e.code().message()));
    }
}

void HttpServer::run() {
    auto& m = *impl_;
    if (!m.bound) throw Error(ErrorKind::internal, "HttpServer::run() before bind()");
    if (m.stopping()) {
        // stop() came first: its shut_down() will never run, so stop listening here
        // (a connect would otherwise still succeed and wait for nobody).
        beast::error_code ignored;
        m.acceptor.close(ignored);
        return;
    }
    m.accept();
    // Event loops: the calling thread and, with --threads > 1, one more.
    // They never block: handle() runs on the worker pool.
    const auto loop = [&m] {
        for (;;) {
            try {
                m.ioc.run();
                return;
            } catch (const std::exception& e) {
                (void)m.service.internal_error(fmt::format("HTTP event loop: {}", e.what()));
            } catch (...) {
                (void)m.service.internal_error("HTTP event loop: unknown exception");
            }
        }
    };
    std::vector<std::thread> more;
    for (int i = 1; i < std::clamp(m.options.threads, 1, 2); ++i) more.emplace_back(loop);
    loop();
    for (auto& t : more) t.join();
}

void HttpServer::stop() noexcept {
    auto& m = *impl_;
    {
        std::lock_guard<std::mutex> lock(m.mutex);
        if (m.stop_requested) return;
        m.stop_requested = true;
    }
    try {
        net::post(m.ioc, [&m] { m.shut_down(); });
    } catch (...) {
    }
}

}  // namespace faceq
