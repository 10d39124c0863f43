// tests/test_nets.cpp — the face-api.js -> dlib ResNet conversion on its own:
// the real npm tarball from the mirror converts, loads back, and describes a
// face the same as the installed model; malformed inputs are refused.
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "pipeline/convert_resnet.hpp"
#include "pipeline/dnn_nets.hpp"
#include "test_models.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

// Unpacks the two weight files from the mirror's npm tarball into `dir`.
bool unpack_faceapi(const std::filesystem::path& dir) {
    const auto tgz = mirror_dir() / "vladmandic-face-api-1.7.15.tgz";
    if (!std::filesystem::exists(tgz)) return false;
    const auto r = run_command(
        {"tar", "-xzf", tgz.string(), "-C", dir.string(), "package/model/face_recognition_model-weights_manifest.json",
         "package/model/face_recognition_model.bin"},
        "");
    return r.exit_code == 0;
}

}  // namespace

TEST_CASE("face-api.js weights convert into a loadable dlib ResNet", "[nets]") {
    REQUIRE_MODELS();
    TempDir tmp;
    REQUIRE(unpack_faceapi(tmp.path()));
    const auto model = tmp.path() / "package" / "model";
    const auto out = tmp.path() / "resnet.dat";
    const auto report = convert_faceapi_resnet(model / "face_recognition_model-weights_manifest.json",
                                               model / "face_recognition_model.bin", out);
    CHECK(report.tensors == 117);
    CHECK(report.bytes == 6444032);
    // 29 conv layers + affine pairs + the 256x128 fc: dlib's ResNet has ~5.6 M parameters.
    CHECK(report.parameters > 5'000'000);
    CHECK(report.parameters < 6'000'000);

    // Loads back, and is the very model `faceq download models` installed.
    faceq::detail::EmbedderNet net(out);
    const auto installed = test_model_set().embedder;
    if (installed.entry.name == "faceapi_face_recognition_resnet") CHECK(sha256_file(out) == installed.sha256);

    // A 150x150 grey chip gives a finite unit-scale descriptor.
    std::vector<faceq::detail::RgbImage> chips(1, faceq::detail::RgbImage(150, 150));
    for (auto& p : chips[0]) p = dlib::rgb_pixel(120, 110, 100);
    const auto d = net.embed(chips);
    REQUIRE(d.size() == 1);
    float norm = 0;
    for (float v : d[0]) norm += v * v;
    CHECK(std::isfinite(norm));
    CHECK(norm > 0.01f);
}

TEST_CASE("Malformed face-api.js weights are refused", "[nets]") {
    REQUIRE_MODELS();
    TempDir tmp;
    REQUIRE(unpack_faceapi(tmp.path()));
    const auto model = tmp.path() / "package" / "model";
    const auto manifest = model / "face_recognition_model-weights_manifest.json";
    const auto bin = model / "face_recognition_model.bin";
    const auto out = tmp.path() / "out.dat";

    SECTION("a truncated weights file") {
        auto bytes = read_bytes(bin);
        bytes.resize(bytes.size() / 2);
        write_bytes(tmp.path() / "half.bin", bytes);
        try {
            convert_faceapi_resnet(manifest, tmp.path() / "half.bin", out);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::invalid_input);
            CHECK(std::string(e.what()).find("half.bin") != std::string::npos);
        }
    }
    SECTION("a manifest missing a tensor") {
        nlohmann::json j;
        std::ifstream(manifest) >> j;
        j[0]["weights"].erase(j[0]["weights"].size() - 1);
        write_text(tmp.path() / "m.json", j.dump());
        CHECK_THROWS_AS(convert_faceapi_resnet(tmp.path() / "m.json", bin, out), Error);
    }
    SECTION("not JSON") {
        write_text(tmp.path() / "m.json", "{ nope");
        try {
            convert_faceapi_resnet(tmp.path() / "m.json", bin, out);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::invalid_input);
        }
    }
    CHECK_FALSE(std::filesystem::exists(out));  // nothing half-written
}

TEST_CASE("A network read from its .dat is cached beside it and reads back the same", "[nets]") {
    REQUIRE_MODELS();
    namespace fs = std::filesystem;
    TempDir tmp;
    const auto dat = tmp.path() / "resnet.dat";
    fs::copy_file(test_model_set().embedder.path, dat);
    const auto cache = tmp.path() / ".resnet.dat.fastload";
    std::vector<faceq::detail::RgbImage> chips(1, faceq::detail::RgbImage(150, 150));
    long v = 0;
    for (auto& p : chips[0]) {
        p = dlib::rgb_pixel(static_cast<unsigned char>(v % 251), static_cast<unsigned char>(v % 83 + 60), 90);
        ++v;
    }

    const auto first = faceq::detail::EmbedderNet(dat).embed(chips);
    REQUIRE(fs::exists(cache));
    // Weights (5.6 M floats) and a few kB of layer settings.
    CHECK(fs::file_size(cache) > 22'000'000);
    CHECK(fs::file_size(cache) < 23'000'000);

    SECTION("the cache, not the .dat, is read while the .dat is unchanged") {
        // Same size and time, other bytes: reading the .dat would fail.
        const auto when = fs::last_write_time(dat);
        write_bytes(dat, std::vector<std::uint8_t>(fs::file_size(dat), 0));
        fs::last_write_time(dat, when);
        CHECK(faceq::detail::EmbedderNet(dat).embed(chips) == first);
    }
    SECTION("a truncated cache is ignored and written again") {
        fs::resize_file(cache, fs::file_size(cache) / 2);
        CHECK(faceq::detail::EmbedderNet(dat).embed(chips) == first);
        CHECK(fs::file_size(cache) > 22'000'000);
        CHECK(faceq::detail::EmbedderNet(dat).embed(chips) == first);
    }
    SECTION("a cache of other bytes is ignored") {
        auto bytes = read_bytes(cache);
        for (std::size_t i = 0; i < 4096 && i < bytes.size(); ++i) bytes[i] ^= 0x5a;
        write_bytes(cache, bytes);
        CHECK(faceq::detail::EmbedderNet(dat).embed(chips) == first);
    }
    SECTION("a cache whose tensor shape overflows is refused, not allocated") {
        // Header (8 magic + 8 size + 8 mtime + 8 settings length), the
        // settings, the tensor count, then the first tensor's 4 dimensions.
        auto bytes = read_bytes(cache);
        std::uint64_t settings = 0;
        std::memcpy(&settings, bytes.data() + 24, sizeof settings);
        const std::size_t first_shape = 32 + settings + 8;
        REQUIRE(first_shape + 32 <= bytes.size());
        const std::int64_t huge = std::int64_t{1} << 26;  // 2^104 floats in all: wraps to 0 unchecked
        for (int k = 0; k < 4; ++k) std::memcpy(bytes.data() + first_shape + 8 * k, &huge, sizeof huge);
        write_bytes(cache, bytes);
        CHECK(faceq::detail::EmbedderNet(dat).embed(chips) == first);
        CHECK(fs::file_size(cache) > 22'000'000);
    }
    SECTION("a replaced .dat makes the cache stale") {
        fs::last_write_time(dat, fs::last_write_time(dat) + std::chrono::seconds(5));
        const auto before = fs::last_write_time(cache);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        CHECK(faceq::detail::EmbedderNet(dat).embed(chips) == first);
        CHECK(fs::last_write_time(cache) != before);  // written again
        // A broken .dat is reported, whatever the cache holds.
        write_bytes(dat, std::vector<std::uint8_t>(100, 0));
        CHECK_THROWS_AS(faceq::detail::EmbedderNet(dat), Error);
    }
}
