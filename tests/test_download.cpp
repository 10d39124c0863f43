// tests/test_download.cpp — the model manifest, fetching (local HTTP servers
// on 127.0.0.1 that serve the mirror's files correctly, corrupted, with and
// without Range support), installing from ../shared/mirror, the file: source,
// and the `faceq download models` command. No test touches the internet: every
// manifest entry used here either sits in the local mirror or points at a
// local server. Models are small (< 1 MB .bz2); the ResNet is not converted.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/download.hpp"
#include "faceq/models/models.hpp"
#include "test_models.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using faceq::test::TempDir;

namespace {

const char* const detector = "mmod_human_face_detector";
const char* const gender = "dnn_gender_classifier_v1";
const char* const predictor_68 = "shape_predictor_68_face_landmarks";
const fs::path debian_predictor_68 = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";

fs::path manifest_path() { return fs::path(FACEQ_SOURCE_DIR) / "data" / "models.json"; }
fs::path mirror_dir() { return faceq::test::shared_dir() / "mirror"; }

bool mirror_available() {
    std::error_code ec;
    return fs::is_regular_file(mirror_dir() / "mmod_human_face_detector.dat.bz2", ec) &&
           fs::is_regular_file(mirror_dir() / "dnn_gender_classifier_v1.dat.bz2", ec);
}

#define REQUIRE_MIRROR()                                                                             \
    REQUIRE_DATA(mirror_available(), "the dlib-models .bz2 files of the model mirror", mirror_dir(), \
                 faceq::test::model_mirror_source)

std::string read_string(const fs::path& p) {
    const auto bytes = faceq::test::read_bytes(p);
    return std::string(bytes.begin(), bytes.end());
}

// Everything in a directory except the installed models and their sidecars:
// what a failed or finished install must not leave behind.
std::vector<std::string> leftovers(const fs::path& dir, const std::vector<std::string>& expected) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (std::find(expected.begin(), expected.end(), name) == expected.end()) out.push_back(name);
    }
    return out;
}

faceq::FetchOptions quick_fetch() {
    faceq::FetchOptions o;
    o.connect_timeout_s = 3;
    o.low_speed_time_s = 5;
    o.retries = 2;
    o.retry_delay_ms = 10;
    return o;
}

// A port on 127.0.0.1 that nothing listens on: bound once by us, then closed.
int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    ::close(fd);
    REQUIRE(ok);
    return ntohs(addr.sin_port);
}

// An HTTP server on 127.0.0.1 serving files from memory, in its own thread.
class FileServer {
public:
    enum class Mode {
        normal,        // byte ranges supported (httplib does them)
        wrong_bytes,   // same length, one byte flipped
        ignore_range,  // answers every request with 200 and the whole file
    };

    FileServer(std::map<std::string, std::string> files, Mode mode) : files_(std::move(files)), mode_(mode) {
        server_.Get(R"(/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                range_headers_.push_back(req.get_header_value("Range"));
            }
            const auto it = files_.find(req.matches[1].str());
            if (it == files_.end()) {
                res.status = 404;
                return;
            }
            std::string body = it->second;
            if (mode_ == Mode::wrong_bytes && !body.empty()) body[body.size() / 2] ^= 0x5a;
            // httplib slices the body by the parsed Range after the handler
            // returns; an old server that knows no Range is simulated by
            // dropping what httplib parsed.
            if (mode_ == Mode::ignore_range) const_cast<httplib::Request&>(req).ranges.clear();
            res.set_content(body, "application/octet-stream");
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        REQUIRE(port_ > 0);
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!server_.is_running() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        REQUIRE(server_.is_running());
    }
    ~FileServer() {
        server_.stop();
        if (thread_.joinable()) thread_.join();
    }
    FileServer(const FileServer&) = delete;
    FileServer& operator=(const FileServer&) = delete;

    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::string url(const std::string& file) const { return base_url() + "/" + file; }
    // The Range header of every request so far ("" when there was none).
    std::vector<std::string> range_headers() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return range_headers_;
    }

