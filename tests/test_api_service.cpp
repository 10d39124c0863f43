// tests/test_api_service.cpp — the HTTP API in process, without models:
// ApiService's routing, 503 before start, the API key, error shapes and
// metrics on plain values; HttpServer's bind to port 0 and its stop before
// and during run() (test_serve.cpp drives the real `faceq serve` binary).
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "faceq/base/error.hpp"
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
