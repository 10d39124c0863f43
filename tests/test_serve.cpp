// tests/test_serve.cpp — `faceq serve` end to end, the equivalent of the
// reference system's test_api.py: the real binary listens on a free port
// (--port 0; the port is read from its log), with a home in a TempDir whose
// models/ is a symlink to the test models, and cpp-httplib's client exercises
// every endpoint on real photos, every error status, the API key (off, from
// FACEQ_API_KEY, from --api-key-file), concurrent requests, a CLI process
// writing the same gallery meanwhile, and graceful stops (SIGTERM, SIGINT ->
// exit 0). Each server start loads the models, so the cases share servers.
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "faceq/http/server.hpp"
#include "http_json.hpp"
#include "serve_process.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

const std::string obama_jpg = "face_recognition_examples/tests/test_images/obama.jpg";
const std::string obama2_jpg = "face_recognition_examples/tests/test_images/obama2.jpg";
const std::string obama_small_jpg = "face_recognition_examples/examples/obama-240p.jpg";  // 427x240
const std::string biden_jpg = "face_recognition_examples/tests/test_images/biden.jpg";
const std::string biden2_jpg = "face_recognition_examples/examples/knn_examples/train/biden/biden2.jpg";
const std::string alex_train_jpg = "face_recognition_examples/examples/knn_examples/train/alex_lacamoire/img1.jpg";
const std::string alex_test_jpg = "face_recognition_examples/examples/knn_examples/test/alex_lacamoire1.jpg";
const std::string dog_jpg = "negatives/clean/dlib_dog.jpg";

std::string photo(const std::string& relative) { return (data_dir() / relative).string(); }

std::unique_ptr<httplib::Client> client(int port) {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_connection_timeout(10, 0);
    c->set_read_timeout(180, 0);  // analyses queue behind each other on a busy 2-core machine
    c->set_write_timeout(60, 0);
    return c;
}

// Polls GET /health until 200; false when the server did not get ready in time.
bool wait_ready(httplib::Client& c, ServeProcess& server, std::chrono::seconds timeout = std::chrono::seconds(180)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && !server.exited()) {
        auto res = c.Get("/health");
        if (res && res->status == 200) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

httplib::MultipartFormDataItems image_form(const std::string& path, const std::string& person = {}) {
    const auto bytes = read_bytes(path);
    httplib::MultipartFormDataItems items{{"file", std::string(bytes.begin(), bytes.end()),
                                           std::filesystem::path(path).filename().string(), "image/jpeg"}};
    if (!person.empty()) items.push_back({"person_name", person, "", ""});
    return items;
}

// The one face of an /analyze answer.
json only_face(const httplib::Result& res) {
    REQUIRE(res);
    INFO("body: " << res->body.substr(0, 2000));
    REQUIRE(res->status == 200);
    const json j = body_of(res);
    CHECK(j.at("success") == true);
    REQUIRE(j.at("faces").size() == 1);
    return j["faces"][0];
}

std::vector<json> json_lines(const std::string& text) {
    std::vector<json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(json::parse(line));
    return out;
}

// Sends raw bytes to the server and returns what it answers (until it closes
// the connection or 10 s pass): for requests no well-behaved client sends.
std::string raw_exchange(int port, const std::string& bytes) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string answer;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        answer = std::string("connect: ") + std::strerror(errno);
    } else {
        // No half-close (shutdown(SHUT_WR)): cpp-httplib takes a readable
        // EOF for a dead peer and would drop the answer. Read one response:
        // its head, then Content-Length bytes.
        (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
            answer.append(buf, static_cast<std::size_t>(n));
            const auto head_end = answer.find("\r\n\r\n");
            if (head_end == std::string::npos) continue;
            std::smatch m;
            const std::string head = answer.substr(0, head_end);
            const std::size_t length =
                std::regex_search(head, m, std::regex(R"(Content-Length: (\d+))", std::regex::icase)) ? std::stoul(m[1])
                                                                                                      : 0;
            if (answer.size() >= head_end + 4 + length) break;
        }
        if (n < 0) answer += std::string("\nrecv: ") + std::strerror(errno);
    }
    ::close(fd);
    UNSCOPED_INFO("raw answer: " << answer.substr(0, 300));
    return answer;
}

const std::regex person_id_re(R"(person_\d+_\d{4})");
const std::regex unknown_id_re(R"(unknown_\d+_\d{4})");

}  // namespace