private:
    std::map<std::string, std::string> files_;
    Mode mode_;
    httplib::Server server_;
    int port_ = -1;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<std::string> range_headers_;
};

std::map<std::string, std::string> mirror_files() {
    std::map<std::string, std::string> files;
    for (const char* name : {"mmod_human_face_detector.dat.bz2", "dnn_gender_classifier_v1.dat.bz2"})
        files[name] = read_string(mirror_dir() / name);
    return files;
}

// A one-entry manifest whose upstream is `url`, otherwise the real detector entry.
faceq::Manifest detector_manifest_at(const std::string& url) {
    const auto real = faceq::load_manifest(manifest_path());
    const faceq::ModelEntry* e = real.find(detector);
    REQUIRE(e != nullptr);
    faceq::Manifest m;
    m.models.push_back(*e);
    m.models.back().url = url;
    return m;
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
    std::vector<nlohmann::json> records;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) records.push_back(nlohmann::json::parse(line));
    return records;
}

// The child gets no FACEQ_* settings from whoever runs the tests.
const std::vector<std::string> clean_env{"FACEQ_MIRROR", "FACEQ_HOME", "FACEQ_DATA_DIR", "NO_COLOR=1"};

}  // namespace

TEST_CASE("the manifest lists every role with well-formed checksums", "[download]") {
    const faceq::Manifest manifest = faceq::load_manifest(manifest_path());
    REQUIRE(manifest.models.size() >= 4);
    for (const char* r :
         {faceq::role::detector_cnn, faceq::role::landmarks, faceq::role::embedder, faceq::role::gender}) {
        INFO("role " << r);
        const auto entries = manifest.by_role(r);
        REQUIRE_FALSE(entries.empty());
        for (std::size_t i = 1; i < entries.size(); ++i) CHECK(entries[i - 1]->priority < entries[i]->priority);
    }
    for (const auto& m : manifest.models) {
        INFO("model " << m.name);
        CHECK((m.sha256.empty() ||
               (m.sha256.size() == 64 && m.sha256.find_first_not_of("0123456789abcdef") == std::string::npos)));
        CHECK(manifest.find(m.name) == &m);
        CHECK_FALSE(m.license.empty());
    }
    // Preferred first: the public-domain predictor before Debian's non-commercial one.
    CHECK(manifest.by_role(faceq::role::landmarks).front()->name == "shape_predictor_5_face_landmarks");
    CHECK(manifest.by_role(faceq::role::embedder).front()->name == "dlib_face_recognition_resnet_model_v1");
    CHECK(manifest.find("no_such_model") == nullptr);
}

TEST_CASE("a malformed manifest is refused with its path in the message", "[download]") {
    TempDir dir;
    const fs::path path = dir / "models.json";
    const auto load_error = [&](const std::string& text) {
        faceq::test::write_text(path, text);
        try {
            faceq::load_manifest(path);
        } catch (const faceq::Error& e) {
            CHECK(e.kind() == faceq::ErrorKind::invalid_input);
            CHECK_THAT(e.what(), Catch::Contains(path.string()));
            return std::string(e.what());
        }
        FAIL("no error for: " << text);
        return std::string();
    };
    const std::string good_entry =
        R"({"name":"m","role":"gender","priority":1,"file":"m.dat","source_file":"m.dat.bz2",)"
        R"("url":"https://example.invalid/m.dat.bz2","sha256":"","size":0,"license":"CC0","unpack":"bz2"})";
    faceq::test::write_text(path, R"({"schema":1,"models":[)" + good_entry + "]}");
    CHECK(faceq::load_manifest(path).models.size() == 1);

    CHECK_THAT(load_error("{not json"), Catch::Contains("not valid JSON"));
    // fuzz/fuzz_manifest.cpp's first crash: nlohmann-json reports a number
    // beyond double's range as out_of_range, not parse_error, and it escaped.
    CHECK_THAT(load_error(R"({"models": [3e643935]})"), Catch::Contains("number overflow"));
    CHECK_THAT(load_error(R"({"models":{}})"), Catch::Contains("'models' array"));
    std::string bad = good_entry;
    bad.replace(bad.find(R"("sha256":"")"), 11, R"("sha256":"abc")");
    CHECK_THAT(load_error(R"({"models":[)" + bad + "]}"), Catch::Contains("sha256"));
    bad = good_entry;
    bad.replace(bad.find("gender"), 6, "eyes");
    CHECK_THAT(load_error(R"({"models":[)" + bad + "]}"), Catch::Contains("unknown role 'eyes'"));
    bad = good_entry;
    bad.replace(bad.find("m.dat\""), 6, "../x\"");
    CHECK_THAT(load_error(R"({"models":[)" + bad + "]}"), Catch::Contains("plain file name"));
    CHECK_THAT(load_error(R"({"models":[)" + good_entry + "," + good_entry + "]}"), Catch::Contains("duplicate"));

    try {
        faceq::load_manifest(dir / "missing.json");
        FAIL("no error for a missing manifest");
    } catch (const faceq::Error& e) {
        CHECK(e.kind() == faceq::ErrorKind::not_found);
    }
}

