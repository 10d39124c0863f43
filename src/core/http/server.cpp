// server.cpp — ApiService: routing, authentication, the handlers, error
// mapping and metrics of the HTTP API (see server.hpp). No HTTP library here;
// the glue is server_http.cpp.
#include "faceq/http/server.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <limits>
#include <map>
#include <mutex>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/fsutil.hpp"
#include "base/sysinfo.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/models/deploy.hpp"
#include "faceq/models/registry.hpp"
#include "faceq/session/enroller.hpp"
#include "faceq/session/records.hpp"
#include "http/analyzer_pool.hpp"
#include "http/api_json.hpp"
#include "http/header_text.hpp"
#include "http/login_sessions.hpp"
#include "http/metrics.hpp"
#include "http/web_assets.hpp"

namespace faceq {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

ApiResponse json_response(int status, const json& body) {
    ApiResponse r;
    r.status = status;
    r.body = dump(body);
    return r;
}

using detail::lower;
using detail::trim;

// An HTTP-level failure: thrown inside handlers, answered by handle().
struct HttpFailure {
    int status;
    std::string kind;
    std::string message;
};

// A refusal of a request whose body is left unread: the connection must close.
ApiResponse refusal(const ApiRequestHead& head, ApiResponse r) {
    r.close = head.chunked || (head.content_length && *head.content_length > 0) || !head.transfer_encoding.empty();
    return r;
}

const FormPart* form_field(const ApiRequest& req, const std::string& name) {
    for (const auto& p : req.form)
        if (p.name == name) return &p;
    return nullptr;
}

const std::string* query_param(const ApiRequest& req, const std::string& name) {
    for (const auto& [k, v] : req.query)
        if (k == name) return &v;
    return nullptr;
}

bool is_multipart(const ApiRequestHead& req) { return lower(req.content_type).rfind("multipart/form-data", 0) == 0; }

// The uploaded image, decoded; HttpFailure for a request without one.
DecodedImage uploaded_image(const ApiRequest& req, const ImageLimits& limits, std::string& name) {
    if (!is_multipart(req))
        throw HttpFailure{415, "unsupported_media_type",
                          fmt::format("expected a multipart/form-data body with a 'file' field, not '{}'",
                                      req.content_type.empty() ? "no content type" : req.content_type)};
    const FormPart* file = form_field(req, "file");
    if (!file) throw HttpFailure{400, to_string(ErrorKind::invalid_input), "missing form field 'file' (the image)"};
    name = file->filename.empty() ? std::string("upload") : file->filename;
    if (file->content.size() > limits.max_file_bytes)
        throw Error(ErrorKind::too_large, fmt::format("cannot read image '{}': {} bytes, over the limit of {}", name,
                                                      file->content.size(), limits.max_file_bytes));
    const std::vector<std::uint8_t> bytes(file->content.begin(), file->content.end());
    return decode_image(bytes, name, limits);
}

}  // namespace

// ---------------------------------------------------------------- free functions

ApiResponse error_response(int status, const std::string& kind, const std::string& message) {
    return json_response(status, {{"success", false}, {"error", {{"kind", kind}, {"message", message}}}});
}

int http_status(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::usage:
        case ErrorKind::invalid_input:
            return 400;
        case ErrorKind::not_found:
            return 404;
        case ErrorKind::too_large:
            return 413;
        case ErrorKind::database:
        case ErrorKind::interrupted:
            return 503;
        default:
            return 500;
    }
}

bool secrets_equal(const std::string& a, const std::string& b) noexcept {
    // Hashing first makes both sides 64 characters, so neither the length nor
    // the position of the first difference shows in the time taken.
    std::string ha, hb;
    try {
        ha = sha256_hex(a.data(), a.size());
        hb = sha256_hex(b.data(), b.size());
    } catch (...) {
        return false;
    }
    if (ha.size() != hb.size()) return false;
    volatile unsigned char diff = 0;
    for (std::size_t i = 0; i < ha.size(); ++i) diff = static_cast<unsigned char>(diff | (ha[i] ^ hb[i]));
    return diff == 0;
}

namespace {

// What answering needs once the models are loaded; replaced as a whole when
// a deploy or rollback reloads the models (requests in flight keep theirs).
struct Loaded {
    std::unique_ptr<AnalysisSession> session;
    std::unique_ptr<detail::AnalyzerPool> pool;
    std::unique_ptr<Enroller> enroller;
    Gallery& gallery() const { return *session->gallery(); }
};

// The path parameters of a matched route: the "{}" segments, then "{*}"'s rest.
using RouteArgs = std::vector<std::string>;

// Splits a path into its segments: "/api/persons/x" -> {"api", "persons", "x"}.
std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> out;
    if (path.empty() || path[0] != '/') return out;
    path.remove_prefix(1);
    while (true) {
        const auto slash = path.find('/');
        out.push_back(path.substr(0, slash));
        if (slash == std::string_view::npos) break;
        path.remove_prefix(slash + 1);
    }
    return out;
}

// Whether `path` fits `pattern`, whose segments are literal, "{}" (any one
// non-empty segment) or a final "{*}" (one or more segments, kept as one
// string); the parameters go to `args`.
bool match_pattern(std::string_view pattern, std::string_view path, RouteArgs& args) {
    if (pattern == "/") return path == "/";
    const auto want = segments(pattern), got = segments(path);
    args.clear();
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (want[i] == "{*}") {
            if (i >= got.size()) return false;
            const auto offset = static_cast<std::size_t>(got[i].data() - path.data());
            const std::string_view rest = path.substr(offset);
            if (rest.empty()) return false;
            args.emplace_back(rest);
            return true;
        }
        if (i >= got.size()) return false;
        if (want[i] == "{}") {
            if (got[i].empty()) return false;
            args.emplace_back(got[i]);
        } else if (want[i] != got[i]) {
            return false;
        }
    }
    return want.size() == got.size();
}

constexpr const char* session_cookie = "faceq_session";

}  // namespace

// ---------------------------------------------------------------- ApiService