TEST_CASE("faceq serve: every endpoint, identities, errors, concurrency, SIGTERM", "[serve]") {
    REQUIRE_MODELS();
    ServeHome home;
    ServeProcess server(home.dir.path(), {"--port", "0", "--threads", "12", "-j", "2", "--max-upload-mb", "1"});
    const int port = server.port();
    INFO("server log:\n" << server.log());
    REQUIRE(port > 0);
    auto c = client(port);

    // Listening before the models are loaded: 503 "starting", then 200.
    {
        auto res = c->Get("/health");
        REQUIRE(res);
        CHECK((res->status == 503 || res->status == 200));
        if (res->status == 503) CHECK(body_of(res).at("status") == "starting");
    }
    REQUIRE(wait_ready(*c, server));
    {
        const json h = body_of(c->Get("/health"));
        CHECK(h.at("status") == "ok");
        CHECK(h.at("ready") == true);
        CHECK(h.at("version").is_string());
        CHECK(h.at("models").at("embedder").is_string());
        CHECK(h.at("models").at("detector").is_string());
        CHECK(h.at("database").at("reachable") == true);
    }

    // Another server cannot take the same port.
    {
        ServeHome other;
        ServeProcess clash(other.dir.path(), {"--port", std::to_string(port)});
        CHECK(clash.wait() == 1);
        CHECK(clash.log().find("cannot listen") != std::string::npos);
    }

    // register obama -> analyze another photo of him -> identity.
    std::string obama_id;
    {
        auto res = c->Post("/register", image_form(photo(obama_jpg), "Barack Obama"));
        REQUIRE(res);
        INFO("body: " << res->body);
        REQUIRE(res->status == 200);
        const json j = body_of(res);
        CHECK(j.at("success") == true);
        CHECK(j.at("person_name") == "Barack Obama");
        CHECK(j.at("created") == true);
        CHECK(j.at("added") == 1);
        obama_id = j.at("person_id");
        CHECK(std::regex_match(obama_id, person_id_re));
    }
    {
        auto res = c->Post("/analyze", image_form(photo(obama2_jpg)));
        const json face = only_face(res);
        CHECK(face.at("identity") == "Barack Obama");
        CHECK(face.at("person_id") == obama_id);
        CHECK(face.at("decision") == "known");
        for (const char* key : {"x", "y", "width", "height"}) CHECK(face.at("bbox").at(key).is_number_integer());
        CHECK(face.at("confidence").get<double>() > 0.5);
        CHECK(face.at("gender") == "male");
        CHECK(face.at("gender_confidence").is_number());
        CHECK(face.contains("age"));
        const json j = body_of(res);
        CHECK(j.at("message") == "Successfully analyzed 1 face(s)");
        CHECK(j.at("stored") == true);
        CHECK(j.at("models").at("embedder").is_string());
        // The stored detection, for "not this person" (faceq persons reject).
        CHECK(face.at("detection_id").get<std::int64_t>() > 0);
    }

    // A stranger gets a stable unknown_<ts>_<4 digits> id across photos.
    {
        const json first = only_face(c->Post("/analyze", image_form(photo(biden_jpg))));
        CHECK(first.at("identity") == "unknown");
        const std::string id = first.at("person_id");
        CHECK(std::regex_match(id, unknown_id_re));
        const json second = only_face(c->Post("/analyze", image_form(photo(biden2_jpg))));
        CHECK(second.at("identity") == "unknown");
        CHECK(second.at("person_id") == id);
    }

    // A CLI process enrolls into the same gallery while the server runs; the
    // server sees the new person at once.
    {
        const auto enrolled =
            run_faceq({"--home", home.root(), "enroll", "--name", "Alex Lacamoire", photo(alex_train_jpg)});
        INFO("enroll stderr: " << enrolled.err);
        REQUIRE(enrolled.exit_code == 0);
        const json face = only_face(c->Post("/analyze", image_form(photo(alex_test_jpg))));
        CHECK(face.at("identity") == "Alex Lacamoire");
    }

    // /stats and /search say what the CLI commands say.
    {
        json api = body_of(c->Get("/stats"));
        CHECK(api.at("success") == true);
        CHECK(api.at("persons").at("known") == 2);
        CHECK(api.at("persons").at("unknown") == 1);
        const auto cli = run_faceq({"--home", home.root(), "stats", "--format", "json"});
        REQUIRE(cli.exit_code == 0);
        json expected = json::parse(cli.out);
        CHECK(expected.at("type") == "stats");
        expected.erase("type");  // the CLI's record stream names each record's kind; the API answers one thing
        api.erase("success");
        for (json* j : {&api, &expected}) j->at("database").erase("bytes");  // the WAL grows between the two
        CHECK(api == expected);
    }
    {
        const json api = body_of(c->Get("/search?name=OBAMA"));
        CHECK(api.at("success") == true);
        CHECK(api.at("count") == 1);
        const auto cli = run_faceq({"--home", home.root(), "search", "--name", "OBAMA"});
        REQUIRE(cli.exit_code == 0);
        json persons = json(json_lines(cli.out));
        for (auto& p : persons) {
            CHECK(p.at("type") == "person");
            p.erase("type");
        }
        CHECK(api.at("persons") == persons);
        CHECK(api.at("persons").at(0).at("person_id") == obama_id);
        CHECK(body_of(c->Get("/search?name=")).at("count") == 3);  // everyone, strangers included
        CHECK(body_of(c->Get("/search?name=nobody%20here")).at("count") == 0);
        expect_error(c->Get("/search"), 400, "invalid_input");
    }

    // Every error status, as JSON.
    {
        expect_error(c->Post("/analyze", httplib::MultipartFormDataItems{{"other", "x", "", ""}}), 400,
                     "invalid_input");
        expect_error(c->Post("/analyze", httplib::MultipartFormDataItems{{"file", "plain text, not an image", "a.jpg",
                                                                          "image/jpeg"}}),
                     400, "invalid_input");
        std::string big(2 << 20, '\0');
        std::mt19937 rng(5);
        for (auto& ch : big) ch = static_cast<char>(rng());
        expect_error(c->Post("/analyze", httplib::MultipartFormDataItems{{"file", big, "big.jpg", "image/jpeg"}}), 413,
                     "too_large");
        expect_error(c->Post("/analyze", "{\"file\": 1}", "application/json"), 415, "unsupported_media_type");
        expect_error(c->Get("/no/such/route"), 404, "route_not_found");
        expect_error(c->Get("/analyze"), 405, "method_not_allowed");
        {
            const auto jpeg = read_bytes(photo(obama_small_jpg));
            const std::string half(jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() / 2));
            expect_error(c->Post("/analyze", httplib::MultipartFormDataItems{{"file", half, "half.jpg", "image/jpeg"}}),
                         400, "invalid_input");
        }
        // Bytes no client should send: the server answers 400 and stays up.
        CHECK(raw_exchange(port, "NOT HTTP AT ALL\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
        CHECK(raw_exchange(port, std::string("\x00\xff\x13garbage", 10) + "\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
        const std::string parts = "--xyz\r\nnot a part\r\n";  // not the announced boundary
        const std::string broken_multipart =
            "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=abc\r\n"
            "Content-Length: " +
            std::to_string(parts.size()) + "\r\nConnection: close\r\n\r\n" + parts;
        CHECK(raw_exchange(port, broken_multipart).rfind("HTTP/1.1 400", 0) == 0);
        CHECK(raw_exchange(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                  .rfind("HTTP/1.1 200", 0) == 0);
        expect_error(c->Post("/register", image_form(photo(dog_jpg), "A Dog")), 400, "invalid_input");
        expect_error(c->Post("/register", image_form(photo(obama2_jpg))), 400, "invalid_input");  // no person_name
        expect_error(c->Post("/register", image_form(photo(obama2_jpg), "unknown_1_2345")), 400, "usage");
        expect_error(c->Post("/register", image_form(photo(obama_jpg), "Somebody Else")), 409, "conflict");
        // Registering the same photo for the same person again changes nothing.
        const json again = body_of(c->Post("/register", image_form(photo(obama_jpg), "barack obama")));
        CHECK(again.at("added") == 0);
        CHECK(again.at("person_id") == obama_id);
    }

    // Concurrent requests: 8 clients x 3 analyses (and health checks), all 200.
    {
        std::atomic<int> ok{0}, failed{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t)
            threads.emplace_back([&, t] {
                auto mine = client(port);
                for (int i = 0; i < 3; ++i) {
                    auto res = mine->Post("/analyze", image_form(photo(obama_small_jpg)));
                    const bool good = res && res->status == 200 && json::accept(res->body) &&
                                      json::parse(res->body).at("faces").size() == 1 &&
                                      json::parse(res->body)["faces"][0].at("identity") == "Barack Obama";
                    (good ? ok : failed)++;
                    auto h = mine->Get("/health");
                    ((h && h->status == 200) ? ok : failed)++;
                }
                (void)t;
            });
        for (auto& th : threads) th.join();
        CHECK(failed == 0);
        CHECK(ok == 48);
        CHECK(c->Get("/health")->status == 200);
    }

    // Prometheus metrics count what happened.
    {
        auto res = c->Get("/metrics");
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(res->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
        const std::string& m = res->body;
        CHECK(m.find("faceq_http_requests_total{route=\"/analyze\",method=\"POST\",status=\"200\"}") !=
              std::string::npos);
        CHECK(m.find("faceq_http_requests_total{route=\"/analyze\",method=\"POST\",status=\"413\"} 1") !=
              std::string::npos);
        CHECK(m.find("faceq_http_requests_total{route=\"other\",method=\"GET\",status=\"404\"} 1") !=
              std::string::npos);
        CHECK(m.find("faceq_http_request_duration_seconds_bucket{route=\"/analyze\",le=\"+Inf\"}") !=
              std::string::npos);
        CHECK(m.find("faceq_faces_analyzed_total ") != std::string::npos);
        CHECK(m.find("faceq_gallery_persons{kind=\"known\"} 2") != std::string::npos);
    }

    // Access log: method, path, status, ms; no query strings (names), no bytes.
    const std::string log = server.log();
    CHECK(std::regex_search(log, std::regex(R"(POST /analyze 200 [0-9.]+ms)")));
    CHECK(std::regex_search(log, std::regex(R"(GET /search 200 [0-9.]+ms)")));
    CHECK(log.find("OBAMA") == std::string::npos);

    CHECK(server.stop(SIGTERM) == 0);
    CHECK(server.log().find("stopped") != std::string::npos);
    CHECK(server.out().empty());
}

TEST_CASE("faceq serve: FACEQ_API_KEY guards every route but /health; SIGINT", "[serve]") {
    REQUIRE_MODELS();
    ServeHome home;
    const std::string key = "k3y-for-tests_0123456789";
    ServeProcess server(home.dir.path(), {"--port", "0"}, {"FACEQ_API_KEY=" + key});
    const int port = server.port();
    INFO("server log:\n" << server.log());
    REQUIRE(port > 0);
    auto c = client(port);
    REQUIRE(wait_ready(*c, server));

    CHECK(c->Get("/health")->status == 200);
    {
        auto res = c->Get("/stats");
        expect_error(res, 401, "unauthorized");
        CHECK(res->get_header_value("WWW-Authenticate").rfind("Bearer", 0) == 0);
    }
    expect_error(c->Get("/stats", {{"Authorization", "Bearer wrong"}}), 401, "unauthorized");
    expect_error(c->Get("/stats", {{"Authorization", "Bearer " + key + "x"}}), 401, "unauthorized");
    expect_error(c->Get("/stats", {{"X-API-Key", key.substr(1)}}), 401, "unauthorized");
    expect_error(c->Get("/metrics"), 401, "unauthorized");
    expect_error(c->Get("/no/such/route"), 401, "unauthorized");
    expect_error(c->Post("/analyze", image_form(photo(obama_small_jpg))), 401, "unauthorized");

    CHECK(c->Get("/stats", {{"Authorization", "Bearer " + key}})->status == 200);
    CHECK(c->Get("/stats", {{"authorization", "bearer " + key}})->status == 200);
    CHECK(c->Get("/search?name=", {{"X-API-Key", key}})->status == 200);
    CHECK(c->Get("/metrics", {{"X-API-Key", key}})->status == 200);
    expect_error(c->Get("/no/such/route", {{"X-API-Key", key}}), 404, "route_not_found");
    {
        auto res = c->Post("/analyze", {{"Authorization", "Bearer " + key}}, image_form(photo(obama_small_jpg)));
        REQUIRE(res);
        CHECK(res->status == 200);
    }
    // After a refused upload the connection still works (the body was consumed).
    expect_error(c->Post("/analyze", image_form(photo(obama_small_jpg))), 401, "unauthorized");
    CHECK(c->Get("/stats", {{"X-API-Key", key}})->status == 200);
    CHECK(server.log().find(key) == std::string::npos);

    CHECK(server.stop(SIGINT) == 0);
}

TEST_CASE("faceq serve: --api-key-file wins over FACEQ_API_KEY; bad keys and homes", "[serve]") {
    REQUIRE_MODELS();
    ServeHome home;
    SECTION("a missing or empty key file is a usage error") {
        CHECK(run_faceq({"--home", home.root(), "serve", "--port", "0", "--api-key-file", home.root() + "/nope"})
                  .exit_code == 2);
        write_text(home.dir / "empty.key", "\n");
        const auto r =
            run_faceq({"--home", home.root(), "serve", "--port", "0", "--api-key-file", home.root() + "/empty.key"});
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("empty") != std::string::npos);
    }
    SECTION("a home without models: listens, then exits 1 naming the missing model") {
        TempDir bare;
        const auto r =
            run_faceq({"--home", bare.path().string(), "serve", "--port", "0"}, {}, {}, std::chrono::seconds(60));
        CHECK(r.exit_code == 1);
        CHECK(r.err.find("listening on") != std::string::npos);
        CHECK(r.err.find("faceq download models") != std::string::npos);
    }
    SECTION("the key file's key, not the variable's") {
        write_text(home.dir / "api.key", "from-the-file\n");
        std::filesystem::permissions(home.dir / "api.key",
                                     std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        ServeProcess server(home.dir.path(), {"--port", "0", "--api-key-file", (home.dir / "api.key").string()},
                            {"FACEQ_API_KEY=from-the-variable"});
        const int port = server.port();
        INFO("server log:\n" << server.log());
        REQUIRE(port > 0);
        auto c = client(port);
        REQUIRE(wait_ready(*c, server));
        CHECK(c->Get("/stats", {{"X-API-Key", "from-the-variable"}})->status == 401);
        CHECK(c->Get("/stats", {{"X-API-Key", "from-the-file"}})->status == 200);
        CHECK(server.stop(SIGTERM) == 0);
    }
}

// The library layer on its own, without models or sockets: routing, the
// states before start(), the key check, the error shapes.
TEST_CASE("faceq serve: the deployed age/gender head gives ages and names its version", "[serve][training]") {
    REQUIRE_MODELS();
    ServeHome home;
    // A small real head: 150 UTKFace faces through the CLI, as a user would.
    const auto cli = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--home", home.root()});
        auto r = run_faceq(args, {}, {"FACEQ_MIRROR=" + mirror_dir().string()}, std::chrono::minutes(5));
        INFO("faceq " << args[2] << ": " << r.err);
        REQUIRE(r.exit_code == 0);
    };
    cli({"download", "dataset", "utkface", "--limit", "150"});
    cli({"prepare", "utkface", "--jobs", "2"});
    cli({"train", "age-gender"});
    cli({"register-model", "--name", "age-gender"});

    // The server starts without a head; deploying through its API reloads the
    // models, and the next analyses have ages (no restart).
    ServeProcess server(home.dir.path(), {"--port", "0", "-j", "1"});
    const int port = server.port();
    INFO("server log:\n" << server.log());
    REQUIRE(port > 0);
    auto c = client(port);
    REQUIRE(wait_ready(*c, server));
    CHECK(body_of(c->Get("/health")).at("models").at("age").is_null());
    CHECK(only_face(c->Post("/analyze", image_form(photo(obama_jpg)))).at("age").is_null());
    {
        const std::string csrf = body_of(c->Get("/api/session")).at("csrf_token");
        const json d = body_of(c->Post("/api/models/deploy", {{"X-CSRF-Token", csrf}},
                                       R"({"name": "age-gender", "version": 1})", "application/json"));
        CHECK(d.at("production") == 1);
        CHECK(d.at("reloaded") == true);
        CHECK(d.at("restart_required") == false);
        CHECK(d.at("serving").at("age").get<std::string>().rfind("age-gender@1:", 0) == 0);
    }
    const json h = body_of(c->Get("/health"));
    const std::string age_model = h.at("models").at("age").get<std::string>();
    CHECK(std::regex_match(age_model, std::regex(R"(age-gender@1:[0-9a-f]{12})")));

    // Obama was 47 in this photo (2008); a head on 150 faces is rough, so the
    // bound is loose, but a number in it means the head ran on this face.
    const json face = only_face(c->Post("/analyze", image_form(photo(obama_jpg))));
    REQUIRE(face.at("age").is_number());
    CHECK(face.at("age").get<double>() > 20);
    CHECK(face.at("age").get<double>() < 80);
    CHECK(face.at("gender") == "male");
    CHECK(server.stop(SIGTERM) == 0);
}
