// server.cpp — ApiService: routing, authentication, the handlers, error
// mapping and metrics of the HTTP API (see server.hpp). No HTTP library here;
// the glue is server_http.cpp.
#include "faceq/http/server.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <tuple>

#include "base/fsutil.hpp"
#include "base/sysinfo.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/session/enroller.hpp"
#include "faceq/session/records.hpp"
#include "http/analyzer_pool.hpp"
#include "http/header_text.hpp"
#include "http/metrics.hpp"

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

// The routes: method and path.
struct RouteName {
    const char* method;
    const char* path;
};
constexpr RouteName route_names[] = {{"GET", "/health"}, {"POST", "/analyze"}, {"POST", "/register"},
                                     {"GET", "/stats"},  {"GET", "/search"},   {"GET", "/metrics"}};

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

// ---------------------------------------------------------------- ApiService

struct ApiService::Impl {
    ServiceInfo info;
    const Clock::time_point started = Clock::now();
    std::atomic<bool> ready{false};
    detail::Metrics metrics;

    // Set once by start(), read-only afterwards (ready's release/acquire orders it).
    ServiceSetup setup;
    std::unique_ptr<detail::AnalyzerPool> pool;
    std::unique_ptr<Enroller> enroller;

    explicit Impl(ServiceInfo i) : info(std::move(i)) {}

    void log_error(const std::string& message) noexcept {
        try {
            if (info.error_log) info.error_log(message);
        } catch (...) {
        }
    }

    // Whether the request carries the server's key (true when none is set).
    bool authorized(const ApiRequestHead& req) const {
        if (!info.api_key) return true;
        std::string given = req.api_key;
        if (given.empty()) {
            const std::string auth = trim(req.authorization);
            if (auth.size() > 7 && lower(auth.substr(0, 7)) == "bearer ") given = trim(auth.substr(7));
        }
        return !given.empty() && secrets_equal(given, *info.api_key);
    }

