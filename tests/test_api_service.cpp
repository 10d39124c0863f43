// tests/test_api_service.cpp — the HTTP API in process, without models:
// ApiService's routing, 503 before start, the API key, error shapes and
// metrics on plain values; HttpServer's bind to port 0 and its stop before
// and during run() (test_serve.cpp drives the real `faceq serve` binary).
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/http/server.hpp"
#include "test_support.hpp"

using namespace faceq;
using nlohmann::json;

TEST_CASE("ApiService: routes, 503 before start, API key, error shapes", "[serve]") {
    std::vector<std::string> access;
    ServiceInfo info;
    info.version = "test";
    info.access_log = [&access](const std::string& line) { access.push_back(line); };
    ApiService api(info);
    const auto request = [](const std::string& method, const std::string& path) {
        ApiRequest r;
        r.method = method;
        r.path = path;
        return r;
    };
    CHECK_FALSE(api.ready());
    {
        const auto r = api.handle(request("GET", "/health"));
        CHECK(r.status == 503);
        CHECK(json::parse(r.body).at("status") == "starting");
    }
    for (const char* path : {"/stats", "/search", "/analyze", "/register"}) {
        const bool post = std::string(path) == "/analyze" || std::string(path) == "/register";
        const auto r = api.handle(request(post ? "POST" : "GET", path));
        CHECK(r.status == 503);
        CHECK(json::parse(r.body).at("error").at("kind") == "unavailable");
    }
    CHECK(api.handle(request("GET", "/metrics")).status == 200);  // also while starting
    CHECK(api.handle(request("HEAD", "/health")).status == 503);  // HEAD is GET without the body
    CHECK(api.handle(request("GET", "/nope")).status == 404);
    {
        const auto r = api.handle(request("DELETE", "/register"));
        CHECK(r.status == 405);
        REQUIRE(r.headers.size() == 1);
        CHECK(r.headers[0] == std::make_pair(std::string("Allow"), std::string("POST")));
    }
    for (int status : {400, 404, 408, 413, 414, 500, 501}) {
        const auto r = api.http_error(status);
        CHECK(r.status == status);
        CHECK(json::parse(r.body).at("success") == false);
    }
    api.finish_request("GET", "/nope?name=secret", 404, 0.002);
    api.finish_request("BREW", std::string("/\x01\n", 3), 400, -1);
    REQUIRE(access.size() == 2);
    CHECK(access[0] == "GET /nope?name=secret 404 2.0ms");  // the glue passes paths without the query
    CHECK(access[1] == "other /?? 400 -ms");                // no control characters reach the log
    const std::string metrics = api.handle(request("GET", "/metrics")).body;
    CHECK(metrics.find("faceq_http_requests_total{route=\"other\",method=\"other\",status=\"400\"} 1") !=
          std::string::npos);
    CHECK(metrics.find("faceq_ready 0") != std::string::npos);

    ServiceInfo keyed = info;
    keyed.api_key = "sesame";
    ApiService locked(keyed);
    auto with = [&](const std::string& path, const std::string& authorization, const std::string& api_key) {
        ApiRequest r = request("GET", path);
        r.authorization = authorization;
        r.api_key = api_key;
        return locked.handle(r).status;
    };
    CHECK(with("/health", "", "") == 503);  // never needs the key
    CHECK(with("/stats", "", "") == 401);
    CHECK(with("/nope", "", "") == 401);
    CHECK(with("/stats", "Bearer sesame", "") == 503);
    CHECK(with("/stats", "  BEARER   sesame ", "") == 503);
    CHECK(with("/stats", "Basic sesame", "") == 401);
    CHECK(with("/stats", "Bearer sesam", "") == 401);
    CHECK(with("/stats", "", "sesame") == 503);
    CHECK(with("/stats", "Bearer sesame", "wrong") == 401);  // X-API-Key, when sent, is the one checked
    CHECK(with("/nope", "", "sesame") == 404);

    CHECK(secrets_equal("a", "a"));
    CHECK_FALSE(secrets_equal("a", "b"));
    CHECK_FALSE(secrets_equal("a", "aa"));
    CHECK_FALSE(secrets_equal("", "a"));
    CHECK(http_status(ErrorKind::invalid_input) == 400);
    CHECK(http_status(ErrorKind::usage) == 400);
    CHECK(http_status(ErrorKind::too_large) == 413);
    CHECK(http_status(ErrorKind::database) == 503);
    CHECK(http_status(ErrorKind::model) == 500);
}