TEST_CASE("models install from a local mirror directory, once", "[download]") {
    REQUIRE_MIRROR();
    const faceq::Manifest manifest = faceq::load_manifest(manifest_path());
    TempDir home;
    const fs::path models = home / "models";
    faceq::DownloadOptions options;
    options.mirror = mirror_dir().string();
    options.only = {detector, gender};

    const auto first = faceq::install_models(manifest, models, options);
    REQUIRE(first.size() == 2);
    for (const auto& r : first) {
        INFO(r.name << ": " << r.message);
        CHECK(r.status == "installed");
        CHECK_THAT(r.source, Catch::StartsWith(mirror_dir().string()));
        const auto installed = faceq::read_installed(models, *manifest.find(r.name));
        REQUIRE(installed);
        CHECK(installed->sha256 == faceq::sha256_file(installed->path));
        CHECK(installed->version() == r.name + "@" + installed->sha256.substr(0, 12));
        CHECK(installed->entry.sha256 == manifest.find(r.name)->sha256);
        CHECK_FALSE(installed->installed_at.empty());
    }
    CHECK(leftovers(models, {"mmod_human_face_detector.dat", "mmod_human_face_detector.dat.json",
                             "dnn_gender_classifier_v1.dat", "dnn_gender_classifier_v1.dat.json"})
              .empty());
    const auto detector_file = models / "mmod_human_face_detector.dat";
    const auto mtime = fs::last_write_time(detector_file);

    const auto again = faceq::install_models(manifest, models, options);
    REQUIRE(again.size() == 2);
    for (const auto& r : again) CHECK(r.status == "already installed");
    CHECK(fs::last_write_time(detector_file) == mtime);

    const auto found = faceq::find_installed(models, manifest, faceq::role::detector_cnn);
    REQUIRE(found);
    CHECK(found->entry.name == detector);
    CHECK_FALSE(faceq::find_installed(models, manifest, faceq::role::embedder));
    CHECK_THROWS_MATCHES(
        faceq::require_installed(models, manifest, faceq::role::embedder), faceq::Error,
        Catch::Predicate<faceq::Error>([](const faceq::Error& e) { return e.kind() == faceq::ErrorKind::model; }));

    options.only = {"no_such_model"};
    CHECK_THROWS_MATCHES(
        faceq::install_models(manifest, models, options), faceq::Error,
        Catch::Predicate<faceq::Error>([](const faceq::Error& e) { return e.kind() == faceq::ErrorKind::usage; }));
}

