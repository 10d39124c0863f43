// faceq/http/server.hpp — the HTTP API (`faceq serve`): the reference system's
// REST resources answered by faceq's own pipeline and gallery.
//
//   GET  /health              ready, version, models, database; 503 until ready
//   POST /analyze             multipart `file`: faces with identities, recorded like `analyze --store`
//   POST /register            multipart `file` + `person_name`: enrolls a known person
//   GET  /stats               what `faceq stats --format json` prints
//   GET  /search?name=TEXT    what `faceq search --name TEXT` prints, as one list
//   GET  /metrics             Prometheus text format
//   GET  /, /ui/<file>        the web page, compiled into the binary (web_assets.hpp)
//   /api/...                  the page's JSON routes, login sessions and CSRF (docs/api.md)
//
// Two layers, as llama.cpp's server: ApiService is the logic — routing,
// authentication, the handlers, error mapping, metrics — on plain values
// (ApiRequest in, ApiResponse out), with no HTTP library type in sight;
// HttpServer is the glue that moves bytes between Boost.Beast and it. Both
// live in the core library (Beast is header-only and private to
// src/core/http/server_http.cpp, like SQLite to identity/sqlite_store.cpp), which
// keeps `cmd_serve.cpp` about options and signals only and leaves the whole
// API usable in-process, e.g. by a test or another front end.
//
// Every response body is JSON except /metrics. Failures are
//   {"success": false, "error": {"kind": "...", "message": "..."}}
// with the status: 400 bad input (missing field, not an image, no face to
// register, bad name), 401 missing or wrong API key, 404 unknown route, 405
// known route with another method, 409 photo already enrolled as another
// person, 413 upload or image over the limits, 415 not multipart/form-data,
// 500 a bug or a broken model, 503 not ready yet or database unavailable;
// the glue adds 431 (head over 16 KiB) and 413 for chunked bodies over the
// limit. 5xx messages never carry paths or SQL (the error log does).
// `kind` is an ErrorKind name (error.hpp) or, for HTTP-only failures,
// "unauthorized", "route_not_found", "method_not_allowed", "conflict",
// "unsupported_media_type", "unavailable".
//
// Invariants: handlers never throw — every exception becomes a 500 response
// (and a bug report in the log) — so a bad request never takes the server
// down. Access log lines carry method, path (without the query string, which
// may hold a person's name), status and milliseconds; never image bytes.
//
// Threads: ApiService::handle() and finish_request() may run on any number of
// threads at once. Analyses run on a pool of Analyzer copies (one per
// concurrent analysis, at most ServiceSetup::jobs: dlib networks are not
// thread-safe, and more copies than cores only add memory); HttpServer calls
// handle() on HttpOptions::threads worker threads, which wait for a free
// copy, while one or two event-loop threads read and write every connection. The Gallery
// serializes its own calls and shares the SQLite file with CLI processes
// (WAL, busy timeout; see gallery.hpp).
//
// Errors: ApiService::start() throws Error{model} when the networks cannot be
// loaded; HttpServer::bind() throws Error{io} when it cannot listen.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/base/home.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/session/analysis_session.hpp"

namespace faceq {

// One part of a multipart/form-data body. `content` points into the request
// it came from and lives as long as that request.
struct FormPart {
    std::string name;
    std::string filename;  // empty for plain fields
    std::string content_type;
    std::string_view content;
};

// What is known once a request's head (request line and headers) is in,
// before any body byte is read: enough for ApiService::admit().
struct ApiRequestHead {
    std::string method;                                      // "GET", "POST", ...
    std::string path;                                        // without the query string, decoded
    std::vector<std::pair<std::string, std::string>> query;  // decoded
    std::string content_type;                                // the Content-Type header, as sent
    std::string authorization;                               // the Authorization header
    std::string api_key;                                     // the X-API-Key header
    std::optional<std::uint64_t> content_length;             // the Content-Length header, when sent
    bool chunked = false;                                    // Transfer-Encoding: chunked
    std::string transfer_encoding;                           // as sent
    std::string content_encoding;                            // as sent
    std::string cookie;                                      // the Cookie header
    std::string csrf_token;                                  // the X-CSRF-Token header
    std::string if_none_match;                               // the If-None-Match header
    std::string host;                                        // the Host header
};

struct ApiRequest : ApiRequestHead {
    std::vector<FormPart> form;
    std::string_view body;  // the whole body (JSON routes); points into the request, as `form`
};

struct ApiResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Allow, WWW-Authenticate)
    bool close = false;  // the connection must close after it: the request's body was left unread
};

