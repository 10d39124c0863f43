// tests/test_source.cpp — where a file comes from (faceq/models/source.hpp):
// how location strings are read, a mirror directory that has the file or
// not, an http(s) base URL joined with the file's name, file: URLs as mirror
// and as upstream, local paths, and --mirror's check (a usage error).
#include <string>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/models/source.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

struct Logged {
    std::vector<std::string> lines;
    LogFn fn() {
        return [this](const std::string& line) { lines.push_back(line); };
    }
};

}  // namespace

TEST_CASE("locations are read one way", "[source]") {
    CHECK(location_kind("http://host/x") == LocationKind::http);
    CHECK(location_kind("https://host/x") == LocationKind::http);
    CHECK(location_kind("npm:@vladmandic/face-api@1.7.13") == LocationKind::npm);
    CHECK(location_kind("file:/usr/share/x") == LocationKind::file_url);
    CHECK(location_kind("file:///usr/share/x") == LocationKind::file_url);
    CHECK(location_kind("/abs/x.tar.gz") == LocationKind::local_path);
    CHECK(location_kind("relative/x") == LocationKind::local_path);
    CHECK(location_kind("ftp://host/x") == LocationKind::unsupported);
    CHECK(is_http_url("https://a"));
    CHECK_FALSE(is_http_url("file:/a"));
    CHECK(file_url_path("file:/usr/share/x") == "/usr/share/x");
    CHECK(file_url_path("file:///usr/share/x") == "/usr/share/x");
}

TEST_CASE("a mirror directory is used when it holds the file, else skipped with a note", "[source]") {
    TempDir mirror;
    write_text(mirror / "model.dat.bz2", "bytes");
    Logged log;

    auto s = sources_for("model", "model.dat.bz2", "https://up/model.dat.bz2", mirror.path().string(), log.fn());
    REQUIRE(s.size() == 2);
    CHECK(s[0].location == (mirror / "model.dat.bz2").string());
    CHECK(s[0].from_mirror);
    CHECK(s[1].location == "https://up/model.dat.bz2");
    CHECK_FALSE(s[1].from_mirror);
    CHECK(log.lines.empty());

    // The same directory as a file: URL.
    s = sources_for("model", "model.dat.bz2", "https://up/model.dat.bz2", "file://" + mirror.path().string(), {});
    REQUIRE(s.size() == 2);
    CHECK(s[0].location == (mirror / "model.dat.bz2").string());

    // A miss: upstream only, and one line saying why.
    s = sources_for("other", "other.dat", "https://up/other.dat", mirror.path().string(), log.fn());
    REQUIRE(s.size() == 1);
    CHECK(s[0].location == "https://up/other.dat");
    REQUIRE(log.lines.size() == 1);
    CHECK(log.lines[0] == "other: 'other.dat' is not in the mirror '" + mirror.path().string() + "'");

    // No upstream (a dataset only mirrors carry): nothing at all on a miss.
    CHECK(sources_for("utkface", "other.tar.gz", "", mirror.path().string(), {}).empty());
}

TEST_CASE("an http(s) mirror is the base URL joined with the file's name", "[source]") {
    for (const std::string base :
         {"http://127.0.0.1:8080/m", "http://127.0.0.1:8080/m/", "http://127.0.0.1:8080/m//"}) {
        INFO(base);
        const auto s = sources_for("model", "model.dat.bz2", "https://up/model.dat.bz2", base, {});
        REQUIRE(s.size() == 2);
        CHECK(s[0].location == "http://127.0.0.1:8080/m/model.dat.bz2");
        CHECK(s[0].from_mirror);
    }
    // Nothing is checked before fetching: a URL mirror is always tried first.
    const auto s = sources_for("d", "a.tar.gz", "", "https://mirror.example/", {});
    REQUIRE(s.size() == 1);
    CHECK(s[0].location == "https://mirror.example/a.tar.gz");
}

TEST_CASE("a file: upstream and local paths are never looked up under a mirror", "[source]") {
    TempDir mirror;
    write_text(mirror / "shape_predictor_68_face_landmarks.dat", "x");
    const auto s =
        sources_for("predictor", "shape_predictor_68_face_landmarks.dat",
                    "file:/usr/share/dlib/shape_predictor_68_face_landmarks.dat", mirror.path().string(), {});
    REQUIRE(s.size() == 1);
    CHECK(s[0].location == "file:/usr/share/dlib/shape_predictor_68_face_landmarks.dat");
    CHECK_FALSE(s[0].from_mirror);

    // No mirror: upstream as it is, a local path included.
    const auto local = sources_for("d", "a.tar.gz", "/data/a.tar.gz", "", {});
    REQUIRE(local.size() == 1);
    CHECK(local[0].location == "/data/a.tar.gz");
}

TEST_CASE("a mirror that is neither a directory nor an http(s) URL is a usage error", "[source]") {
    TempDir dir;
    CHECK_NOTHROW(check_mirror(""));
    CHECK_NOTHROW(check_mirror("https://mirror.example/models"));
    CHECK_NOTHROW(check_mirror(dir.path().string()));
    CHECK_NOTHROW(check_mirror("file://" + dir.path().string()));
    for (const std::string& bad :
         std::vector<std::string>{(dir / "typo").string(), "file:" + (dir / "typo").string(), "ftp://host/x"}) {
        INFO(bad);
        CHECK_THROWS_MATCHES(check_mirror(bad), Error, Catch::Predicate<Error>([&](const Error& e) {
                                 return e.kind() == ErrorKind::usage &&
                                        std::string(e.what()) ==
                                            "mirror '" + bad +
                                                "': not a directory nor an http(s) URL (from --mirror or FACEQ_MIRROR)";
                             }));
    }
}