struct ApiService::Impl {
    ServiceInfo info;
    const Clock::time_point started = Clock::now();
    std::atomic<bool> ready{false};
    detail::Metrics metrics;

    // Set once by start(), read-only afterwards (ready's release/acquire orders it).
    ServiceSetup setup;
    // The models, gallery and analyzers; swapped by reload_after() under `loaded_mu`.
    mutable std::mutex loaded_mu;
    std::shared_ptr<Loaded> loaded;
    std::mutex reload_mu;  // one reload at a time

    mutable detail::LoginSessions sessions;
    // Without an API key there is no login: one CSRF token for the process
    // still keeps other sites' pages from POSTing to a server on localhost.
    const std::string process_csrf = detail::random_hex(32);

    explicit Impl(ServiceInfo i)
        : info(std::move(i)), sessions(info.session_seconds > 0 ? info.session_seconds : 43200, 1024) {}

    void log_error(const std::string& message) noexcept {
        try {
            if (info.error_log) info.error_log(message);
        } catch (...) {
        }
    }

    std::shared_ptr<Loaded> current() const {
        std::lock_guard<std::mutex> lock(loaded_mu);
        if (!loaded) throw HttpFailure{503, "unavailable", "the server is starting: models are loading"};
        return loaded;
    }

    // ------------------------------------------------------------ routes

    enum class Body { none, multipart, json };
    enum class Guard { open, key };  // open: never needs the key (the page's files, /health, login)
    using Handler = ApiResponse (Impl::*)(const ApiRequest&, const RouteArgs&);
    struct Route {
        const char* method;
        const char* pattern;
        Handler handler;
        Body body;
        Guard guard;
    };

    static const std::vector<Route>& routes() {
        static const std::vector<Route> table{
            {"GET", "/health", &Impl::health, Body::none, Guard::open},
            {"POST", "/analyze", &Impl::analyze, Body::multipart, Guard::key},
            {"POST", "/register", &Impl::enroll, Body::multipart, Guard::key},
            {"GET", "/stats", &Impl::stats, Body::none, Guard::key},
            {"GET", "/search", &Impl::search, Body::none, Guard::key},
            {"GET", "/metrics", &Impl::metrics_text, Body::none, Guard::key},
            // The page (web/, compiled in).
            {"GET", "/", &Impl::page, Body::none, Guard::open},
            {"GET", "/ui/{*}", &Impl::page_file, Body::none, Guard::open},
            // Its JSON routes.
            {"GET", "/api/session", &Impl::session_state, Body::none, Guard::open},
            {"POST", "/api/login", &Impl::login, Body::json, Guard::open},
            {"POST", "/api/logout", &Impl::logout, Body::json, Guard::key},
            {"GET", "/api/stats", &Impl::api_stats, Body::none, Guard::key},
            {"GET", "/api/runs", &Impl::api_runs, Body::none, Guard::key},
            {"GET", "/api/models", &Impl::api_models, Body::none, Guard::key},
            {"POST", "/api/models/deploy", &Impl::api_deploy, Body::json, Guard::key},
            {"POST", "/api/models/rollback", &Impl::api_rollback, Body::json, Guard::key},
            {"GET", "/api/persons", &Impl::api_persons, Body::none, Guard::key},
            {"GET", "/api/persons/{}", &Impl::api_person, Body::none, Guard::key},
            {"GET", "/api/persons/{}/faces", &Impl::api_faces, Body::none, Guard::key},
            {"POST", "/api/persons/{}/rename", &Impl::api_rename, Body::json, Guard::key},
            {"POST", "/api/persons/{}/merge", &Impl::api_merge, Body::json, Guard::key},
            {"POST", "/api/persons/{}/delete", &Impl::api_delete, Body::json, Guard::key},
            {"GET", "/api/persons/{}/thumbnail", &Impl::api_person_thumbnail, Body::none, Guard::key},
            {"GET", "/api/thumbnails/detections/{}", &Impl::api_detection_thumbnail, Body::none, Guard::key},
            {"GET", "/api/thumbnails/samples/{}", &Impl::api_sample_thumbnail, Body::none, Guard::key},
            {"POST", "/api/persons/{}/reject", &Impl::api_reject, Body::json, Guard::key},
            {"POST", "/api/persons/{}/unreject", &Impl::api_unreject, Body::json, Guard::key},
        };
        return table;
    }

    // The route a request's path and method take; with no such route, the 404
    // or 405 to answer in `refusal`.
    struct Match {
        const Route* route = nullptr;
        RouteArgs args;
        std::optional<ApiResponse> refusal;
    };
    static Match match(const ApiRequestHead& req) {
        Match m;
        std::string allowed;
        RouteArgs args;
        const Route* path_match = nullptr;
        for (const auto& r : routes()) {
            if (!match_pattern(r.pattern, req.path, args)) continue;
            if (!path_match) path_match = &r;
            // HEAD is GET without the body.
            if (req.method == r.method || (req.method == "HEAD" && std::string(r.method) == "GET")) {
                m.route = &r;
                m.args = std::move(args);
                return m;
            }
            allowed += allowed.empty() ? r.method : std::string(", ") + r.method;
        }
        if (path_match) {
            auto resp = error_response(405, "method_not_allowed",
                                       fmt::format("{} does not accept {}; use {}", req.path, req.method, allowed));
            resp.headers.emplace_back("Allow", allowed);
            m.route = path_match;  // for the key check: a 405 is no answer to give an unknown caller
            m.refusal = std::move(resp);
            return m;
        }
        m.refusal = error_response(404, "route_not_found",
                                   fmt::format("no route {} {}; routes: GET /health, POST /analyze, POST /register, "
                                               "GET /stats, GET /search?name=, GET /metrics, GET /, /api/... "
                                               "(docs/api.md)",
                                               req.method, req.path));
        return m;
    }

    // ------------------------------------------------------------ who is asking

    // The key a request sends (X-API-Key, else Authorization: Bearer), "" when none.
    static std::string given_key(const ApiRequestHead& req) {
        std::string given = req.api_key;
        if (given.empty()) {
            const std::string auth = trim(req.authorization);
            if (auth.size() > 7 && lower(auth.substr(0, 7)) == "bearer ") given = trim(auth.substr(7));
        }
        return given;
    }