TEST_CASE("HttpServer: port 0, stop before and during run", "[serve]") {
    ApiService api(ServiceInfo{});
    {
        HttpOptions options;
        options.port = 0;
        HttpServer server(api, options);
        CHECK(server.bind() > 0);
        server.stop();
        server.run();  // returns at once: stopped before it started
    }
    {
        HttpOptions options;
        options.port = 0;
        HttpServer server(api, options);
        const int port = server.bind();
        std::thread t([&] { server.run(); });
        server.stop();  // may arrive before the loop runs: must not be lost
        t.join();
        httplib::Client c("127.0.0.1", port);
        c.set_connection_timeout(1, 0);
        CHECK_FALSE(c.Get("/health"));  // nobody listens any more
    }
    {
        HttpOptions options;
        options.port = 0;
        HttpServer server(api, options);
        const int port = server.bind();
        std::thread t([&] { server.run(); });
        {
            httplib::Client c("127.0.0.1", port);
            auto res = c.Get("/health");
            for (int i = 0; i < 100 && !res; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                res = c.Get("/health");
            }
            REQUIRE(res);
            CHECK(res->status == 503);
        }  // closes the keep-alive connection, which stop() would otherwise wait for (up to 5 s)
        server.stop();
        t.join();
    }
}

namespace {

ApiRequest api_request(const std::string& method, const std::string& path) {
    ApiRequest r;
    r.method = method;
    r.path = path;
    return r;
}

std::string header(const ApiResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
        if (k == name) return v;
    return {};
}

// A POST with a JSON body (admit() first, as the glue does).
ApiResponse post_json(ApiService& api, ApiRequest r, const std::string& body) {
    r.content_type = "application/json";
    r.content_length = body.size();
    r.body = body;
    if (auto refused = api.admit(r)) return *refused;
    return api.handle(r);
}

std::string error_kind(const ApiResponse& r) {
    INFO("body: " << r.body);
    const json j = json::parse(r.body);
    CHECK(j.at("success") == false);
    return j.at("error").at("kind").get<std::string>();
}

}  // namespace

TEST_CASE("ApiService: the page's files, compiled in; ETag and 304; no way out of the table", "[serve][api]") {
    ApiService api(ServiceInfo{});
    const auto index = api.handle(api_request("GET", "/"));
    REQUIRE(index.status == 200);
    CHECK(index.content_type == "text/html; charset=utf-8");
    CHECK(index.body.find("faceq") != std::string::npos);
    CHECK(header(index, "Content-Security-Policy") ==
          "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; object-src 'none'; "
          "frame-ancestors 'none'");
    CHECK(header(index, "Cache-Control") == "no-cache");
    const std::string etag = header(index, "ETag");
    CHECK(std::regex_match(etag, std::regex(R"("[0-9a-f]{32}")")));

    // Every file under web/ is served, byte for byte, with its type.
    const std::filesystem::path web = std::filesystem::path(FACEQ_SOURCE_DIR) / "web";
    int files = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(web)) {
        if (!e.is_regular_file() || e.path().filename().string().front() == '.') continue;
        const std::string rel = std::filesystem::relative(e.path(), web).generic_string();
        INFO("web/" << rel);
        const auto r = api.handle(api_request("GET", "/ui/" + rel));
        REQUIRE(r.status == 200);
        const auto bytes = test::read_bytes(e.path().string());
        CHECK(r.body == std::string(bytes.begin(), bytes.end()));
        const std::string ext = e.path().extension().string();
        if (ext == ".js") CHECK(r.content_type == "text/javascript; charset=utf-8");
        if (ext == ".css") CHECK(r.content_type == "text/css; charset=utf-8");
        if (ext == ".html") CHECK(r.content_type == "text/html; charset=utf-8");
        CHECK(header(r, "Cache-Control") == "no-cache");
        CHECK_FALSE(header(r, "ETag").empty());
        ++files;
    }
    CHECK(files >= 3);
    CHECK(api.handle(api_request("GET", "/ui/index.html")).body == index.body);

    // Revalidation: the same ETag gives 304 without a body; another gives the file.
    for (const std::string& sent : {etag, "W/" + etag, "\"other\", " + etag, std::string("*")}) {
        auto req = api_request("GET", "/");
        req.if_none_match = sent;
        const auto r = api.handle(req);
        CHECK(r.status == 304);
        CHECK(r.body.empty());
        CHECK(header(r, "ETag") == etag);
    }
    {
        auto req = api_request("GET", "/");
        req.if_none_match = "\"0123\"";
        CHECK(api.handle(req).status == 200);
    }

    // Only names in the compiled table: no file outside web/ is reachable.
    for (const char* path : {"/ui/../CMakeLists.txt", "/ui/../../../../etc/passwd", "/ui//etc/passwd", "/ui/./app.js",
                             "/ui/app.js/", "/ui/", "/ui/nope.js", "/ui/APP.JS"}) {
        INFO(path);
        const auto r = api.handle(api_request("GET", path));
        CHECK(r.status == 404);
        CHECK(error_kind(r) == (std::string(path) == "/ui/" ? "route_not_found" : "not_found"));
    }
    // No key needed for them, even on a server with one; POST is refused.
    ServiceInfo keyed;
    keyed.api_key = "sesame";
    ApiService locked(keyed);
    CHECK(locked.handle(api_request("GET", "/")).status == 200);
    CHECK(locked.handle(api_request("GET", "/ui/app.js")).status == 200);
    CHECK(locked.handle(api_request("GET", "/ui/nope.js")).status == 404);
    CHECK(locked.handle(api_request("POST", "/")).status == 405);
    CHECK(api.handle(api_request("POST", "/")).status == 405);
}

