// tests/test_serve_api.cpp — the page's side of `faceq serve` end to end: the
// real binary with an API key over a gallery built by the CLI from LFW photos
// (three people enrolled, two strangers met by `analyze --store`), driven by
// cpp-httplib's client as the page's fetch() calls would: the compiled-in
// files with their headers and 304s, login and the session cookie, CSRF,
// every /api data route's JSON checked against what the CLI reports, and
// rename / merge / delete through the API changing what `faceq search` and
// `faceq stats` say; the model registry's routes over runs registered with
// the core's Registry, deploy and rollback moving the alias the CLI lists.
#include <httplib.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "faceq/models/registry.hpp"
#include "http_json.hpp"
#include "serve_process.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

std::filesystem::path lfw() { return data_dir() / "lfw-dev" / "lfw-deepfunneled"; }

std::vector<std::string> lfw_photos(const std::string& who) {
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(lfw() / who)) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<json> json_lines(const std::string& text) {
    std::vector<json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(json::parse(line));
    return out;
}

// The persons `faceq search --name TEXT` prints.
std::vector<json> cli_search(const std::string& home, const std::string& text) {
    const auto r = run_faceq({"--home", home, "search", "--name", text});
    INFO("search stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return json_lines(r.out);
}

json cli_stats(const std::string& home) {
    const auto r = run_faceq({"--home", home, "stats", "--format", "json"});
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

// The answers of a raw request line (paths a client library would normalize).
std::string raw_get(int port, const std::string& target) {
    httplib::Client c("127.0.0.1", port);
    // cpp-httplib sends the path as given (it does not resolve dot segments).
    auto res = c.Get(target);
    return res ? std::to_string(res->status) + " " + res->body : std::string("no answer");
}

}  // namespace

TEST_CASE("faceq serve: the page's /api routes, login, CSRF and files on a gallery of real photos", "[serve][api]") {
    REQUIRE_MODELS();
    ServeHome home;
    const std::string root = home.root();

    // The gallery, made by the CLI: three people enrolled from two photos
    // each; their third photos and two strangers' photos analysed with --store.
    const std::vector<std::string> known{"Abdullah_Gul", "Aaron_Peirsol", "Ahmed_Chalabi"};
    const std::vector<std::string> strangers{"Alejandro_Toledo", "Alvaro_Uribe"};
    std::vector<std::string> analyze{"--home", root, "analyze", "--store", "-j", "2"};
    for (const auto& who : known) {
        const auto photos = lfw_photos(who);
        REQUIRE(photos.size() >= 3);
        const auto r = run_faceq({"--home", root, "enroll", "--pick", "largest", "--name", who, photos[0], photos[1]});
        INFO("enroll: " << r.err);
        REQUIRE(r.exit_code == 0);
        analyze.push_back(photos[2]);
    }
    for (const auto& who : strangers) analyze.push_back(lfw_photos(who).at(0));
    {
        const auto r = run_faceq(analyze, {}, {}, std::chrono::minutes(5));
        INFO("analyze: " << r.err);
        REQUIRE(r.exit_code == 0);
    }
    const json stats_before = cli_stats(root);
    REQUIRE(stats_before.at("persons").at("known") == 3);
    const std::int64_t unknown_before = stats_before.at("persons").at("unknown");
    REQUIRE(unknown_before >= 2);

    const std::string key = "page-key_0123456789abcdef";
    ServeProcess server(home.dir.path(), {"--port", "0", "-j", "1"}, {"FACEQ_API_KEY=" + key});
    const int port = server.port();
    INFO("server log:\n" << server.log());
    REQUIRE(port > 0);
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(180, 0);
    for (int i = 0; i < 1800; ++i) {
        auto h = c.Get("/health");
        if (h && h->status == 200) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }

    // ---- the page's files: no key needed, its headers, 304, nothing else reachable
    {
        auto res = c.Get("/");
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(res->get_header_value("Content-Type") == "text/html; charset=utf-8");
        CHECK(res->get_header_value("Content-Security-Policy").find("script-src 'self'") != std::string::npos);
        CHECK(res->get_header_value("X-Content-Type-Options") == "nosniff");
        CHECK(res->get_header_value("Cache-Control") == "no-cache");
        const std::string etag = res->get_header_value("ETag");
        REQUIRE_FALSE(etag.empty());
        auto again = c.Get("/", {{"If-None-Match", etag}});
        REQUIRE(again);
        CHECK(again->status == 304);
        CHECK(again->body.empty());
        auto js = c.Get("/ui/app.js");
        REQUIRE(js);
        CHECK(js->status == 200);
        CHECK(js->get_header_value("Content-Type") == "text/javascript; charset=utf-8");
        CHECK(js->get_header_value("X-Content-Type-Options") == "nosniff");
        for (const char* target : {"/ui/../../../../etc/passwd", "/ui/%2e%2e/%2e%2e/etc/passwd",
                                   "/ui/..%2f..%2fetc%2fpasswd", "/ui//etc/passwd", "/ui/%2fetc%2fpasswd"}) {
            INFO(target);
            const std::string answer = raw_get(port, target);
            CHECK(answer.rfind("404 ", 0) == 0);
            CHECK(answer.find("root:") == std::string::npos);
        }
    }

    // ---- nothing with data answers without the key or a session
    {
        const json s = body_of(c.Get("/api/session"));
        CHECK(s.at("auth_required") == true);
        CHECK(s.at("logged_in") == false);
        expect_error(c.Get("/api/stats"), 401, "unauthorized");
        expect_error(c.Get("/stats"), 401, "unauthorized");
        expect_error(c.Post("/api/login", R"({"key": "nope"})", "application/json"), 401, "unauthorized");
    }
    auto login = c.Post("/api/login", json{{"key", key}}.dump(), "application/json");
    REQUIRE(login);
    REQUIRE(login->status == 200);
    std::smatch m;
    const std::string set_cookie = login->get_header_value("Set-Cookie");
    REQUIRE(std::regex_search(set_cookie, m, std::regex("^faceq_session=([0-9a-f]{64}); HttpOnly; SameSite=Strict")));
    const httplib::Headers cookie{{"Cookie", "faceq_session=" + m[1].str()}};
    const std::string csrf = body_of(login).at("csrf_token");
    httplib::Headers with_csrf = cookie;
    with_csrf.emplace("X-CSRF-Token", csrf);
    CHECK(body_of(c.Get("/api/session", cookie)).at("logged_in") == true);

    // ---- /api/stats: /stats' JSON plus the models, as /health names them
    {
        json api = body_of(c.Get("/api/stats", cookie));
        const json health = body_of(c.Get("/health", {{"X-API-Key", key}}));
        CHECK(api.at("models") == health.at("models"));
        CHECK(api.at("models").at("embedder").is_string());
        api.erase("models");
        json reference = body_of(c.Get("/stats", {{"X-API-Key", key}}));
        for (json* j : {&api, &reference}) j->at("database").erase("bytes");
        CHECK(api == reference);
        CHECK(api.at("persons").at("known") == 3);
    }

    // ---- a person: P, as the CLI's search sees it
    const auto gul = cli_search(root, "Abdullah_Gul");
    REQUIRE(gul.size() == 1);
    const std::string gul_id = gul[0].at("person_id");
    {
        const json p = body_of(c.Get("/api/persons/" + gul_id, cookie));
        CHECK(p.at("id") == gul_id);
        CHECK(p.at("name") == "Abdullah_Gul");
        CHECK(p.at("kind") == "known");
        CHECK(p.at("samples") == gul[0].at("samples"));
        CHECK(p.at("samples") == 2);
        CHECK(p.at("detections") == gul[0].at("detections"));
        // Seen when its third photo was analysed, unless that photo was not recognised.
        CHECK((p.at("detections") > 0 ? p.at("last_seen").is_number_integer() : p.at("last_seen").is_null()));
        CHECK(p.contains("thumbnail"));
        // By the X-API-Key too.
        CHECK(body_of(c.Get("/api/persons/" + gul_id, {{"X-API-Key", key}})).at("id") == gul_id);
    }
    std::vector<json> unknown = cli_search(root, "unknown_");
    REQUIRE(unknown.size() >= 2);
    const std::string stranger = unknown[0].at("person_id"), other_stranger = unknown[1].at("person_id");
    {
        const json p = body_of(c.Get("/api/persons/" + stranger, cookie));
        CHECK(p.at("kind") == "unknown");
        CHECK(p.at("name").is_null());
        CHECK(p.at("detections") == unknown[0].at("detections"));
    }

    // ---- the paged list, as the CLI's search orders and counts it
    {
        const json page = body_of(c.Get("/api/persons?kind=known", cookie));
        CHECK(page.at("total") == 3);
        CHECK(page.at("offset") == 0);
        CHECK(page.at("limit") == 50);
        const auto cli_known = cli_search(root, "");
        std::vector<std::string> names;
        for (const auto& p : page.at("persons")) {
            CHECK(p.at("kind") == "known");
            CHECK_FALSE(p.contains("suggestion"));
            names.push_back(p.at("name"));
            for (const auto& q : cli_known)
                if (q.at("person_id") == p.at("id")) {
                    CHECK(p.at("samples") == q.at("samples"));
                    CHECK(p.at("detections") == q.at("detections"));
                }
            CHECK(p.at("thumbnail") == "/api/persons/" + p.at("id").get<std::string>() + "/thumbnail");
        }
        CHECK(names == std::vector<std::string>{"Aaron_Peirsol", "Abdullah_Gul", "Ahmed_Chalabi"});
        const json second = body_of(c.Get("/api/persons?kind=known&offset=1&limit=1", cookie));
        CHECK(second.at("total") == 3);
        REQUIRE(second.at("persons").size() == 1);
        CHECK(second.at("persons")[0].at("name") == "Abdullah_Gul");
        const json found = body_of(c.Get("/api/persons?q=GUL", cookie));
        REQUIRE(found.at("total") == 1);
        CHECK(found.at("persons")[0].at("id") == gul_id);
        const json strangers_page = body_of(c.Get("/api/persons?kind=unknown&order=detections", cookie));
        CHECK(strangers_page.at("total") == unknown_before);
        for (const auto& p : strangers_page.at("persons")) {
            CHECK(p.at("kind") == "unknown");
            REQUIRE(p.contains("suggestion"));  // null, or {"id", "name", "distance", "margin"}
            if (!p.at("suggestion").is_null()) CHECK(p.at("suggestion").at("distance").is_number());
        }
        CHECK(body_of(c.Get("/api/persons", cookie)).at("total") == 3 + unknown_before);
        expect_error(c.Get("/api/persons?kind=friends", cookie), 400, "invalid_input");
        expect_error(c.Get("/api/persons?order=age", cookie), 400, "invalid_input");
        expect_error(c.Get("/api/persons?limit=0", cookie), 400, "invalid_input");
        expect_error(c.Get("/api/persons?limit=501", cookie), 400, "invalid_input");
        expect_error(c.Get("/api/persons?offset=-1", cookie), 400, "invalid_input");
        expect_error(c.Get("/api/persons?limit=ten", cookie), 400, "invalid_input");
    }

    // ---- a person's samples and faces; "not this person" and its undo
    {
        const json p = body_of(c.Get("/api/persons/" + gul_id, cookie));
        const json& samples = p.at("samples_list");
        REQUIRE(samples.size() == 2);
        const auto photos = lfw_photos("Abdullah_Gul");
        for (const auto& s : samples) {
            const std::string source = s.at("source_path");
            CHECK((source == photos[0] || source == photos[1]));
            CHECK(s.at("box").at("width").get<int>() > 20);
            CHECK(s.at("created_at").is_number_integer());
            CHECK(s.at("thumbnail") == "/api/thumbnails/samples/" + std::to_string(s.at("sample_id").get<long>()));
        }
        CHECK_FALSE(p.contains("suggestion"));  // known persons have none
    }
    {
        const auto peirsol = cli_search(root, "Aaron_Peirsol");
        REQUIRE(peirsol.size() == 1);
        const std::string id = peirsol[0].at("person_id");
        const std::int64_t detections = peirsol[0].at("detections");
        REQUIRE(detections >= 1);
        const json faces = body_of(c.Get("/api/persons/" + id + "/faces", cookie));
        CHECK(faces.at("total") == detections);
        const json face = faces.at("faces").at(0);
        CHECK(face.at("image") == lfw_photos("Aaron_Peirsol").at(2));
        CHECK(face.at("decision") == "known");
        CHECK(face.at("rejected") == false);
        CHECK(face.at("distance").is_number());
        CHECK(face.at("box").at("width").get<int>() > 20);
        const std::int64_t detection = face.at("detection_id");
        CHECK(face.at("thumbnail") == "/api/thumbnails/detections/" + std::to_string(detection));
        // Its face as a JPEG (<= 6 kB), and the person's.
        for (const std::string& url : {face.at("thumbnail").get<std::string>(), "/api/persons/" + id + "/thumbnail"}) {
            INFO(url);
            auto res = c.Get(url, cookie);
            REQUIRE(res);
            CHECK(res->status == 200);
            CHECK(res->get_header_value("Content-Type") == "image/jpeg");
            REQUIRE(res->body.size() > 100);
            CHECK(res->body.size() <= 6 * 1024);
            CHECK(res->body.substr(0, 2) == "\xff\xd8");
        }
        expect_error(c.Get("/api/thumbnails/detections/999999", cookie), 404, "not_found");
        expect_error(c.Get("/api/thumbnails/samples/abc", cookie), 400, "invalid_input");
        expect_error(c.Get("/api/thumbnails/detections/1"), 401, "unauthorized");
        const std::string body = json{{"detection_id", detection}}.dump();
        expect_error(c.Post("/api/persons/" + id + "/reject", cookie, body, "application/json"), 403, "csrf");
        const json after = body_of(c.Post("/api/persons/" + id + "/reject", with_csrf, body, "application/json"));
        CHECK(after.at("detections") == detections - 1);
        CHECK(cli_search(root, "Aaron_Peirsol").at(0).at("detections") == detections - 1);
        const json listed = body_of(c.Get("/api/persons/" + id + "/faces", cookie)).at("faces");
        bool shown_rejected = false;
        for (const auto& f : listed)
            if (f.at("detection_id") == detection) shown_rejected = f.at("rejected") == true;
        CHECK(shown_rejected);
        // The same photo analysed again is no longer this person.
        const auto bytes = read_bytes(lfw_photos("Aaron_Peirsol").at(2));
        const httplib::MultipartFormDataItems form{
            {"file", std::string(bytes.begin(), bytes.end()), "peirsol.jpg", "image/jpeg"}};
        const json again = body_of(c.Post("/analyze", {{"X-API-Key", key}}, form));
        REQUIRE(again.at("faces").size() >= 1);
        CHECK(again.at("faces").at(0).at("person_id") != id);
        expect_error(c.Post("/api/persons/" + id + "/reject", with_csrf, body, "application/json"), 400, "usage");
        // Undone: the detection is the person's again, and so is the photo.
        const json undone = body_of(c.Post("/api/persons/" + id + "/unreject", with_csrf, body, "application/json"));
        CHECK(undone.at("detections") == detections);
        CHECK(cli_search(root, "Aaron_Peirsol").at(0).at("detections") == detections);
        CHECK(body_of(c.Post("/analyze", {{"X-API-Key", key}}, form)).at("faces").at(0).at("person_id") == id);
        expect_error(
            c.Post("/api/persons/" + id + "/reject", with_csrf, R"({"detection_id": 999999})", "application/json"), 404,
            "not_found");
        expect_error(
            c.Post("/api/persons/" + id + "/reject", with_csrf, R"({"detection_id": "1"})", "application/json"), 400,
            "invalid_input");
        expect_error(c.Get("/api/persons/nobody_here/faces", cookie), 404, "not_found");
    }

    // ---- changes: CSRF first
    const std::string hostile = "<script>alert(\"x\")</script> & 'Ünïcødé' \\ /";
    const std::string rename_body = json{{"name", hostile}}.dump();
    expect_error(c.Post("/api/persons/" + stranger + "/rename", cookie, rename_body, "application/json"), 403, "csrf");
    {
        httplib::Headers wrong = cookie;
        wrong.emplace("X-CSRF-Token", std::string(64, 'f'));
        expect_error(c.Post("/api/persons/" + stranger + "/rename", wrong, rename_body, "application/json"), 403,
                     "csrf");
        CHECK(cli_search(root, "<script>").empty());  // nothing changed
    }
    // Rename: a hostile name round-trips exactly, and the CLI finds it.
    {
        const json p =
            body_of(c.Post("/api/persons/" + stranger + "/rename", with_csrf, rename_body, "application/json"));
        CHECK(p.at("id") == stranger);
        CHECK(p.at("name") == hostile);
        CHECK(p.at("kind") == "known");
        const auto found = cli_search(root, "<script>");
        REQUIRE(found.size() == 1);
        CHECK(found[0].at("person_id") == stranger);
        CHECK(found[0].at("name") == hostile);
        CHECK(body_of(c.Get("/api/persons/" + stranger, cookie)).at("name") == hostile);
    }
    // Merge the other stranger into Gul: its detections move, it is gone.
    {
        const std::int64_t gul_detections = gul[0].at("detections");
        const std::int64_t moved = unknown[1].at("detections");
        const json p = body_of(c.Post("/api/persons/" + other_stranger + "/merge", with_csrf,
                                      json{{"into", gul_id}}.dump(), "application/json"));
        CHECK(p.at("id") == gul_id);
        CHECK(p.at("detections") == gul_detections + moved);
        CHECK(cli_search(root, other_stranger).empty());
        CHECK(cli_search(root, "Abdullah_Gul").at(0).at("detections") == gul_detections + moved);
        expect_error(c.Get("/api/persons/" + other_stranger, cookie), 404, "not_found");
        expect_error(
            c.Post("/api/persons/" + gul_id + "/merge", with_csrf, json{{"into", gul_id}}.dump(), "application/json"),
            400, "usage");
    }
    // Delete the renamed one: 204, and the CLI no longer knows it.
    {
        auto res = c.Post("/api/persons/" + stranger + "/delete", with_csrf, "", "application/json");
        REQUIRE(res);
        CHECK(res->status == 204);
        CHECK(res->body.empty());
        CHECK(cli_search(root, "<script>").empty());
        const json after = cli_stats(root);
        CHECK(after.at("persons").at("unknown") == unknown_before - 2);
        CHECK(after.at("persons").at("known") == 3);
        expect_error(c.Post("/api/persons/" + stranger + "/delete", with_csrf, "", "application/json"), 404,
                     "not_found");
    }

    // ---- bad requests: the error shape
    expect_error(c.Get("/api/persons/nobody_here", cookie), 404, "not_found");
    expect_error(c.Post("/api/persons/" + gul_id + "/rename", with_csrf, "{\"name\": ", "application/json"), 400,
                 "invalid_input");
    expect_error(c.Post("/api/persons/" + gul_id + "/rename", with_csrf, "{\"name\": 5}", "application/json"), 400,
                 "invalid_input");
    expect_error(
        c.Post("/api/persons/" + gul_id + "/rename", with_csrf, "{\"name\": \"unknown_1_2345\"}", "application/json"),
        400, "usage");
    expect_error(c.Post("/api/persons/" + gul_id + "/rename", with_csrf, "name=x", "application/x-www-form-urlencoded"),
                 415, "unsupported_media_type");
    expect_error(c.Post("/api/persons/" + gul_id + "/rename", with_csrf,
                        json{{"name", std::string(70 * 1024, 'a')}}.dump(), "application/json"),
                 413, "too_large");
    expect_error(c.Get("/api/persons/" + gul_id + "/rename", cookie), 405, "method_not_allowed");
    CHECK(cli_search(root, "Abdullah_Gul").size() == 1);  // none of it renamed anyone

    // ---- /analyze from the page: by cookie it needs the CSRF token; by key it does not
    {
        const auto bytes = read_bytes(lfw_photos("Aaron_Peirsol").at(2));
        const httplib::MultipartFormDataItems form{
            {"file", std::string(bytes.begin(), bytes.end()), "peirsol.jpg", "image/jpeg"}};
        expect_error(c.Post("/analyze", cookie, form), 403, "csrf");
        const json a = body_of(c.Post("/analyze", with_csrf, form));
        REQUIRE(a.at("faces").size() >= 1);
        CHECK(a.at("faces").at(0).at("identity") == "Aaron_Peirsol");
        CHECK(body_of(c.Post("/analyze", {{"X-API-Key", key}}, form)).at("success") == true);
    }

    // ---- the registry: runs and versions registered by the core's Registry
    CHECK(body_of(c.Get("/api/runs", cookie)).at("runs") == json::array());
    CHECK(body_of(c.Get("/api/models", cookie)).at("models") == json::array());
    Registry registry(Home{home.dir.path()});
    std::vector<std::string> run_ids;
    for (double loss : {0.5, 0.25}) {
        const RunInfo run = registry.create_run("smoke", {{"epochs", 3}}, {{"model_name", "smoke"}});
        registry.update_run(run.id, json::object(), json::object(), {{"loss", loss}});
        registry.end_run(run.id, RunStatus::finished);
        registry.register_model("smoke", run.id);
        run_ids.push_back(run.id);
    }
    {
        const json runs = body_of(c.Get("/api/runs", cookie)).at("runs");
        REQUIRE(runs.size() == 2);
        CHECK(runs[0].at("run_id") == run_ids[1]);  // newest first
        CHECK(runs[0].at("status") == "FINISHED");
        CHECK(runs[0].at("experiment") == "smoke");
        CHECK(runs[0].at("params").at("epochs") == 3);
        CHECK(runs[0].at("metrics").at("loss") == 0.25);
        CHECK(runs[0].at("start_time").is_number_integer());
        CHECK(runs[0].at("end_time").get<std::int64_t>() >= runs[0].at("start_time").get<std::int64_t>());
        const json models = body_of(c.Get("/api/models", cookie)).at("models");
        REQUIRE(models.size() == 1);
        CHECK(models[0].at("name") == "smoke");
        CHECK(models[0].at("production").is_null());
        REQUIRE(models[0].at("versions").size() == 2);
        CHECK(models[0].at("versions")[1].at("version") == 2);
        CHECK(models[0].at("versions")[1].at("run_id") == run_ids[1]);
        CHECK(models[0].at("versions")[1].at("metrics").at("loss") == 0.25);
    }
    const auto cli_production = [&] {
        const auto r = run_faceq({"--home", root, "models", "list", "--name", "smoke", "--format", "json"});
        REQUIRE(r.exit_code == 0);
        for (const auto& v : json_lines(r.out))
            for (const auto& a : v.at("aliases"))
                if (a == "production") return v.at("version").get<int>();
        return 0;
    };
    expect_error(c.Post("/api/models/deploy", cookie, R"({"name": "smoke", "version": 1})", "application/json"), 403,
                 "csrf");
    {
        const json d =
            body_of(c.Post("/api/models/deploy", with_csrf, R"({"name": "smoke", "version": 1})", "application/json"));
        CHECK(d.at("production") == 1);
        CHECK(d.at("changed") == true);
        CHECK(d.at("reloaded") == true);
        CHECK(d.at("restart_required") == false);
        CHECK(d.at("serving").at("embedder").is_string());
        CHECK(cli_production() == 1);
    }
    {
        const json d =
            body_of(c.Post("/api/models/deploy", with_csrf, R"({"name": "smoke", "version": 2})", "application/json"));
        CHECK(d.at("production") == 2);
        CHECK(d.at("previous") == 1);
        CHECK(cli_production() == 2);
        const json models = body_of(c.Get("/api/models", cookie)).at("models");
        CHECK(models[0].at("production") == 2);
        CHECK(models[0].at("aliases").at("previous") == 1);
    }
    {
        const json d = body_of(c.Post("/api/models/rollback", with_csrf, R"({"name": "smoke"})", "application/json"));
        CHECK(d.at("production") == 1);
        CHECK(cli_production() == 1);
    }
    expect_error(c.Post("/api/models/deploy", with_csrf, R"({"name": "smoke", "version": 9})", "application/json"), 404,
                 "not_found");
    expect_error(c.Post("/api/models/deploy", with_csrf, R"({"name": "nope", "version": 1})", "application/json"), 404,
                 "not_found");
    expect_error(c.Post("/api/models/deploy", with_csrf, R"({"version": 1})", "application/json"), 400,
                 "invalid_input");
    // After the reloads the server still analyses and identifies.
    {
        const auto bytes = read_bytes(lfw_photos("Aaron_Peirsol").at(3));
        const json a = body_of(c.Post(
            "/analyze", {{"X-API-Key", key}},
            httplib::MultipartFormDataItems{{"file", std::string(bytes.begin(), bytes.end()), "c.jpg", "image/jpeg"}}));
        REQUIRE(a.at("faces").size() >= 1);
        CHECK(a.at("faces").at(0).at("identity") == "Aaron_Peirsol");
    }

    // ---- logout ends the session
    {
        auto res = c.Post("/api/logout", with_csrf, "", "application/json");
        REQUIRE(res);
        CHECK(res->status == 204);
        expect_error(c.Get("/api/stats", cookie), 401, "unauthorized");
    }
    CHECK(server.log().find(key) == std::string::npos);
    CHECK(server.log().find(csrf) == std::string::npos);
    CHECK(server.stop(SIGTERM) == 0);
}