TEST_CASE("models download over HTTP from a mirror URL", "[download]") {
    REQUIRE_MIRROR();
    FileServer server(mirror_files(), FileServer::Mode::normal);
    const faceq::Manifest manifest = faceq::load_manifest(manifest_path());
    TempDir home;
    const fs::path models = home / "models";
    faceq::DownloadOptions options;
    options.mirror = server.base_url() + "/";
    options.only = {detector};
    std::uint64_t last_done = 0, last_total = 0;
    options.fetch = quick_fetch();
    options.fetch.progress = [&](const faceq::Progress& p) {
        last_done = p.done;
        last_total = p.total;
    };

    const auto results = faceq::install_models(manifest, models, options);
    REQUIRE(results.size() == 1);
    INFO(results[0].message);
    CHECK(results[0].status == "installed");
    CHECK(results[0].source == server.url("mmod_human_face_detector.dat.bz2"));
    CHECK(last_total == manifest.find(detector)->size);
    CHECK(last_done == last_total);
    const auto installed = faceq::read_installed(models, *manifest.find(detector));
    REQUIRE(installed);
    CHECK(installed->sha256 == faceq::sha256_file(models / "mmod_human_face_detector.dat"));
    CHECK(leftovers(models, {"mmod_human_face_detector.dat", "mmod_human_face_detector.dat.json"}).empty());
}

TEST_CASE("a server sending the wrong bytes installs nothing", "[download]") {
    REQUIRE_MIRROR();
    FileServer server(mirror_files(), FileServer::Mode::wrong_bytes);
    const faceq::Manifest manifest = detector_manifest_at(server.url("mmod_human_face_detector.dat.bz2"));
    TempDir home;
    const fs::path models = home / "models";
    faceq::DownloadOptions options;
    options.fetch = quick_fetch();

    std::string bad = mirror_files()["mmod_human_face_detector.dat.bz2"];
    bad[bad.size() / 2] ^= 0x5a;
    const auto results = faceq::install_models(manifest, models, options);
    REQUIRE(results.size() == 1);
    CHECK(results[0].status == "failed");
    // The checksum error names the file, the expected and the actual sum.
    CHECK_THAT(results[0].message, Catch::Contains("checksum mismatch") &&
                                       Catch::Contains("mmod_human_face_detector.dat.bz2") &&
                                       Catch::Contains(manifest.models[0].sha256) &&
                                       Catch::Contains(faceq::sha256_hex(bad.data(), bad.size())));
    CHECK_FALSE(faceq::read_installed(models, manifest.models[0]));
    CHECK(leftovers(models, {}).empty());
}

TEST_CASE("fetch_file over HTTP: resume, Range-ignoring servers, unreachable hosts, 404", "[download]") {
    REQUIRE_MIRROR();
    const std::string name = "mmod_human_face_detector.dat.bz2";
    const std::string full = mirror_files()[name];
    const std::string full_sha = faceq::sha256_hex(full.data(), full.size());
    TempDir dir;
    const fs::path dest = dir / name;
    const fs::path part = dir / (name + ".part");

    SECTION("a partial download resumes with a Range request") {
        FileServer server(mirror_files(), FileServer::Mode::normal);
        const std::size_t half = full.size() / 2;
        faceq::test::write_bytes(part, full.data(), half);
        faceq::fetch_file(server.url(name), dest, quick_fetch());
        CHECK(faceq::sha256_file(dest) == full_sha);
        CHECK_FALSE(fs::exists(part));
        const auto ranges = server.range_headers();
        REQUIRE(ranges.size() == 1);
        CHECK(ranges[0] == "bytes=" + std::to_string(half) + "-");
    }
    SECTION("a server that ignores Range still yields the right file") {
        FileServer server(mirror_files(), FileServer::Mode::ignore_range);
        faceq::test::write_bytes(part, full.data(), full.size() / 3);
        faceq::fetch_file(server.url(name), dest, quick_fetch());
        CHECK(faceq::sha256_file(dest) == full_sha);
        CHECK_FALSE(fs::exists(part));
        const auto ranges = server.range_headers();
        REQUIRE(ranges.size() == 2);
        CHECK_FALSE(ranges[0].empty());  // tried to resume ...
        CHECK(ranges[1].empty());        // ... then started over
    }
    SECTION("an unreachable host fails quickly with a network error naming the URL") {
        const std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/" + name;
        const auto start = std::chrono::steady_clock::now();
        try {
            faceq::fetch_file(url, dest, quick_fetch());
            FAIL("no error for an unreachable host");
        } catch (const faceq::Error& e) {
            CHECK(e.kind() == faceq::ErrorKind::network);
            CHECK_THAT(e.what(), Catch::Contains(url));
        }
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
        CHECK_FALSE(fs::exists(dest));
        CHECK_FALSE(fs::exists(part));
    }
    SECTION("HTTP 404 is a network error") {
        FileServer server(mirror_files(), FileServer::Mode::normal);
        const std::string url = server.url("no_such_file.bz2");
        try {
            faceq::fetch_file(url, dest, quick_fetch());
            FAIL("no error for a 404");
        } catch (const faceq::Error& e) {
            CHECK(e.kind() == faceq::ErrorKind::network);
            CHECK_THAT(e.what(), Catch::Contains(url) && Catch::Contains("404"));
        }
        CHECK(server.range_headers().size() == 1);  // a 404 is not retried
        CHECK_FALSE(fs::exists(dest));
        CHECK_FALSE(fs::exists(part));
    }
}

TEST_CASE("the 68-point predictor installs from Debian's file", "[download]") {
    std::error_code ec;
    REQUIRE_DATA(fs::is_regular_file(debian_predictor_68, ec), "dlib's 68-point landmark predictor",
                 debian_predictor_68, "the Debian package libdlib-data (tools/setup.sh installs it)");
    const faceq::Manifest manifest = faceq::load_manifest(manifest_path());
    const faceq::ModelEntry* entry = manifest.find(predictor_68);
    REQUIRE(entry != nullptr);
    CHECK(entry->url == "file:" + debian_predictor_68.string());
    TempDir home;
    const fs::path models = home / "models";
    faceq::DownloadOptions options;
    options.only = {predictor_68};
    const auto results = faceq::install_models(manifest, models, options);
    REQUIRE(results.size() == 1);
    INFO(results[0].message);
    CHECK(results[0].status == "installed");
    const auto installed = faceq::read_installed(models, *entry);
    REQUIRE(installed);
    CHECK(installed->sha256 == entry->sha256);  // unpack "none": the installed file is the fetched one
    CHECK(fs::file_size(installed->path) == entry->size);
}

TEST_CASE("faceq download models: --list, install from a mirror, unknown --only", "[download]") {
    TempDir home;
    const std::string home_arg = home.path().string();

    SECTION("--list prints every model") {
        const auto table = faceq::test::run_faceq({"--home", home_arg, "download", "models", "--list"}, {}, clean_env);
        INFO(table.err);
        REQUIRE(table.exit_code == 0);
        CHECK_THAT(table.out, Catch::StartsWith("NAME"));
        const auto json = faceq::test::run_faceq(
            {"--home", home_arg, "download", "models", "--list", "--format", "json"}, {}, clean_env);
        REQUIRE(json.exit_code == 0);
        const auto records = json_lines(json.out);
        const auto manifest = faceq::load_manifest(manifest_path());
        REQUIRE(records.size() == manifest.models.size());
        for (const auto& r : records) {
            CHECK(manifest.find(r.at("name").get<std::string>()) != nullptr);
            CHECK_THAT(table.out, Catch::Contains(r.at("name").get<std::string>()));
            CHECK(r.at("installed") == false);
            CHECK(r.contains("license"));
            CHECK(r.contains("source"));
        }
    }
    SECTION("--mirror --only installs one model, then finds it installed") {
        REQUIRE_MIRROR();
        const std::vector<std::string> args{"--home", home_arg, "download", "models", "--mirror", mirror_dir().string(),
                                            "--only", detector};
        const auto first = faceq::test::run_faceq(args, {}, clean_env);
        INFO(first.err);
        REQUIRE(first.exit_code == 0);
        auto records = json_lines(first.out);
        REQUIRE(records.size() == 1);
        CHECK(records[0].at("name") == detector);
        CHECK(records[0].at("status") == "installed");
        CHECK_THAT(records[0].at("version").get<std::string>(), Catch::StartsWith(std::string(detector) + "@"));
        CHECK_THAT(first.err, Catch::Contains("installed"));

        const auto second = faceq::test::run_faceq(args, {}, clean_env);
        REQUIRE(second.exit_code == 0);
        records = json_lines(second.out);
        REQUIRE(records.size() == 1);
        CHECK(records[0].at("status") == "already installed");
        CHECK_THAT(second.err, Catch::Contains("already installed"));

        const auto listed = faceq::test::run_faceq(
            {"--home", home_arg, "download", "models", "--list", "--format", "json", "--only", detector}, {},
            clean_env);
        REQUIRE(listed.exit_code == 0);
        records = json_lines(listed.out);
        REQUIRE(records.size() == 1);
        CHECK(records[0].at("installed") == true);
    }
    SECTION("an unknown --only name is a usage error") {
        const auto r = faceq::test::run_faceq({"--home", home_arg, "download", "models", "--only", "no_such_model"}, {},
                                              clean_env);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK_THAT(r.err, Catch::StartsWith("faceq: error: unknown model 'no_such_model'"));
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
}

namespace {

// The installed models of the test home copied into `models`, the fast-load
// caches with them and every modification time kept, so that the caches stay
// valid for the copies (they are keyed by the .dat's size and mtime).
void copy_installed_models(const fs::path& from, const fs::path& models) {
    fs::create_directories(models);
    for (const auto& e : fs::directory_iterator(from)) {
        if (!e.is_regular_file() || e.path().extension() == ".verified") continue;
        const fs::path to = models / e.path().filename();
        fs::copy_file(e.path(), to);
        fs::last_write_time(to, fs::last_write_time(e.path()));
    }
}

// Flips `count` bytes in the middle of `file` in place, then puts its
// modification time back: size and mtime say nothing changed.
void flip_in_place(const fs::path& file, std::size_t count) {
    const auto mtime = fs::last_write_time(file);
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    const auto at = static_cast<std::streamoff>(fs::file_size(file) / 2);
    std::vector<char> bytes(count);
    f.seekg(at);
    f.read(bytes.data(), static_cast<std::streamsize>(count));
    for (char& c : bytes) c = static_cast<char>(~c);
    f.seekp(at);
    f.write(bytes.data(), static_cast<std::streamsize>(count));
    f.close();
    fs::last_write_time(file, mtime);
}

}  // namespace

TEST_CASE("a damaged model is never used, and `download models` repairs it", "[download][verify]") {
    REQUIRE_MIRROR();
    const faceq::Home& installed = faceq::test::test_home();
    TempDir home;
    const fs::path models = home.path() / "models";
    copy_installed_models(installed.models_dir(), models);
    const fs::path resnet = models / "faceapi_resnet_v1.dat";
    REQUIRE(fs::exists(resnet));
    REQUIRE(fs::exists(models / ".faceapi_resnet_v1.dat.fastload"));
    const std::string photo =
        (faceq::test::data_dir() / "face_recognition_examples/tests/test_images/obama.jpg").string();
    const std::vector<std::string> analyze{"--home", home.path().string(), "analyze", "--embeddings", photo};

    const auto good = faceq::test::run_faceq(analyze, {}, clean_env);
    INFO(good.err);
    REQUIRE(good.exit_code == 0);
    CHECK(fs::exists(models / ".faceapi_resnet_v1.dat.verified"));  // hashed once, stamped

    const auto size = fs::file_size(resnet);
    const auto mtime = fs::last_write_time(resnet);
    flip_in_place(resnet, 4096);
    REQUIRE(fs::file_size(resnet) == size);
    REQUIRE(fs::last_write_time(resnet) == mtime);

    SECTION("analyze refuses it in one line naming the file and the repair") {
        const auto bad = faceq::test::run_faceq(analyze, {}, clean_env);
        CHECK(bad.exit_code == 1);
        CHECK(bad.out.empty());
        CHECK_THAT(bad.err, Catch::StartsWith("faceq: error: model file '" + resnet.string() +
                                              "' does not match its recorded sha256") &&
                                Catch::Contains("run `faceq download models --force`"));
        CHECK(std::count(bad.err.begin(), bad.err.end(), '\n') == 1);

        const auto manifest = faceq::load_manifest(manifest_path());
        CHECK_THROWS_MATCHES(faceq::find_installed(models, manifest, faceq::role::embedder), faceq::Error,
                             Catch::Matchers::Predicate<faceq::Error>(
                                 [](const faceq::Error& e) { return e.kind() == faceq::ErrorKind::model; }));
        const auto check = faceq::test::run_faceq({"--home", home.path().string(), "models", "check"}, {}, clean_env);
        CHECK(check.exit_code == 1);
        CHECK_THAT(check.err, Catch::Contains("does not match its recorded sha256"));
    }
    SECTION("download models installs it again; the descriptors are the good ones again") {
        const auto repair = faceq::test::run_faceq(
            {"--home", home.path().string(), "download", "models", "--mirror", mirror_dir().string()}, {}, clean_env);
        INFO(repair.err);
        REQUIRE(repair.exit_code == 0);
        CHECK_THAT(repair.err, Catch::Contains("does not match its recorded sha256; installing it again"));
        for (const auto& r : json_lines(repair.out)) {
            INFO(r.dump());
            // Only the damaged file is fetched again (models missing from the
            // mirror fail as before installing anything).
            if (r.at("name") == "faceapi_face_recognition_resnet")
                CHECK(r.at("status") == "installed");
            else
                CHECK(r.at("status") != "installed");
        }
        const auto again = faceq::test::run_faceq(analyze, {}, clean_env);
        INFO(again.err);
        REQUIRE(again.exit_code == 0);
        auto faces = [](const std::string& out) { return nlohmann::json::parse(out).at("faces"); };
        CHECK(faces(again.out) == faces(good.out));
    }
}

TEST_CASE("a verification stamp is trusted only while the file is the one stamped", "[download][verify]") {
    REQUIRE_MIRROR();
    TempDir home;
    const fs::path models = home.path() / "models";
    copy_installed_models(faceq::test::test_home().models_dir(), models);
    const auto manifest = faceq::load_manifest(manifest_path());
    const auto model = faceq::read_installed(models, *manifest.find(detector));
    REQUIRE(model);
    const fs::path stamp = models / ".mmod_human_face_detector.dat.verified";

    CHECK(faceq::installed_intact(*model, faceq::Verify::stamp));
    REQUIRE(fs::exists(stamp));
    const auto stamped = read_string(stamp);
    CHECK(faceq::installed_intact(*model, faceq::Verify::stamp));
    CHECK(read_string(stamp) == stamped);

    // Bytes changed, size and mtime kept: the ctime moved, so it is hashed again.
    flip_in_place(model->path, 4096);
    CHECK_FALSE(faceq::installed_intact(*model, faceq::Verify::stamp));
    CHECK_FALSE(fs::exists(stamp));
    CHECK_FALSE(faceq::installed_intact(*model, faceq::Verify::rehash));

    // A stamp forged for the changed file fools the cheap check (that is its
    // price), never a rehash: what `download models` and `models check` do.
    faceq::InstalledModel forged = *model;
    forged.sha256 = faceq::sha256_file(model->path);
    REQUIRE(faceq::installed_intact(forged, faceq::Verify::rehash));  // writes a stamp for the changed bytes
    fs::rename(stamp, models / "forged");
    nlohmann::json j = nlohmann::json::parse(read_string(models / "forged"));
    j["sha256"] = model->sha256;
    faceq::test::write_text(stamp, j.dump());
    CHECK(faceq::installed_intact(*model, faceq::Verify::stamp));
    CHECK_FALSE(faceq::installed_intact(*model, faceq::Verify::rehash));
}