TEST_CASE("ApiService: login sessions, expiry, CSRF, the key on every route, wrong-key lockout", "[serve][api]") {
    ServiceInfo info;
    info.api_key = "sesame-0123456789";
    info.session_seconds = 2;
    info.max_body_bytes = 1 << 20;
    ApiService api(info);

    // Every route but /health, the page's files, /api/session and /api/login needs the key or a session.
    const std::vector<std::pair<std::string, std::string>> guarded{
        {"GET", "/stats"},
        {"GET", "/search"},
        {"GET", "/metrics"},
        {"POST", "/analyze"},
        {"POST", "/register"},
        {"POST", "/api/logout"},
        {"GET", "/api/stats"},
        {"GET", "/api/runs"},
        {"GET", "/api/models"},
        {"POST", "/api/models/deploy"},
        {"POST", "/api/models/rollback"},
        {"GET", "/api/persons"},
        {"GET", "/api/persons/person_1_0001"},
        {"GET", "/api/persons/person_1_0001/faces"},
        {"GET", "/api/persons/person_1_0001/thumbnail"},
        {"GET", "/api/thumbnails/detections/1"},
        {"GET", "/api/thumbnails/samples/1"},
        {"POST", "/api/persons/person_1_0001/rename"},
        {"POST", "/api/persons/person_1_0001/merge"},
        {"POST", "/api/persons/person_1_0001/delete"},
        {"POST", "/api/persons/person_1_0001/reject"},
        {"POST", "/api/persons/person_1_0001/unreject"},
        {"GET", "/api/no/such/route"},
    };
    for (const auto& [method, path] : guarded) {
        INFO(method << " " << path);
        const auto r = api.handle(api_request(method, path));
        CHECK(r.status == 401);
        CHECK(error_kind(r) == "unauthorized");
        auto with_cookie = api_request(method, path);
        with_cookie.cookie = "faceq_session=" + std::string(64, 'a');
        CHECK(api.handle(with_cookie).status == 401);
        auto wrong_key = api_request(method, path);
        wrong_key.api_key = "sesame";
        CHECK(api.handle(wrong_key).status == 401);
    }
    // With the key, past authentication: 503 (the models are not loaded in this test), 404 for no
    // route (yet), 200 /metrics, 204 logout.
    for (const auto& [method, path] : guarded) {
        INFO(method << " " << path);
        auto r = api_request(method, path);
        r.api_key = info.api_key.value();
        const int status = api.handle(r).status;
        CHECK((status == 503 || status == 404 || status == 200 || status == 204));
    }

    // Not logged in.
    {
        const json s = json::parse(api.handle(api_request("GET", "/api/session")).body);
        CHECK(s.at("auth_required") == true);
        CHECK(s.at("logged_in") == false);
        CHECK(s.at("csrf_token").is_null());
    }
    // Bad login bodies.
    CHECK(post_json(api, api_request("POST", "/api/login"), "{\"key\": 1}").status == 400);
    CHECK(post_json(api, api_request("POST", "/api/login"), "not json").status == 400);
    CHECK(post_json(api, api_request("POST", "/api/login"), "[\"sesame\"]").status == 400);
    {
        auto r = api_request("POST", "/api/login");
        r.content_type = "text/plain";
        r.content_length = 10;
        const auto refused = api.admit(r);
        REQUIRE(refused);
        CHECK(refused->status == 415);
        r.content_type = "application/json";
        r.content_length = 64 * 1024 + 1;
        REQUIRE(api.admit(r));
        CHECK(api.admit(r)->status == 413);
        CHECK(api.body_limit(r) == 64 * 1024);
        CHECK(api.body_limit(api_request("POST", "/analyze")) == info.max_body_bytes);
    }

    // Log in.
    const auto login = post_json(api, api_request("POST", "/api/login"), R"({"key": "sesame-0123456789"})");
    REQUIRE(login.status == 200);
    const std::string cookie = header(login, "Set-Cookie");
    std::smatch m;
    REQUIRE(std::regex_match(
        cookie, m, std::regex(R"(faceq_session=([0-9a-f]{64}); HttpOnly; SameSite=Strict; Path=/; Max-Age=2)")));
    const std::string session = "other=1; faceq_session=" + m[1].str();
    const json answer = json::parse(login.body);
    const std::string csrf = answer.at("csrf_token");
    CHECK(std::regex_match(csrf, std::regex("[0-9a-f]{64}")));
    CHECK(answer.at("expires_at").get<std::int64_t>() >= unix_now() + 1);
    CHECK(cookie.find("Secure") == std::string::npos);  // plain HTTP

    const auto as_user = [&](const std::string& method, const std::string& path, const std::string& token) {
        auto r = api_request(method, path);
        r.cookie = session;
        r.csrf_token = token;
        if (auto refused = api.admit(r)) return *refused;
        return api.handle(r);
    };
    {
        auto r = api_request("GET", "/api/session");
        r.cookie = session;
        const json s = json::parse(api.handle(r).body);
        CHECK(s.at("logged_in") == true);
        CHECK(s.at("csrf_token") == csrf);
    }
    CHECK(as_user("GET", "/api/stats", "").status == 503);  // let in; no models in this test
    CHECK(as_user("GET", "/stats", "").status == 503);
    // CSRF: every POST by cookie needs the session's token.
    for (const std::string path :
         {"/api/persons/person_1_0001/rename", "/api/models/deploy", "/analyze", "/register", "/api/logout"}) {
        INFO(path);
        const auto missing = as_user("POST", path, "");
        CHECK(missing.status == 403);
        CHECK(error_kind(missing) == "csrf");
        const auto wrong = as_user("POST", path, std::string(64, '0'));
        CHECK(wrong.status == 403);
        CHECK(error_kind(wrong) == "csrf");
        if (path != "/api/logout") CHECK(as_user("POST", path, csrf).status == 503);
    }
    // With the key, no CSRF token is needed (scripts).
    {
        auto r = api_request("POST", "/api/persons/person_1_0001/rename");
        r.authorization = "Bearer sesame-0123456789";
        CHECK_FALSE(api.admit(r));
    }
    // Log out: the cookie is cleared and the session is gone.
    {
        const auto out = as_user("POST", "/api/logout", csrf);
        CHECK(out.status == 204);
        CHECK(header(out, "Set-Cookie") == "faceq_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
        CHECK(as_user("GET", "/api/stats", "").status == 401);
    }
    // Expiry: a session ends after its lifetime (2 s here).
    {
        const auto again = post_json(api, api_request("POST", "/api/login"), R"({"key": "sesame-0123456789"})");
        REQUIRE(again.status == 200);
        std::smatch m2;
        const std::string set = header(again, "Set-Cookie");
        REQUIRE(std::regex_search(set, m2, std::regex("faceq_session=([0-9a-f]{64})")));
        auto r = api_request("GET", "/api/stats");
        r.cookie = "faceq_session=" + m2[1].str();
        CHECK(api.handle(r).status == 503);
        std::this_thread::sleep_for(std::chrono::milliseconds(3100));
        const auto expired = api.handle(r);
        CHECK(expired.status == 401);
        CHECK(json::parse(expired.body).at("error").at("message").get<std::string>().find("log in again") !=
              std::string::npos);
    }
    // Wrong keys: 5 free tries, then login is locked for a while, even for the right key.
    for (int i = 0; i < 5; ++i)
        CHECK(post_json(api, api_request("POST", "/api/login"), R"({"key": "guess"})").status == 401);
    {
        const auto locked = post_json(api, api_request("POST", "/api/login"), R"({"key": "sesame-0123456789"})");
        CHECK(locked.status == 429);
        CHECK(error_kind(locked) == "too_many_requests");
        CHECK_FALSE(header(locked, "Retry-After").empty());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    CHECK(post_json(api, api_request("POST", "/api/login"), R"({"key": "sesame-0123456789"})").status == 200);
}

TEST_CASE("ApiService: without a key, POSTs under /api need the process's CSRF token", "[serve][api]") {
    ServiceInfo info;
    ApiService api(info);
    const json s = json::parse(api.handle(api_request("GET", "/api/session")).body);
    CHECK(s.at("auth_required") == false);
    CHECK(s.at("logged_in") == true);
    const std::string csrf = s.at("csrf_token");
    CHECK(std::regex_match(csrf, std::regex("[0-9a-f]{64}")));
    auto rename = api_request("POST", "/api/persons/person_1_0001/rename");
    REQUIRE(api.admit(rename));
    CHECK(api.admit(rename)->status == 403);
    rename.csrf_token = csrf;
    CHECK_FALSE(api.admit(rename));
    CHECK(api.handle(rename).status == 503);
    // The reference routes keep working for scripts without a token.
    auto analyze = api_request("POST", "/analyze");
    CHECK_FALSE(api.admit(analyze));
    CHECK(api.handle(api_request("GET", "/api/stats")).status == 503);

    // Deploy on a server open to the network without a key: refused outright.
    ServiceInfo exposed;
    exposed.exposed = true;
    ApiService open(exposed);
    const std::string token = json::parse(open.handle(api_request("GET", "/api/session")).body).at("csrf_token");
    auto deploy = api_request("POST", "/api/models/deploy");
    deploy.csrf_token = token;
    const auto r = post_json(open, deploy, R"({"name": "age-gender", "version": 1})");
    CHECK(r.status == 403);
    CHECK(error_kind(r) == "forbidden");
}

TEST_CASE("ApiService: without a key on loopback, only loopback host names are served (DNS rebinding)",
          "[serve][api]") {
    ApiService api(ServiceInfo{});
    auto with_host = [](const std::string& host) {
        auto r = api_request("GET", "/api/session");
        r.host = host;
        return r;
    };
    for (const std::string host :
         {"", "127.0.0.1:8000", "127.0.0.1", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.1.2.3:9"}) {
        INFO("Host: " << host);
        CHECK_FALSE(api.admit(with_host(host)));
    }
    for (const std::string host : {"attacker.example:8000", "127.attacker.example", "127.0.0.1.nip.io:8000",
                                   "localhost.attacker.example", "[::2]:8000", "10.0.0.1:8000"}) {
        INFO("Host: " << host);
        const auto refused = api.admit(with_host(host));
        REQUIRE(refused);
        CHECK(refused->status == 403);
        CHECK(error_kind(*refused) == "forbidden");
    }
    // With a key, or listening beyond loopback, the Host is not this check's business.
    ServiceInfo keyed;
    keyed.api_key = "sesame-0123456789";
    auto r = with_host("faceq.example");
    r.api_key = "sesame-0123456789";
    CHECK_FALSE(ApiService(keyed).admit(r));
    ServiceInfo exposed;
    exposed.exposed = true;
    CHECK_FALSE(ApiService(exposed).admit(with_host("faceq.example")));
}