    std::optional<ApiResponse> check_auth(const ApiRequestHead& req) const {
        if (!info.api_key || req.path == "/health") return std::nullopt;
        std::string given = req.api_key;
        if (given.empty()) {
            const std::string auth = trim(req.authorization);
            if (auth.size() > 7 && lower(auth.substr(0, 7)) == "bearer ") given = trim(auth.substr(7));
        }
        if (!given.empty() && secrets_equal(given, *info.api_key)) return std::nullopt;
        auto r = error_response(401, "unauthorized",
                                given.empty() ? "this server needs an API key: send 'Authorization: Bearer KEY' or "
                                                "'X-API-Key: KEY'"
                                              : "wrong API key");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"faceq\"");
        return r;
    }

    Gallery& gallery() const { return *setup.session->gallery(); }

    void require_ready() const {
        if (!ready.load(std::memory_order_acquire))
            throw HttpFailure{503, "unavailable", "the server is starting: models are loading"};
    }

    ApiResponse route(const ApiRequest& req) {
        if (auto no_route = check_route(req)) return *no_route;
        struct Route {
            const char* method;
            const char* path;
            ApiResponse (Impl::*handler)(const ApiRequest&);
        };
        static const Route routes[] = {
            {"GET", "/health", &Impl::health},    {"POST", "/analyze", &Impl::analyze},
            {"POST", "/register", &Impl::enroll}, {"GET", "/stats", &Impl::stats},
            {"GET", "/search", &Impl::search},    {"GET", "/metrics", &Impl::metrics_text},
        };
        for (const auto& r : routes)
            if (req.path == r.path &&
                (req.method == r.method || (req.method == "HEAD" && std::string(r.method) == "GET")))
                return (this->*r.handler)(req);
        throw Error(ErrorKind::internal,
                    fmt::format("route table and handlers disagree on {} {}", req.method, req.path));
    }

    // ------------------------------------------------------------ handlers

    // 404 or 405 for a request no route takes.
    static std::optional<ApiResponse> check_route(const ApiRequestHead& req) {
        std::string allowed;
        for (const auto& r : route_names) {
            if (req.path != r.path) continue;
            // HEAD is GET without the body.
            if (req.method == r.method || (req.method == "HEAD" && std::string(r.method) == "GET")) return std::nullopt;
            allowed += allowed.empty() ? r.method : std::string(", ") + r.method;
        }
        if (!allowed.empty()) {
            auto resp = error_response(405, "method_not_allowed",
                                       fmt::format("{} does not accept {}; use {}", req.path, req.method, allowed));
            resp.headers.emplace_back("Allow", allowed);
            return resp;
        }
        return error_response(404, "route_not_found",
                              fmt::format("no route {} {}; routes: GET /health, POST /analyze, POST /register, "
                                          "GET /stats, GET /search?name=, GET /metrics",
                                          req.method, req.path));
    }

    std::optional<ApiResponse> admit(const ApiRequestHead& req) const {
        if (auto denied = check_auth(req)) return refusal(req, *denied);
        if (auto no_route = check_route(req)) return refusal(req, *no_route);
        if (!req.transfer_encoding.empty() && lower(trim(req.transfer_encoding)) != "chunked")
            return refusal(req, error_response(501, "invalid_input",
                                               fmt::format("Transfer-Encoding '{}' is not supported; send the body "
                                                           "with a Content-Length or chunked",
                                                           req.transfer_encoding.substr(0, 60))));
        if (!req.content_encoding.empty() && lower(trim(req.content_encoding)) != "identity")
            return refusal(req, error_response(415, "unsupported_media_type",
                                               "compressed request bodies (Content-Encoding) are not accepted"));
        if (info.max_body_bytes > 0 && req.content_length && *req.content_length > info.max_body_bytes)
            return refusal(req, error_response(413, to_string(ErrorKind::too_large),
                                               fmt::format("request body of {} bytes, over the server's limit of {} "
                                                           "(--max-upload-mb)",
                                                           *req.content_length, info.max_body_bytes)));
        const bool has_body = req.chunked || (req.content_length && *req.content_length > 0);
        if (has_body && req.method == "POST" && !is_multipart(req))
            return refusal(
                req, error_response(
                         415, "unsupported_media_type",
                         fmt::format("expected a multipart/form-data body, not '{}'",
                                     req.content_type.empty() ? "no content type" : req.content_type.substr(0, 100))));
        return std::nullopt;
    }

    ApiResponse health(const ApiRequest& req) {
        const bool is_ready = ready.load(std::memory_order_acquire);
        if (!authorized(req)) {
            // Without the key: the state and nothing else (no paths, versions or counts).
            if (!is_ready) return json_response(503, {{"status", "starting"}});
            bool reachable = true;
            try {
                (void)gallery().usable(setup.session->identification().context.embedder);
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
        j["models"] = setup.session->models_json();
        json db;  // no path: /stats (keyed) shows where the gallery is
        bool reachable = true;
        try {
            const auto [persons, samples] = gallery().usable(setup.session->identification().context.embedder);
            db["reachable"] = true;
            db["persons"] = persons;
            db["samples"] = samples;
        } catch (const std::exception& e) {
            reachable = false;
            db["reachable"] = false;
            log_error(fmt::format("/health: the gallery database is unavailable: {}", e.what()));
        }
        j["database"] = std::move(db);
        j["analyzers"] = {{"capacity", pool->capacity()}, {"created", pool->created()}, {"busy", pool->busy()}};
        j["ready"] = reachable;
        j["status"] = reachable ? "ok" : "degraded";
        return json_response(reachable ? 200 : 503, j);
    }

    ApiResponse analyze(const ApiRequest& req) {
        require_ready();
        const auto start = Clock::now();
        std::string name;
        auto image = uploaded_image(req, setup.limits, name);
        ImageAnalysis analysis;
        {
            auto analyzer = pool->acquire();
            analysis = setup.session->analyze(*analyzer, name, std::move(image), std::nullopt);
        }
        const std::size_t faces = analysis.result.faces.size();
        metrics.images_analyzed.fetch_add(1, std::memory_order_relaxed);
        metrics.faces_analyzed.fetch_add(faces, std::memory_order_relaxed);
        json record = setup.session->record(analysis, false);
        setup.session->identify(analysis, record);
        record["elapsed_ms"] =
            std::round(std::chrono::duration<double, std::milli>(Clock::now() - start).count() * 100) / 100;
        record["success"] = true;
        record["message"] =
            faces == 0 ? std::string("No face detected") : fmt::format("Successfully analyzed {} face(s)", faces);
        return json_response(200, record);
    }

    ApiResponse enroll(const ApiRequest& req) {
        require_ready();
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
        if (const auto owner = enroller->already_enrolled(image.sha256, person_name)) {
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
            auto analyzer = pool->acquire();
            analysis = setup.session->analyze(*analyzer, file_name, std::move(image), std::nullopt);
        }
        metrics.images_analyzed.fetch_add(1, std::memory_order_relaxed);
        const Face& face = enroller->choose_face(analysis.result, file_name, largest);
        const FaceSample sample = enroller->sample(face, file_name, analysis.image);
        const auto enrolled = enroller->enroll(person_name, {sample});
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

    ApiResponse stats(const ApiRequest&) {
        require_ready();
        const auto now = unix_now();
        const auto stats = gallery().stats(now);
        auto j = stats_json(stats, stats.database_location, setup.session->identification().context.embedder);
        j["success"] = true;
        return json_response(200, j);
    }

    ApiResponse search(const ApiRequest& req) {
        require_ready();
        const std::string* name = query_param(req, "name");
        if (!name)
            throw HttpFailure{400, to_string(ErrorKind::invalid_input),
                              "missing query parameter 'name' (use name= to list everyone)"};
        json persons = json::array();
        for (const auto& p : gallery().find_persons(*name)) persons.push_back(person_json(p));
        const auto n = persons.size();
        return json_response(200, {{"success", true},
                                   {"query", *name},
                                   {"count", n},
                                   {"persons", std::move(persons)},
                                   {"message", fmt::format("{} person(s) match '{}'", n, *name)}});
    }

    ApiResponse metrics_text(const ApiRequest&) {
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
            out += fmt::format(
                "# HELP faceq_analyzers Analyzer copies (network sets): capacity, created, busy.\n"
                "# TYPE faceq_analyzers gauge\n"
                "faceq_analyzers{{state=\"capacity\"}} {}\nfaceq_analyzers{{state=\"created\"}} {}\n"
                "faceq_analyzers{{state=\"busy\"}} {}\n",
                pool->capacity(), pool->created(), pool->busy());
            try {
                const auto s = gallery().stats(unix_now());
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
};

ApiService::ApiService(ServiceInfo info) : impl_(std::make_unique<Impl>(std::move(info))) {}
ApiService::~ApiService() = default;

void ApiService::start(ServiceSetup setup) {
    auto& m = *impl_;
    if (!setup.session || !setup.session->gallery())
        throw Error(ErrorKind::internal, "ApiService::start: no session with a gallery");
    m.pool = std::make_unique<detail::AnalyzerPool>(std::make_unique<Analyzer>(setup.session->prototype()), setup.jobs);
    m.enroller = std::make_unique<Enroller>(*setup.session->gallery(), setup.session->identification().context.embedder,
                                            EnrollerOptions{"send pick=largest"});
    m.setup = std::move(setup);
    m.ready.store(true, std::memory_order_release);
}

bool ApiService::ready() const noexcept { return impl_->ready.load(std::memory_order_acquire); }

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