    struct Caller {
        bool by_key = false;                                    // sent the right key (no CSRF needed)
        std::optional<detail::LoginSessions::Session> session;  // a live login session (its cookie)
        bool key_sent = false;                                  // sent a key, right or wrong
        bool cookie_sent = false;
    };

    Caller caller(const ApiRequestHead& req) const {
        Caller c;
        const std::string key = given_key(req);
        c.key_sent = !key.empty();
        if (c.key_sent) {
            // A key, when sent, is what is judged (a wrong one is not saved by a cookie).
            c.by_key = info.api_key && secrets_equal(key, *info.api_key);
            return c;
        }
        const std::string id = detail::cookie_value(req.cookie, session_cookie);
        c.cookie_sent = !id.empty();
        if (c.cookie_sent && info.api_key) c.session = sessions.find(id, unix_now());
        return c;
    }

    // Whether the request may see what the key guards (true when no key is set).
    bool authorized(const ApiRequestHead& req) const {
        if (!info.api_key) return true;
        const Caller c = caller(req);
        return c.by_key || c.session.has_value();
    }

    ApiResponse unauthorized(const Caller& c) const {
        auto r = error_response(401, "unauthorized",
                                c.key_sent      ? "wrong API key"
                                : c.cookie_sent ? "the login session has expired or is unknown: log in again "
                                                  "(POST /api/login)"
                                                : "this server needs an API key: send 'Authorization: Bearer KEY' or "
                                                  "'X-API-Key: KEY', or log in (POST /api/login)");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"faceq\"");
        return r;
    }

    // The CSRF token a request must send in X-CSRF-Token, nullopt when it needs
    // none: every POST under /api/ but login, and /analyze and /register when
    // authenticated by a session cookie; never with the right API key.
    std::optional<std::string> csrf_needed(const ApiRequestHead& req, const Route& route, const Caller& c) const {
        if (req.method != "POST" || c.by_key) return std::nullopt;
        const bool api = req.path.rfind("/api/", 0) == 0 && req.path != "/api/login";
        if (!info.api_key) return api ? std::optional<std::string>(process_csrf) : std::nullopt;
        if (!c.session) return std::nullopt;  // refused before (401) unless the route is open
        if (api || route.body == Body::multipart) return c.session->csrf_token;
        return std::nullopt;
    }

    // A Host header that names the loopback interface (any port), or none.
    static bool loopback_host(const std::string& host_header) {
        std::string h = lower(trim(host_header));
        if (h.empty()) return true;
        if (h.front() == '[') {
            const auto close = h.find(']');
            if (close == std::string::npos) return false;
            h = h.substr(1, close - 1);
        } else if (const auto colon = h.find(':'); colon != std::string::npos) {
            h = h.substr(0, colon);
        }
        if (h == "localhost" || h == "::1") return true;
        // 127.0.0.0/8 as an address literal only: "127.x.example.com" is a name.
        in_addr a{};
        return inet_pton(AF_INET, h.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
    }

    std::optional<ApiResponse> admit(const ApiRequestHead& req) const {
        if (!info.api_key && !info.exposed && !loopback_host(req.host))
            return refusal(req, error_response(403, "forbidden",
                                               "this server has no API key and listens on the loopback interface "
                                               "only: it answers requests for localhost or 127.0.0.1, not for "
                                               "another host name (set an API key to serve other names)"));
        Match m = match(req);
        const bool open = m.route && m.route->guard == Guard::open;
        const Caller c = caller(req);
        // Unknown routes answer 401 to a caller without the key: it learns nothing about them.
        if (info.api_key && !open && !c.by_key && !c.session) return refusal(req, unauthorized(c));
        if (m.refusal) return refusal(req, *m.refusal);
        const Route& route = *m.route;
        if (const auto token = csrf_needed(req, route, c); token && !secrets_equal(req.csrf_token, *token))
            return refusal(req, error_response(403, "csrf",
                                               req.csrf_token.empty()
                                                   ? "missing X-CSRF-Token header (GET /api/session gives the token)"
                                                   : "wrong X-CSRF-Token (GET /api/session gives the token)"));
        if (!req.transfer_encoding.empty() && lower(trim(req.transfer_encoding)) != "chunked")
            return refusal(req, error_response(501, "invalid_input",
                                               fmt::format("Transfer-Encoding '{}' is not supported; send the body "
                                                           "with a Content-Length or chunked",
                                                           req.transfer_encoding.substr(0, 60))));
        if (!req.content_encoding.empty() && lower(trim(req.content_encoding)) != "identity")
            return refusal(req, error_response(415, "unsupported_media_type",
                                               "compressed request bodies (Content-Encoding) are not accepted"));
        const std::uint64_t limit = body_limit(route);
        if (limit > 0 && req.content_length && *req.content_length > limit)
            return refusal(req,
                           error_response(413, to_string(ErrorKind::too_large),
                                          route.body == Body::json
                                              ? fmt::format("request body of {} bytes, over the limit of {} for JSON",
                                                            *req.content_length, limit)
                                              : fmt::format("request body of {} bytes, over the server's limit of {} "
                                                            "(--max-upload-mb)",
                                                            *req.content_length, limit)));
        const bool has_body = req.chunked || (req.content_length && *req.content_length > 0);
        if (has_body && req.method == "POST" && route.body == Body::multipart && !is_multipart(req))
            return refusal(
                req, error_response(
                         415, "unsupported_media_type",
                         fmt::format("expected a multipart/form-data body, not '{}'",
                                     req.content_type.empty() ? "no content type" : req.content_type.substr(0, 100))));
        if (has_body && req.method == "POST" && route.body == Body::json &&
            lower(trim(req.content_type)).rfind("application/json", 0) != 0)
            return refusal(
                req, error_response(
                         415, "unsupported_media_type",
                         fmt::format("expected an application/json body, not '{}'",
                                     req.content_type.empty() ? "no content type" : req.content_type.substr(0, 100))));
        if (has_body && req.method == "POST" && route.body == Body::none)
            return refusal(req, error_response(415, "unsupported_media_type", "this route takes no request body"));
        return std::nullopt;
    }

    std::uint64_t body_limit(const Route& route) const {
        if (route.body == Body::json)
            return info.max_body_bytes > 0 ? std::min(info.max_body_bytes, detail::max_json_body_bytes)
                                           : detail::max_json_body_bytes;
        return info.max_body_bytes;
    }

    ApiResponse route(const ApiRequest& req) {
        Match m = match(req);
        if (m.refusal) return *m.refusal;
        return (this->*(m.route->handler))(req, m.args);
    }

    ApiResponse health(const ApiRequest& req, const RouteArgs&) {
        const bool is_ready = ready.load(std::memory_order_acquire);
        if (!authorized(req)) {
            // Without the key: the state and nothing else (no paths, versions or counts).
            if (!is_ready) return json_response(503, {{"status", "starting"}});
            const auto l = current();
            bool reachable = true;
            try {
                (void)l->gallery().usable(l->session->identification().context.embedder);
            } catch (const std::exception& e) {
                reachable = false;
                log_error(fmt::format("/health: the gallery database is unavailable: {}", e.what()));
            }
            return json_response(reachable ? 200 : 503, {{"status", reachable ? "ok" : "unavailable"}});
        }
        json j;
        j["version"] = info.version;
        j["uptime_seconds"] = std::round(std::chrono::duration<double>(Clock::now() - started).count() * 10) / 10;
        if (!ready.load(std::memory_order_acquire)) {
            j["status"] = "starting";
            j["ready"] = false;
            j["models"] = nullptr;
            j["database"] = {{"reachable", nullptr}};
            return json_response(503, j);
        }
        const auto l = current();
        j["models"] = l->session->models_json();
        json db;  // no path: /stats (keyed) shows where the gallery is
        bool reachable = true;
        try {
            const auto [persons, samples] = l->gallery().usable(l->session->identification().context.embedder);
            db["reachable"] = true;
            db["persons"] = persons;
            db["samples"] = samples;
        } catch (const std::exception& e) {
            reachable = false;
            db["reachable"] = false;
            log_error(fmt::format("/health: the gallery database is unavailable: {}", e.what()));
        }
        j["database"] = std::move(db);
        j["analyzers"] = {
            {"capacity", l->pool->capacity()}, {"created", l->pool->created()}, {"busy", l->pool->busy()}};
        j["ready"] = reachable;
        j["status"] = reachable ? "ok" : "degraded";
        return json_response(reachable ? 200 : 503, j);
    }

    ApiResponse analyze(const ApiRequest& req, const RouteArgs&) {
        const auto l = current();
        const auto start = Clock::now();
        std::string name;
        auto image = uploaded_image(req, setup.limits, name);
        ImageAnalysis analysis;
        {
            auto analyzer = l->pool->acquire();
            analysis = l->session->analyze(*analyzer, name, std::move(image), std::nullopt);
        }
        const std::size_t faces = analysis.result.faces.size();
        metrics.images_analyzed.fetch_add(1, std::memory_order_relaxed);
        metrics.faces_analyzed.fetch_add(faces, std::memory_order_relaxed);
        json record = l->session->record(analysis, false);
        l->session->identify(analysis, record);
        record["elapsed_ms"] =
            std::round(std::chrono::duration<double, std::milli>(Clock::now() - start).count() * 100) / 100;
        record["success"] = true;
        record["message"] =
            faces == 0 ? std::string("No face detected") : fmt::format("Successfully analyzed {} face(s)", faces);
        return json_response(200, record);
    }

    ApiResponse enroll(const ApiRequest& req, const RouteArgs&) {
        const auto l = current();
        if (!is_multipart(req))
            throw HttpFailure{415, "unsupported_media_type",
                              "expected a multipart/form-data body with 'file' and 'person_name' fields"};
        const FormPart* name_field = form_field(req, "person_name");
        if (!name_field)
            throw HttpFailure{400, to_string(ErrorKind::invalid_input), "missing form field 'person_name'"};
        const std::string person_name = check_person_name(std::string(name_field->content));
        const FormPart* pick = form_field(req, "pick");
        const bool largest = pick && pick->content == "largest";
        if (pick && !largest && pick->content != "one")
            throw HttpFailure{400, to_string(ErrorKind::invalid_input), "form field 'pick' must be 'one' or 'largest'"};

        std::string file_name;
        auto image = uploaded_image(req, setup.limits, file_name);
        if (const auto owner = l->enroller->already_enrolled(image.sha256, person_name)) {
            if (!owner->same_person)
                throw HttpFailure{
                    409, "conflict",
                    fmt::format("this photo is already enrolled as '{}'", owner->owner.name.value_or("?"))};
            const std::string& shown = *owner->owner.name;
            return json_response(200, {{"success", true},
                                       {"person_id", owner->owner.public_id},
                                       {"person_name", shown},
                                       {"created", false},
                                       {"added", 0},
                                       {"message", fmt::format("'{}' already has this photo", shown)}});
        }
        ImageAnalysis analysis;
        {
            auto analyzer = l->pool->acquire();
            analysis = l->session->analyze(*analyzer, file_name, std::move(image), std::nullopt);
        }
        metrics.images_analyzed.fetch_add(1, std::memory_order_relaxed);
        const Face& face = l->enroller->choose_face(analysis.result, file_name, largest);
        const FaceSample sample = l->enroller->sample(face, file_name, analysis.image);
        const auto enrolled = l->enroller->enroll(person_name, {sample});
        std::size_t added = 0;
        std::string skipped;
        for (const auto& s : enrolled.samples) {
            if (s.added)
                ++added;
            else
                skipped = s.reason;
        }
        if (!enrolled.person)
            throw HttpFailure{409, "conflict", skipped.empty() ? "the photo was not enrolled" : skipped};
        metrics.persons_registered.fetch_add(added, std::memory_order_relaxed);
        const auto& person = *enrolled.person;
        const std::string shown = person.name.value_or(person_name);
        json j{{"success", true},      {"person_id", person.public_id},
               {"person_name", shown}, {"created", enrolled.created},
               {"added", added},       {"face", face_to_json(face, false)}};
        j["face"].erase("landmarks");
        if (added == 0) {
            j["skipped"] = skipped;
            j["message"] = fmt::format("'{}' not changed: {}", shown, skipped);
        } else {
            j["message"] = fmt::format("Registered a face of '{}'", shown);
        }
        return json_response(200, j);
    }

    ApiResponse stats(const ApiRequest&, const RouteArgs&) {
        const auto l = current();
        const auto now = unix_now();
        const auto stats = l->gallery().stats(now);
        auto j = stats_json(stats, stats.database_location, l->session->identification().context.embedder);
        j["success"] = true;
        return json_response(200, j);
    }

    ApiResponse search(const ApiRequest& req, const RouteArgs&) {
        const auto l = current();
        const std::string* name = query_param(req, "name");
        if (!name)
            throw HttpFailure{400, to_string(ErrorKind::invalid_input),
                              "missing query parameter 'name' (use name= to list everyone)"};
        json persons = json::array();
        for (const auto& p : l->gallery().find_persons(*name)) persons.push_back(person_json(p));
        const auto n = persons.size();
        return json_response(200, {{"success", true},
                                   {"query", *name},
                                   {"count", n},
                                   {"persons", std::move(persons)},
                                   {"message", fmt::format("{} person(s) match '{}'", n, *name)}});
    }

    ApiResponse metrics_text(const ApiRequest&, const RouteArgs&) {
        std::string out;
        metrics.write(out);
        const bool is_ready = ready.load(std::memory_order_acquire);
        out += fmt::format(
            "# HELP faceq_ready 1 once the models are loaded.\n# TYPE faceq_ready gauge\nfaceq_ready {}\n"
            "# HELP faceq_uptime_seconds Seconds since the server started.\n# TYPE faceq_uptime_seconds gauge\n"
            "faceq_uptime_seconds {:.1f}\n"
            "# HELP faceq_process_resident_memory_bytes Resident set size.\n"
            "# TYPE faceq_process_resident_memory_bytes gauge\nfaceq_process_resident_memory_bytes {}\n",
            is_ready ? 1 : 0, std::chrono::duration<double>(Clock::now() - started).count(), current_rss_bytes());
        if (is_ready) {
            const auto l = current();
            out += fmt::format(
                "# HELP faceq_analyzers Analyzer copies (network sets): capacity, created, busy.\n"
                "# TYPE faceq_analyzers gauge\n"
                "faceq_analyzers{{state=\"capacity\"}} {}\nfaceq_analyzers{{state=\"created\"}} {}\n"
                "faceq_analyzers{{state=\"busy\"}} {}\n",
                l->pool->capacity(), l->pool->created(), l->pool->busy());
            try {
                const auto s = l->gallery().stats(unix_now());
                out += fmt::format(
                    "# HELP faceq_gallery_persons Persons in the gallery.\n# TYPE faceq_gallery_persons gauge\n"
                    "faceq_gallery_persons{{kind=\"known\"}} {}\nfaceq_gallery_persons{{kind=\"unknown\"}} {}\n"
                    "# HELP faceq_gallery_samples Enrolled face samples.\n# TYPE faceq_gallery_samples gauge\n"
                    "faceq_gallery_samples {}\n"
                    "# HELP faceq_gallery_images Images recorded.\n# TYPE faceq_gallery_images gauge\n"
                    "faceq_gallery_images {}\n"
                    "# HELP faceq_gallery_detections Detections recorded.\n# TYPE faceq_gallery_detections gauge\n"
                    "faceq_gallery_detections {}\n"
                    "# HELP faceq_gallery_database_bytes Database file and WAL.\n"
                    "# TYPE faceq_gallery_database_bytes gauge\nfaceq_gallery_database_bytes {}\n",
                    s.persons_known, s.persons_unknown, s.samples, s.images, s.detections, s.database_bytes);
            } catch (const std::exception& e) {
                log_error(fmt::format("/metrics: cannot read the gallery: {}", e.what()));
            }
        }
        ApiResponse r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = std::move(out);
        return r;
    }

    // ------------------------------------------------------------ the page

    ApiResponse asset(const ApiRequest& req, const detail::WebAsset& a) {
        ApiResponse r;
        r.content_type = std::string(a.content_type);
        r.headers.emplace_back("ETag", std::string(a.etag));
        // Revalidated on every load (a 304 costs one round trip), so a new
        // binary's page is never mixed with a cached old module.
        r.headers.emplace_back("Cache-Control", "no-cache");
        if (a.content_type.rfind("text/html", 0) == 0) {
            r.headers.emplace_back("Content-Security-Policy",
                                   "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                   "script-src 'self'; object-src 'none'; frame-ancestors 'none'");
            r.headers.emplace_back("Referrer-Policy", "no-referrer");
        }
        if (!req.if_none_match.empty() && detail::etag_matches(req.if_none_match, a.etag)) {
            r.status = 304;
            return r;
        }
        r.body = std::string(a.bytes);
        return r;
    }

    ApiResponse page(const ApiRequest& req, const RouteArgs&) {
        const auto* a = detail::find_web_asset("index.html");
        if (!a) throw HttpFailure{404, "not_found", "this faceq was built without its web page"};
        return asset(req, *a);
    }

    // Looked up in the table compiled into the binary, never on disk: no path
    // a client sends can name another file.
    ApiResponse page_file(const ApiRequest& req, const RouteArgs& args) {
        const auto* a = detail::find_web_asset(args.at(0));
        if (!a) throw HttpFailure{404, "not_found", "no such file in the page"};
        return asset(req, *a);
    }

    // ------------------------------------------------------------ sessions

    static std::string cookie_header(const std::string& value, std::int64_t max_age) {
        // No `Secure`: faceq serves plain HTTP (a TLS proxy in front may add it).
        return fmt::format("{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", session_cookie, value, max_age);
    }

    ApiResponse session_state(const ApiRequest& req, const RouteArgs&) {
        if (!info.api_key)
            return json_response(
                200,
                {{"auth_required", false}, {"logged_in", true}, {"csrf_token", process_csrf}, {"expires_at", nullptr}});
        const Caller c = caller(req);
        json j{{"auth_required", true}, {"logged_in", c.by_key || c.session.has_value()}};
        j["csrf_token"] = c.session ? json(c.session->csrf_token) : json(nullptr);
        j["expires_at"] = c.session ? json(c.session->expires_at) : json(nullptr);
        return json_response(200, j);
    }

    ApiResponse login(const ApiRequest& req, const RouteArgs&) {
        const json body = detail::json_body(req.body);
        const std::string key = detail::string_field(body, "key");
        if (!info.api_key) return json_response(200, {{"csrf_token", process_csrf}, {"expires_at", nullptr}});
        const auto now = unix_now();
        if (const auto wait = sessions.locked_for(now); wait > 0) {
            auto r =
                error_response(429, "too_many_requests", fmt::format("too many wrong keys: try again in {} s", wait));
            r.headers.emplace_back("Retry-After", std::to_string(wait));
            return r;
        }
        if (!secrets_equal(key, *info.api_key)) {
            sessions.failed(now);
            return error_response(401, "unauthorized", "wrong API key");
        }
        sessions.succeeded();
        const auto s = sessions.create(now);
        auto r = json_response(200, {{"csrf_token", s.csrf_token}, {"expires_at", s.expires_at}});
        r.headers.emplace_back("Set-Cookie", cookie_header(s.id, sessions.lifetime()));
        return r;
    }

    ApiResponse logout(const ApiRequest& req, const RouteArgs&) {
        sessions.remove(detail::cookie_value(req.cookie, session_cookie));
        ApiResponse r;
        r.status = 204;
        r.headers.emplace_back("Set-Cookie", cookie_header("", 0));
        return r;
    }

    // ------------------------------------------------------------ gallery

    static std::string person_param(const RouteArgs& args) { return args.at(0); }

    // P; with the stranger's "looks like" when `with_suggestion`. The
    // thumbnail URL is given to every person with a face (samples or
    // detections): checking each one's stored JPEG would read a blob per row
    // of a page, and a face recorded before thumbnails existed answers 404
    // there until `faceq gallery thumbnails` makes it.
    json person_entry(const Loaded& l, const PersonInfo& p, bool with_suggestion) const {
        json j = detail::api_person_json(p, p.samples + p.detections > 0);
        if (with_suggestion && p.person.kind == "unknown") {
            const auto s = l.gallery().suggestion(p.person.public_id, l.session->identification().context);
            j["suggestion"] = s ? detail::api_suggestion_json(*s) : json(nullptr);
        }
        return j;
    }

    ApiResponse api_persons(const ApiRequest& req, const RouteArgs&) {
        const auto l = current();
        PersonQuery q;
        if (const auto* kind = query_param(req, "kind")) q.kind = *kind;
        if (const auto* text = query_param(req, "q")) q.text = *text;
        if (const auto* order = query_param(req, "order")) q.order = *order;
        if (q.kind != "known" && q.kind != "unknown" && q.kind != "all")
            throw Error(ErrorKind::invalid_input, "query parameter 'kind' must be known, unknown or all");
        if (q.order != "name" && q.order != "detections" && q.order != "last_seen")
            throw Error(ErrorKind::invalid_input, "query parameter 'order' must be name, detections or last_seen");
        q.offset = detail::integer_param(query_param(req, "offset"), "offset", 0, 0, std::int64_t{1} << 40);
        q.limit = detail::integer_param(query_param(req, "limit"), "limit", 50, 1, 500);
        const auto page = l->gallery().list_persons(q);
        json persons = json::array();
        for (const auto& p : page.persons) persons.push_back(person_entry(*l, p, q.kind == "unknown"));
        return json_response(
            200, {{"total", page.total}, {"offset", q.offset}, {"limit", q.limit}, {"persons", std::move(persons)}});
    }

    ApiResponse api_stats(const ApiRequest&, const RouteArgs&) {
        const auto l = current();
        const auto stats = l->gallery().stats(unix_now());
        auto j = stats_json(stats, stats.database_location, l->session->identification().context.embedder);
        j["success"] = true;
        j["models"] = l->session->models_json();
        return json_response(200, j);
    }

    ApiResponse api_person(const ApiRequest&, const RouteArgs& args) {
        const auto l = current();
        const std::string id = person_param(args);
        const auto person = l->gallery().person(id);
        if (!person) throw HttpFailure{404, to_string(ErrorKind::not_found), fmt::format("no person '{}'", id)};
        json j = person_entry(*l, *person, true);
        json samples = json::array();
        for (const auto& sample : l->gallery().person_samples(person->person.public_id))
            samples.push_back(detail::api_sample_json(sample));
        j["samples_list"] = std::move(samples);
        return json_response(200, j);
    }

    ApiResponse api_faces(const ApiRequest& req, const RouteArgs& args) {
        const auto l = current();
        const auto offset = detail::integer_param(query_param(req, "offset"), "offset", 0, 0, std::int64_t{1} << 40);
        const auto limit = detail::integer_param(query_param(req, "limit"), "limit", 50, 1, 500);
        const auto page = l->gallery().person_faces(person_param(args), offset, limit);
        json faces = json::array();
        for (const auto& f : page.faces) faces.push_back(detail::api_face_json(f));
        return json_response(
            200, {{"total", page.total}, {"offset", offset}, {"limit", limit}, {"faces", std::move(faces)}});
    }

    // A stored face thumbnail (Gallery::*_thumbnail), 404 when there is none.
    static ApiResponse jpeg(std::optional<std::string> bytes, const std::string& what) {
        if (!bytes) throw HttpFailure{404, to_string(ErrorKind::not_found), fmt::format("no thumbnail of {}", what)};
        ApiResponse r;
        r.content_type = "image/jpeg";
        // Short: a person's face changes with its samples, and a deleted row's id may come back.
        r.headers.emplace_back("Cache-Control", "private, max-age=60");
        r.body = std::move(*bytes);
        return r;
    }

    static std::int64_t row_id(const RouteArgs& args) {
        return detail::integer_param(&args.at(0), "id", 0, 1, std::numeric_limits<std::int64_t>::max());
    }

    ApiResponse api_person_thumbnail(const ApiRequest&, const RouteArgs& args) {
        const auto l = current();
        return jpeg(l->gallery().person_thumbnail(person_param(args)), "person '" + person_param(args) + "'");
    }

    ApiResponse api_detection_thumbnail(const ApiRequest&, const RouteArgs& args) {
        const auto l = current();
        const auto id = row_id(args);
        return jpeg(l->gallery().detection_thumbnail(id), fmt::format("detection {}", id));
    }

    ApiResponse api_sample_thumbnail(const ApiRequest&, const RouteArgs& args) {
        const auto l = current();
        const auto id = row_id(args);
        return jpeg(l->gallery().sample_thumbnail(id), fmt::format("sample {}", id));
    }

    ApiResponse api_reject(const ApiRequest& req, const RouteArgs& args) {
        const auto l = current();
        const json body = detail::json_body(req.body);
        const auto person = l->gallery().reject(person_param(args), detail::integer_field(body, "detection_id"));
        return json_response(200, person_entry(*l, person, true));
    }

    ApiResponse api_unreject(const ApiRequest& req, const RouteArgs& args) {
        const auto l = current();
        const json body = detail::json_body(req.body);
        const auto person = l->gallery().unreject(person_param(args), detail::integer_field(body, "detection_id"));
        return json_response(200, person_entry(*l, person, true));
    }

    ApiResponse api_rename(const ApiRequest& req, const RouteArgs& args) {
        const auto l = current();
        const json body = detail::json_body(req.body);
        const std::string name = check_person_name(detail::string_field(body, "name"));
        const auto person = l->gallery().rename(person_param(args), name);
        return json_response(200, person_entry(*l, person, true));
    }

    ApiResponse api_merge(const ApiRequest& req, const RouteArgs& args) {
        const auto l = current();
        const json body = detail::json_body(req.body);
        const auto into = l->gallery().merge(person_param(args), detail::string_field(body, "into"));
        return json_response(200, person_entry(*l, into, true));
    }

    ApiResponse api_delete(const ApiRequest& req, const RouteArgs& args) {
        const auto l = current();
        (void)detail::json_body(req.body);
        (void)l->gallery().remove(person_param(args));
        ApiResponse r;
        r.status = 204;
        return r;
    }

    // ------------------------------------------------------------ registry

    ApiResponse api_runs(const ApiRequest&, const RouteArgs&) {
        require_ready();
        json runs = json::array();
        for (const auto& r : Registry(setup.home).runs()) runs.push_back(detail::api_run_json(r));
        return json_response(200, {{"runs", std::move(runs)}});
    }

    ApiResponse api_models(const ApiRequest&, const RouteArgs&) {
        require_ready();
        const Registry registry(setup.home);
        json models = json::array();
        for (const auto& name : registry.model_names()) {
            const auto aliases = registry.aliases(name);
            json versions = json::array();
            for (const auto& v : registry.versions(name)) versions.push_back(detail::api_version_json(v));
            const auto production = aliases.find("production");
            models.push_back({{"name", name},
                              {"aliases", aliases},
                              {"production", production == aliases.end() ? json(nullptr) : json(production->second)},
                              {"versions", std::move(versions)}});
        }
        return json_response(200, {{"models", std::move(models)}});
    }

    // Deploy and rollback move what every analysis uses: refused on a server
    // open to the network without a key (anyone could swap its models).
    void check_may_deploy() const {
        if (!info.api_key && info.exposed)
            throw HttpFailure{403, "forbidden",
                              "this server has no API key and listens beyond localhost: deploy with the CLI, or "
                              "give the server a key"};
    }

    // After a deploy or rollback: the session again with the models now in
    // production, swapped in once loaded (requests in flight finish on the old
    // one). The answer's "serving" says what analyses now run with.
    json reload_after(const AliasMove& move, const std::string& why) {
        json j{{"name", move.name},
               {"production", move.production},
               {"previous", move.previous ? json(*move.previous) : json(nullptr)},
               {"production_before", move.production_before ? json(*move.production_before) : json(nullptr)},
               {"changed", move.changed}};
        if (!why.empty()) j["why"] = why;
        bool reloaded = false;
        if (move.changed && setup.reload) {
            std::lock_guard<std::mutex> one(reload_mu);
            try {
                auto fresh = make_loaded(setup.reload());
                std::lock_guard<std::mutex> lock(loaded_mu);
                loaded = std::move(fresh);
                reloaded = true;
            } catch (const std::exception& e) {
                log_error(fmt::format("reloading the models after moving '{}' to version {}: {}", move.name,
                                      move.production, e.what()));
                j["reload_error"] = "the models could not be reloaded (see the server log): restart the server";
            }
        }
        j["reloaded"] = reloaded;
        j["restart_required"] = move.changed && !reloaded;
        j["serving"] = current()->session->models_json();
        return j;
    }

    // The "version" of a deploy or rollback body: a version number, or 0 when
    // the field is absent (the CLI's rule picks one).
    static int version_field(const json& body) {
        const auto v = detail::optional_integer_field(body, "version");
        if (!v) return 0;
        if (*v < 1 || *v > std::numeric_limits<int>::max())
            throw Error(ErrorKind::invalid_input, "the field 'version' must be a version number (1 or more)");
        return static_cast<int>(*v);
    }

    ApiResponse api_deploy(const ApiRequest& req, const RouteArgs&) {
        check_may_deploy();
        require_ready();
        const json body = detail::json_body(req.body);
        DeployRequest request;
        request.name = detail::string_field(body, "name");
        request.version = version_field(body);
        Registry registry(setup.home);
        const auto d =
            deploy_model(registry, request, find_installed_embedder(setup.home.models_dir(), setup.manifest_path),
                         [this](const std::string& line) { log_error(line); });
        return json_response(200, reload_after(d.move, d.why));
    }

    ApiResponse api_rollback(const ApiRequest& req, const RouteArgs&) {
        check_may_deploy();
        require_ready();
        const json body = detail::json_body(req.body);
        RollbackRequest request;
        request.name = detail::string_field(body, "name");
        request.version = version_field(body);
        Registry registry(setup.home);
        const auto move =
            rollback_model(registry, request, find_installed_embedder(setup.home.models_dir(), setup.manifest_path),
                           [this](const std::string& line) { log_error(line); });
        return json_response(200, reload_after(move, {}));
    }

    void require_ready() const {
        if (!ready.load(std::memory_order_acquire))
            throw HttpFailure{503, "unavailable", "the server is starting: models are loading"};
    }

    std::shared_ptr<Loaded> make_loaded(std::unique_ptr<AnalysisSession> session) const {
        if (!session || !session->gallery()) throw Error(ErrorKind::internal, "ApiService: no session with a gallery");
        auto l = std::make_shared<Loaded>();
        l->pool = std::make_unique<detail::AnalyzerPool>(std::make_unique<Analyzer>(session->prototype()), setup.jobs);
        l->enroller = std::make_unique<Enroller>(*session->gallery(), session->identification().context.embedder,
                                                 EnrollerOptions{"send pick=largest"});
        l->session = std::move(session);
        return l;
    }
};

ApiService::ApiService(ServiceInfo info) : impl_(std::make_unique<Impl>(std::move(info))) {}
ApiService::~ApiService() = default;

void ApiService::start(ServiceSetup setup) {
    auto& m = *impl_;
    auto session = std::move(setup.session);
    m.setup = std::move(setup);
    auto l = m.make_loaded(std::move(session));
    {
        std::lock_guard<std::mutex> lock(m.loaded_mu);
        m.loaded = std::move(l);
    }
    m.ready.store(true, std::memory_order_release);
}

bool ApiService::ready() const noexcept { return impl_->ready.load(std::memory_order_acquire); }

std::uint64_t ApiService::body_limit(const ApiRequestHead& head) const noexcept {
    const auto m = Impl::match(head);
    return m.route ? impl_->body_limit(*m.route) : impl_->info.max_body_bytes;
}

ApiResponse ApiService::handle(const ApiRequest& request) noexcept {
    try {
        try {
            if (auto refused = impl_->admit(request)) return *refused;
            return impl_->route(request);
        } catch (const HttpFailure& f) {
            return error_response(f.status, f.kind, f.message);
        } catch (const Error& e) {
            const int status = http_status(e.kind());
            if (status < 500) return error_response(status, to_string(e.kind()), e.what());
            // The message may name files and quote SQL: it goes to the log, not to the client.
            impl_->log_error(fmt::format("{} {}: {}", request.method, request.path, e.what()));
            if (e.kind() == ErrorKind::database)
                return error_response(503, "unavailable", "the gallery database is unavailable (see the server log)");
            if (status == 503) return error_response(503, "unavailable", "interrupted; try again");
            return error_response(status, to_string(e.kind()), "internal error (see the server log)");
        } catch (const std::bad_alloc&) {
            impl_->log_error(fmt::format("{} {}: out of memory", request.method, request.path));
            return error_response(503, "unavailable", "out of memory; try a smaller image");
        } catch (const std::exception& e) {
            return internal_error(fmt::format("{} {}: {}", request.method, request.path, e.what()));
        } catch (...) {
            return internal_error(fmt::format("{} {}: unknown exception", request.method, request.path));
        }
    } catch (...) {
        // Building the error response itself failed (out of memory).
        ApiResponse r;
        r.status = 500;
        r.body = R"({"success":false,"error":{"kind":"internal","message":"internal error"}})";
        return r;
    }
}

std::optional<ApiResponse> ApiService::admit(const ApiRequestHead& head) const noexcept {
    try {
        return impl_->admit(head);
    } catch (...) {
        ApiResponse r;
        r.status = 500;
        r.body = R"({"success":false,"error":{"kind":"internal","message":"internal error"}})";
        r.close = true;
        return r;
    }
}

ApiResponse ApiService::http_error(int status) const noexcept {
    try {
        switch (status) {
            case 400:
                return error_response(400, "invalid_input", "malformed HTTP request");
            case 404:
                return error_response(404, "route_not_found", "no such route");
            case 408:
                return error_response(408, "timeout", "the request took too long to arrive");
            case 413:
                return error_response(413, to_string(ErrorKind::too_large),
                                      "request body over the server's --max-upload-mb limit");
            case 414:
                return error_response(414, to_string(ErrorKind::too_large), "request URI too long");
            case 431:
                return error_response(431, "invalid_input", "request header fields too large");
            case 501:
                return error_response(501, "invalid_input", "not implemented");
            case 505:
                return error_response(505, "invalid_input", "HTTP version not supported");
            default:
                return error_response(status, status >= 500 ? "internal" : "invalid_input",
                                      fmt::format("HTTP error {}", status));
        }
    } catch (...) {
        ApiResponse r;
        r.status = status;
        r.body = R"({"success":false,"error":{"kind":"internal","message":"error"}})";
        return r;
    }
}

ApiResponse ApiService::internal_error(const std::string& what) noexcept {
    impl_->log_error(fmt::format("bug: {}", what));
    return error_response(500, to_string(ErrorKind::internal), "internal error (see the server log)");
}

void ApiService::finish_request(const std::string& method, const std::string& path, int status,
                                double seconds) noexcept {
    try {
        impl_->metrics.request(method, path, status, seconds);
        if (impl_->info.access_log) {
            const std::string ms = seconds < 0 ? std::string("-") : fmt::format("{:.1f}", seconds * 1000.0);
            // The path may be anything a client sent: printable ASCII only in the log.
            std::string shown;
            for (unsigned char c : path.substr(0, 200)) shown += (c >= 0x21 && c < 0x7f) ? static_cast<char>(c) : '?';
            impl_->info.access_log(fmt::format("{} {} {} {}ms", detail::method_label(method), shown, status, ms));
        }
    } catch (...) {
    }
}

}  // namespace faceq