// What the service knows before the models are loaded.
struct ServiceInfo {
    std::string version;                 // faceq's
    std::optional<std::string> api_key;  // when set, every route but /health needs it (and /health's details)
    std::uint64_t max_body_bytes = 0;    // request bodies above it get 413 from admit(); 0 = no limit
    // Listens beyond the loopback interface: without an API key, deploy and
    // rollback are then refused (403). Not exposed and without a key, a
    // request whose Host header names another machine is refused (403): a
    // web page whose name was made to resolve to 127.0.0.1 (DNS rebinding)
    // must not read the gallery or the page's CSRF token.
    bool exposed = false;
    // Lifetime of a login session (the cookie's Max-Age), seconds.
    std::int64_t session_seconds = 43200;
    // Called once per finished request with the access log line (no newline).
    std::function<void(const std::string&)> access_log;
    // Called with messages for the operator: failures answered with 500.
    std::function<void(const std::string&)> error_log;
};

// What answering needs, handed over once loaded (ApiService::start).
struct ServiceSetup {
    // Models, gallery, calibration and the --store rules, shared by every
    // request: /analyze is AnalysisSession::analyze + identify (as `analyze
    // --store`, but every upload is analysed), /register is an Enroller on it.
    // Must have a gallery (SessionOptions::create_gallery).
    std::unique_ptr<AnalysisSession> session;
    ImageLimits limits;
    int jobs = 1;  // Analyzer copies = analyses at once
    // The home (its model registry: /api/runs, /api/models, deploy) and the
    // model manifest (the installed embedder the deploy rules compare with).
    Home home;
    std::filesystem::path manifest_path;
    // Builds a session like `session` again, with the models now deployed:
    // called after /api/models/deploy and /rollback. Empty: the server keeps
    // its models until restarted (the answers say so).
    std::function<std::unique_ptr<AnalysisSession>()> reload;
};

class ApiService {
public:
    explicit ApiService(ServiceInfo info);
    ~ApiService();
    ApiService(const ApiService&) = delete;
    ApiService& operator=(const ApiService&) = delete;

    // Loads the networks (the first Analyzer) and makes the service ready.
    // Until then every route but /health answers 503. Throws Error{model}.
    void start(ServiceSetup setup);
    bool ready() const noexcept;

    // Decides from the head alone, before the body is read: the answer when
    // the request is refused (401 key, 404/405 route, 501 transfer coding,
    // 415 compressed or non-multipart body, 413 declared length over
    // max_body_bytes), nullopt to read the body and call handle(). A refusal
    // of a request with a body says `close`. Never throws.
    std::optional<ApiResponse> admit(const ApiRequestHead& head) const noexcept;
    // The largest body the route of an admitted head accepts (counted after
    // de-chunking): max_body_bytes for uploads, 64 KiB for JSON routes.
    std::uint64_t body_limit(const ApiRequestHead& head) const noexcept;
    // Routes and answers one request (admit() first). Never throws.
    ApiResponse handle(const ApiRequest& request) noexcept;

    // The JSON error response for a status the HTTP layer produced itself
    // (400 malformed request, 413 body over the limit, ...). Never throws.
    ApiResponse http_error(int status) const noexcept;
    // A 500 response for an exception that escaped a handler (a bug).
    ApiResponse internal_error(const std::string& what) noexcept;

    // Counts a finished request in the metrics and writes its access log line.
    // `seconds` < 0 when the duration is unknown. Never throws.
    void finish_request(const std::string& method, const std::string& path, int status, double seconds) noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// JSON error body: {"success": false, "error": {"kind", "message"}}.
ApiResponse error_response(int status, const std::string& kind, const std::string& message);
// The HTTP status for a core error kind (invalid_input -> 400, too_large -> 413, ...).
int http_status(ErrorKind kind) noexcept;
// Splits a complete multipart/form-data body (boundary from `content_type`)
// into `out`, whose contents point into `body`. False when malformed.
bool parse_multipart(std::string_view body, std::string_view content_type, std::vector<FormPart>& out);
// Constant-time comparison of two secrets (their lengths do not leak either).
bool secrets_equal(const std::string& a, const std::string& b) noexcept;

struct HttpOptions {
    std::string host = "127.0.0.1";
    int port = 8000;                               // 0 = any free port (see bind())
    int threads = 8;                               // requests handled at once (ApiService::handle)
    std::uint64_t max_upload_bytes = 20ull << 20;  // bodies above it (de-chunked) get 413
    std::chrono::seconds read_timeout{30};         // to receive a whole request, head and body
    std::chrono::seconds write_timeout{30};        // to send a response
    std::chrono::seconds keep_alive_timeout{5};    // idle between two requests
    int max_connections = 1024;                    // open at once; further ones are closed on accept
};

// Boost.Beast's HTTP/1.1 around an ApiService: admit() on the head, the body
// only then, one deadline per request, pipelining in order (server_http.cpp).
class HttpServer {
public:
    HttpServer(ApiService& service, const HttpOptions& options);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds the listening socket; returns the port (the chosen one for port 0).
    // Throws Error{io} naming host and port.
    int bind();
    // Serves until stop(); requests in flight are answered first. Call once, after bind().
    void run();
    // Stops run() from any thread. Safe to call before run() starts (run()
    // then returns at once) and more than once.
    void stop() noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceq
