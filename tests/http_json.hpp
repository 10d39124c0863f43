// tests/http_json.hpp — what the tests of `faceq serve` check of an HTTP
// answer's JSON (cpp-httplib's client): its body parsed, and the one error
// shape of every route, {"success": false, "error": {"kind", "message"}}.
#pragma once

#include <httplib.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace faceq::test {

inline nlohmann::json body_of(const httplib::Result& res) {
    REQUIRE(res);
    INFO("status " << res->status << ", body: " << res->body.substr(0, 2000));
    REQUIRE(nlohmann::json::accept(res->body));
    return nlohmann::json::parse(res->body);
}

// The body of an error answer, checked to be `status` with the error `kind`.
inline nlohmann::json expect_error(const httplib::Result& res, int status, const std::string& kind) {
    REQUIRE(res);
    INFO("body: " << res->body.substr(0, 2000));
    CHECK(res->status == status);
    const nlohmann::json j = body_of(res);
    CHECK(j.at("success") == false);
    CHECK(j.at("error").at("kind") == kind);
    CHECK_FALSE(j.at("error").at("message").get<std::string>().empty());
    CHECK(res->get_header_value("Content-Type") == "application/json");
    return j;
}

}  // namespace faceq::test
