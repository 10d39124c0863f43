// tests/test_image_io.cpp — image_io on real photos from ../shared/data, on
// files OpenCV, libjpeg and libpng write in memory or into a temp dir, and on
// hand-made headers: bombs, truncations, EXIF orientation, bounds of the
// header parsers; JPEG and PNG decoding compared with cv::imdecode's.
#include <fcntl.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "pipeline/imgcodecs_lazy.hpp"
#include "test_png.hpp"
#include "test_support.hpp"

// After <cstdio> above: jpeglib.h uses FILE and size_t without including them.
#include <jpeglib.h>

namespace fs = std::filesystem;
using faceq::ErrorKind;
using faceq::test::Bytes;
using faceq::test::data_dir;
using faceq::test::png_declaring;
using faceq::test::read_bytes;
using faceq::test::TempDir;
using faceq::test::write_bytes;

namespace {

// The faceq::Error `f` throws; fails the test when it throws none.
template <class F>
faceq::Error error_from(F&& f) {
    try {
        f();
    } catch (const faceq::Error& e) {
        return e;
    }
    FAIL("expected a faceq::Error");
    throw std::logic_error("unreachable");
}

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
    return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

fs::path sample_jpeg() { return data_dir() / "dlib_faces" / "2008_002079.jpg"; }  // 500x375, no EXIF

// A non-square crop of a real photo, for the formats we write ourselves.
cv::Mat photo_crop() {
    const cv::Mat photo = cv::imread(sample_jpeg().string(), cv::IMREAD_COLOR);
    REQUIRE_FALSE(photo.empty());
    return photo(cv::Rect(37, 21, 161, 97)).clone();
}

// Offset of the first SOFn segment's marker in a JPEG.
std::size_t jpeg_sof_offset(const Bytes& jpeg) {
    std::size_t pos = 2;
    while (pos + 4 <= jpeg.size() && jpeg[pos] == 0xFF) {
        const std::uint8_t m = jpeg[pos + 1];
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return pos;
        pos += 2 + static_cast<std::size_t>(jpeg[pos + 2] << 8 | jpeg[pos + 3]);
    }
    FAIL("no SOF marker");
    return 0;
}

// `jpeg` with an APP1 Exif segment right after SOI whose IFD0 holds only the
// Orientation tag (0x0112, SHORT) in the given byte order.
Bytes with_exif_orientation(const Bytes& jpeg, std::uint16_t orientation, bool big_endian) {
    Bytes tiff;
    auto put16 = [&](std::uint16_t v) {
        if (big_endian)
            tiff.insert(tiff.end(), {std::uint8_t(v >> 8), std::uint8_t(v)});
        else
            tiff.insert(tiff.end(), {std::uint8_t(v), std::uint8_t(v >> 8)});
    };
    auto put32 = [&](std::uint32_t v) {
        if (big_endian) {
            put16(static_cast<std::uint16_t>(v >> 16));
            put16(static_cast<std::uint16_t>(v));
        } else {
            put16(static_cast<std::uint16_t>(v));
            put16(static_cast<std::uint16_t>(v >> 16));
        }
    };
    tiff.insert(tiff.end(), big_endian ? std::initializer_list<std::uint8_t>{'M', 'M'}
                                       : std::initializer_list<std::uint8_t>{'I', 'I'});
    put16(42);
    put32(8);  // IFD0 right after the header
    put16(1);  // one entry
    put16(0x0112);
    put16(3);  // SHORT
    put32(1);
    put16(orientation);
    put16(0);  // padding of the 4-byte value field
    put32(0);  // no next IFD

    Bytes app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
    app1.insert(app1.end(), tiff.begin(), tiff.end());
    const std::size_t len = app1.size() - 2;
    app1[2] = static_cast<std::uint8_t>(len >> 8);
    app1[3] = static_cast<std::uint8_t>(len);
    REQUIRE(jpeg.size() > 2);
    Bytes out(jpeg.size() + app1.size());
    std::copy(jpeg.begin(), jpeg.begin() + 2, out.begin());
    std::copy(app1.begin(), app1.end(), out.begin() + 2);
    std::copy(jpeg.begin() + 2, jpeg.end(), out.begin() + 2 + static_cast<std::ptrdiff_t>(app1.size()));
    return out;
}

// What a viewer shows for stored pixels `plain` under EXIF orientation `o`.
cv::Mat oriented(const cv::Mat& plain, int o) {
    cv::Mat out;
    switch (o) {
        case 2:
            cv::flip(plain, out, 1);
            break;
        case 3:
            cv::rotate(plain, out, cv::ROTATE_180);
            break;
        case 4:
            cv::flip(plain, out, 0);
            break;
        case 5:
            cv::transpose(plain, out);
            break;
        case 6:
            cv::rotate(plain, out, cv::ROTATE_90_CLOCKWISE);
            break;
        case 7:
            cv::transpose(plain, out);
            cv::flip(out, out, -1);
            break;
        case 8:
            cv::rotate(plain, out, cv::ROTATE_90_COUNTERCLOCKWISE);
            break;
        default:
            out = plain.clone();
    }
    return out;
}

// A 3x2 GIF89a with a two-colour palette; the LZW data clears before each
// pixel code so no dictionary growth has to be modelled.
Bytes tiny_gif() {
    Bytes out = {'G', 'I', 'F', '8', '9', 'a', 3, 0, 2, 0, 0x80, 0, 0, 255, 0, 0, 0, 0, 255};
    out.insert(out.end(), {0x2C, 0, 0, 0, 0, 3, 0, 2, 0, 0, 2});  // image descriptor, min code size 2
    std::vector<int> codes;
    for (int i = 0; i < 6; ++i) codes.insert(codes.end(), {4, i % 2});
    codes.push_back(5);
    Bytes lzw;
    unsigned acc = 0;
    int bits = 0;
    for (int c : codes) {
        acc |= static_cast<unsigned>(c) << bits;
        bits += 3;
        while (bits >= 8) {
            lzw.push_back(static_cast<std::uint8_t>(acc));
            acc >>= 8;
            bits -= 8;
        }
    }
    if (bits > 0) lzw.push_back(static_cast<std::uint8_t>(acc));
    out.push_back(static_cast<std::uint8_t>(lzw.size()));
    out.insert(out.end(), lzw.begin(), lzw.end());
    out.insert(out.end(), {0, 0x3B});
    return out;
}

// A top-down (negative height) 24-bit BMP of `bgr`, written by hand because
// OpenCV only writes bottom-up ones.
Bytes top_down_bmp(const cv::Mat& bgr) {
    const std::size_t stride = (static_cast<std::size_t>(bgr.cols) * 3 + 3) / 4 * 4;
    const std::size_t pixels = stride * static_cast<std::size_t>(bgr.rows);
    Bytes out(54 + pixels, 0);
    auto put32 = [&out](std::size_t at, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
    };
    out[0] = 'B';
    out[1] = 'M';
    put32(2, static_cast<std::uint32_t>(out.size()));
    put32(10, 54);
    put32(14, 40);
    put32(18, static_cast<std::uint32_t>(bgr.cols));
    put32(22, static_cast<std::uint32_t>(-bgr.rows));
    out[26] = 1;   // planes
    out[28] = 24;  // bits per pixel
    put32(34, static_cast<std::uint32_t>(pixels));
    for (int y = 0; y < bgr.rows; ++y)
        std::memcpy(out.data() + 54 + stride * static_cast<std::size_t>(y), bgr.ptr(y),
                    static_cast<std::size_t>(bgr.cols) * 3);
    return out;
}

// Hand-made headers of every format, for the bounds checks.
std::vector<Bytes> crafted_headers() {
    std::vector<Bytes> all;
    all.push_back(png_declaring(640, 480));
    all.push_back(tiny_gif());
    all.push_back(top_down_bmp(cv::Mat(3, 5, CV_8UC3, cv::Scalar(1, 2, 3))));
    all.push_back({'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E',  'B',  'P', 'V',  'P',  '8',
                   'X', 10,  0,   0,   0,  0, 0, 0, 0,   0x7F, 0x02, 0,   0xDF, 0x01, 0});
    all.push_back({'P', '6', '\n', '#', ' ', 'x', '\n', '6', '4', '0', ' ', '4', '8', '0', '\n', '2', '5', '5', '\n'});
    // Big-endian TIFF, width as SHORT, height as LONG.
    all.push_back({'M',  'M', 0, 42, 0, 0, 0, 8, 0, 2, 1, 0, 0, 3,    0,    0, 0, 1, 0x02,
                   0x80, 0,   0, 1,  1, 0, 4, 0, 0, 0, 1, 0, 0, 0x01, 0xE0, 0, 0, 0, 0});
    // Little-endian BigTIFF, width and height as LONG8.
    Bytes big = {'I', 'I', 43, 0, 8, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    for (std::uint16_t tag : {256, 257}) {
        Bytes e(20, 0);
        e[0] = static_cast<std::uint8_t>(tag);
        e[1] = static_cast<std::uint8_t>(tag >> 8);
        e[2] = 16;
        e[4] = 1;
        e[12] = tag == 256 ? 0x80 : 0xE0;
        e[13] = tag == 256 ? 0x02 : 0x01;
        big.insert(big.end(), e.begin(), e.end());
    }
    all.push_back(big);
    return all;
}

void check_format(const fs::path& file, const char* format, const cv::Mat& expected, double min_psnr = 0) {
    INFO(file.string());
    const Bytes bytes = read_bytes(file);
    const faceq::ImageHeader header = faceq::peek_image_header(bytes.data(), bytes.size());
    CHECK(header.format == format);
    CHECK(header.width == expected.cols);
    CHECK(header.height == expected.rows);
    const faceq::DecodedImage img = faceq::load_image_file(file);
    REQUIRE(img.bgr.type() == CV_8UC3);
    REQUIRE(img.bgr.size() == expected.size());
    CHECK(img.format == format);
    if (min_psnr > 0)
        CHECK(cv::PSNR(img.bgr, expected) > min_psnr);
    else
        CHECK(same_pixels(img.bgr, expected));
}

}  // namespace

TEST_CASE("header sizes of real photos match what OpenCV decodes", "[image_io]") {
    REQUIRE_SHARED();
    const fs::path d = data_dir();
    const std::vector<std::pair<fs::path, std::string>> files = {
        {d / "lfw-dev/lfw-deepfunneled/Sandy_Smith/Sandy_Smith_0001.jpg", "jpeg"},
        {sample_jpeg(), "jpeg"},
        {d / "dlib_faces/Tom_Cruise_avp_2014_4.jpg", "jpeg"},                                      // progressive
        {d / "face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg", "jpeg"},  // Exif
        {d / "face_recognition_examples/examples/obama2.jpg", "jpeg"},                             // big-endian Exif
        {d / "faceapi_bbt/test/images/face_rectangular.png", "png"},                               // RGB
        {d / "faceapi_bbt/examples/images/amy/amy1.png", "png"},                                   // grayscale
        {d / "faceapi_bbt/examples/images/raj/raj2.png", "png"},                                   // grayscale
        {d / "face_recognition_examples/tests/test_images/32bit.png", "png"},                      // RGBA
        {d / "negatives/faces_control/skimage_camera.png", "png"},
    };
    for (const auto& [path, format] : files) {
        INFO(path.string());
        const Bytes bytes = read_bytes(path);
        const faceq::ImageHeader header = faceq::peek_image_header(bytes.data(), bytes.size());
        const cv::Mat raw = cv::imread(path.string(), cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
        REQUIRE_FALSE(raw.empty());
        CHECK(header.format == format);
        CHECK(header.width == raw.cols);
        CHECK(header.height == raw.rows);

        const faceq::DecodedImage img = faceq::load_image_file(path);
        CHECK(img.bgr.type() == CV_8UC3);
        CHECK(img.format == format);
        CHECK(img.bytes == bytes.size());
        CHECK(img.sha256 == faceq::sha256_file(path));
        CHECK(same_pixels(img.bgr, cv::imread(path.string(), cv::IMREAD_COLOR)));
    }
}

TEST_CASE("the bundled samples decode", "[image_io]") {
    const fs::path samples = fs::path(FACEQ_SOURCE_DIR) / "data" / "samples";
    const faceq::DecodedImage astronaut = faceq::load_image_file(samples / "skimage_astronaut.jpg");
    CHECK(astronaut.format == "jpeg");
    CHECK(astronaut.bgr.size() == cv::Size(512, 512));
    const faceq::DecodedImage camera = faceq::load_image_file(samples / "skimage_camera.png");
    CHECK(camera.format == "png");
    CHECK(camera.bgr.size() == cv::Size(512, 512));
    CHECK(camera.bgr.type() == CV_8UC3);
    CHECK(camera.sha256 == "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a");
}

TEST_CASE("grayscale and RGBA PNGs become 3-channel BGR", "[image_io]") {
    REQUIRE_SHARED();
    const fs::path gray_png = data_dir() / "faceapi_bbt/examples/images/amy/amy1.png";
    const faceq::DecodedImage gray = faceq::load_image_file(gray_png);
    cv::Mat expected;
    cv::cvtColor(cv::imread(gray_png.string(), cv::IMREAD_GRAYSCALE), expected, cv::COLOR_GRAY2BGR);
    CHECK(same_pixels(gray.bgr, expected));

    const fs::path rgba_png = data_dir() / "face_recognition_examples/tests/test_images/32bit.png";
    REQUIRE(cv::imread(rgba_png.string(), cv::IMREAD_UNCHANGED).channels() == 4);
    const faceq::DecodedImage rgba = faceq::load_image_file(rgba_png);
    REQUIRE(rgba.bgr.type() == CV_8UC3);
    cv::cvtColor(cv::imread(rgba_png.string(), cv::IMREAD_UNCHANGED), expected, cv::COLOR_BGRA2BGR);
    CHECK(same_pixels(rgba.bgr, expected));
}

TEST_CASE("every supported format decodes to CV_8UC3 of the declared size", "[image_io]") {
    REQUIRE_SHARED();
    TempDir tmp;
    const cv::Mat photo = photo_crop();  // 161x97
    cv::Mat gray, gray_bgr;
    cv::cvtColor(photo, gray, cv::COLOR_BGR2GRAY);
    cv::cvtColor(gray, gray_bgr, cv::COLOR_GRAY2BGR);
    cv::Mat photo16;
    photo.convertTo(photo16, CV_16U, 257.0);

    SECTION("PNG, 16 bits per channel") {
        REQUIRE(cv::imwrite((tmp / "a.png").string(), photo16));
        check_format(tmp / "a.png", "png", photo);
    }
    SECTION("BMP, bottom-up as OpenCV writes it") {
        REQUIRE(cv::imwrite((tmp / "a.bmp").string(), photo));
        check_format(tmp / "a.bmp", "bmp", photo);
    }
    SECTION("BMP, top-down (negative height)") {
        write_bytes(tmp / "a.bmp", top_down_bmp(photo));
        check_format(tmp / "a.bmp", "bmp", photo);
    }
    SECTION("TIFF, 8 and 16 bits") {
        REQUIRE(cv::imwrite((tmp / "a.tif").string(), photo));
        check_format(tmp / "a.tif", "tiff", photo);
        REQUIRE(cv::imwrite((tmp / "b.tiff").string(), photo16));
        check_format(tmp / "b.tiff", "tiff", photo);
    }
    SECTION("WebP, lossless (VP8L) and lossy (VP8)") {
        REQUIRE(cv::imwrite((tmp / "a.webp").string(), photo, {cv::IMWRITE_WEBP_QUALITY, 101}));
        check_format(tmp / "a.webp", "webp", photo);
        REQUIRE(cv::imwrite((tmp / "b.webp").string(), photo, {cv::IMWRITE_WEBP_QUALITY, 90}));
        check_format(tmp / "b.webp", "webp", photo, 28.0);
    }
    SECTION("PNM: binary and ASCII PPM, PGM") {
        REQUIRE(cv::imwrite((tmp / "a.ppm").string(), photo));
        check_format(tmp / "a.ppm", "pnm", photo);
        REQUIRE(cv::imwrite((tmp / "b.ppm").string(), photo, {cv::IMWRITE_PXM_BINARY, 0}));
        check_format(tmp / "b.ppm", "pnm", photo);
        REQUIRE(cv::imwrite((tmp / "c.pgm").string(), gray));
        check_format(tmp / "c.pgm", "pnm", gray_bgr);
    }
    SECTION("PBM (1 bit)") {
        cv::Mat bw;
        cv::threshold(gray, bw, 128, 255, cv::THRESH_BINARY);
        cv::Mat bw_bgr;
        cv::cvtColor(bw, bw_bgr, cv::COLOR_GRAY2BGR);
        REQUIRE(cv::imwrite((tmp / "a.pbm").string(), bw));
        check_format(tmp / "a.pbm", "pnm", bw_bgr);
    }
}

TEST_CASE("GIF headers are read; decoding depends on the OpenCV build", "[image_io]") {
    const Bytes gif = tiny_gif();
    const faceq::ImageHeader header = faceq::peek_image_header(gif.data(), gif.size());
    CHECK(header.format == "gif");
    CHECK(header.width == 3);
    CHECK(header.height == 2);
#if CV_VERSION_MAJOR > 4 || (CV_VERSION_MAJOR == 4 && CV_VERSION_MINOR >= 11)
    const faceq::DecodedImage img = faceq::decode_image(gif, "tiny.gif");
    CHECK(img.bgr.type() == CV_8UC3);
    CHECK(img.bgr.size() == cv::Size(3, 2));
#else
    // OpenCV before 4.11 has no GIF decoder: refused by name, not as "corrupt".
    const faceq::Error e = error_from([&] { faceq::decode_image(gif, "tiny.gif"); });
    CHECK(e.kind() == ErrorKind::invalid_input);
    CHECK_THAT(e.what(), Catch::Contains("'tiny.gif'") && Catch::Contains("GIF is not supported"));
#endif
}

TEST_CASE("hand-made headers: WebP VP8X, big-endian TIFF, BigTIFF, PNM comments", "[image_io]") {
    const std::vector<Bytes> all = crafted_headers();
    const std::vector<std::string> formats = {"png", "gif", "bmp", "webp", "pnm", "tiff", "tiff"};
    const std::vector<std::pair<int, int>> sizes = {{640, 480}, {3, 2},     {5, 3},    {640, 480},
                                                    {640, 480}, {640, 480}, {640, 480}};
    for (std::size_t i = 0; i < all.size(); ++i) {
        INFO("crafted header " << i);
        const faceq::ImageHeader h = faceq::peek_image_header(all[i].data(), all[i].size());
        CHECK(h.format == formats[i]);
        CHECK(h.width == sizes[i].first);
        CHECK(h.height == sizes[i].second);
    }
}

TEST_CASE("EXIF orientation is applied for all eight values, both byte orders", "[image_io]") {
    REQUIRE_SHARED();
    const Bytes jpeg = read_bytes(sample_jpeg());
    const cv::Mat plain = faceq::decode_image(jpeg, "plain.jpg").bgr;
    REQUIRE(plain.size() == cv::Size(500, 375));
    for (bool big_endian : {false, true}) {
        for (std::uint16_t o = 1; o <= 8; ++o) {
            INFO("orientation " << o << (big_endian ? " (MM)" : " (II)"));
            const Bytes rotated = with_exif_orientation(jpeg, o, big_endian);
            const faceq::ImageHeader header = faceq::peek_image_header(rotated.data(), rotated.size());
            CHECK(header.width == 500);  // the header tells the stored size
            const faceq::DecodedImage img = faceq::decode_image(rotated, "rotated.jpg");
            const cv::Mat expected = oriented(plain, o);
            CHECK(img.bgr.size() == (o >= 5 ? cv::Size(375, 500) : cv::Size(500, 375)));
            CHECK(same_pixels(img.bgr, expected));  // same compressed data: exact
        }
    }
}

TEST_CASE("a malformed EXIF block is ignored, not fatal", "[image_io]") {
    REQUIRE_SHARED();
    const Bytes jpeg = read_bytes(sample_jpeg());
    const cv::Mat plain = faceq::decode_image(jpeg, "plain.jpg").bgr;
    Bytes bad = with_exif_orientation(jpeg, 6, false);
    // IFD0 offset (TIFF header bytes 4..7, after "\xFF\xE1" len "Exif\0\0" "II" 42) far past the segment.
    bad[2 + 10 + 4] = 0xF0;
    bad[2 + 10 + 5] = 0xFF;
    const faceq::DecodedImage img = faceq::decode_image(bad, "bad_exif.jpg");
    CHECK(same_pixels(img.bgr, plain));
}

TEST_CASE("decompression bombs are refused from the header, before decoding", "[image_io]") {
    REQUIRE_SHARED();
    TempDir tmp;
    const auto started = std::chrono::steady_clock::now();

    write_bytes(tmp / "bomb.png", png_declaring(50000, 50000));
    faceq::Error e = error_from([&] { faceq::load_image_file(tmp / "bomb.png"); });
    CHECK(e.kind() == ErrorKind::too_large);
    CHECK_THAT(e.what(), Catch::Contains("bomb.png") && Catch::Contains("50000x50000") && Catch::Contains("100000000"));

    Bytes jpeg = read_bytes(sample_jpeg());
    const std::size_t sof = jpeg_sof_offset(jpeg);
    for (std::size_t at : {sof + 5, sof + 7}) {  // height, width
        jpeg[at] = 50000 >> 8;
        jpeg[at + 1] = 50000 & 0xFF;
    }
    write_bytes(tmp / "bomb.jpg", jpeg);
    e = error_from([&] { faceq::load_image_file(tmp / "bomb.jpg"); });
    CHECK(e.kind() == ErrorKind::too_large);
    CHECK_THAT(e.what(), Catch::Contains("bomb.jpg") && Catch::Contains("50000x50000"));

    // Raising our limit does not let OpenCV's own limit through as a cryptic assertion.
    faceq::ImageLimits huge;
    huge.max_pixels = std::uint64_t{1} << 40;
    e = error_from([&] { faceq::load_image_file(tmp / "bomb.png", huge); });
    CHECK(e.kind() == ErrorKind::too_large);
    CHECK_THAT(e.what(), Catch::Contains("decoder's limit"));

    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
}

TEST_CASE("the pixel and byte limits are the caller's", "[image_io]") {
    REQUIRE_SHARED();
    faceq::ImageLimits limits;
    limits.max_pixels = 500 * 375 - 1;
    faceq::Error e = error_from([&] { faceq::load_image_file(sample_jpeg(), limits); });
    CHECK(e.kind() == ErrorKind::too_large);
    CHECK_THAT(e.what(), Catch::Contains("500x375") && Catch::Contains("187499"));
    limits.max_pixels = 500 * 375;
    CHECK(faceq::load_image_file(sample_jpeg(), limits).bgr.size() == cv::Size(500, 375));

    limits.max_file_bytes = 1000;
    e = error_from([&] { faceq::load_image_file(sample_jpeg(), limits); });
    CHECK(e.kind() == ErrorKind::too_large);
    CHECK_THAT(e.what(), Catch::Contains("2008_002079.jpg") && Catch::Contains("1000 bytes"));
    e = error_from([&] { faceq::decode_image(read_bytes(sample_jpeg()), "upload", limits); });
    CHECK(e.kind() == ErrorKind::too_large);
    CHECK_THAT(e.what(), Catch::Contains("'upload'"));
}

TEST_CASE("broken files are invalid_input and the message names the file", "[image_io]") {
    REQUIRE_SHARED();
    TempDir tmp;
    const Bytes jpeg = read_bytes(sample_jpeg());
    const Bytes progressive = read_bytes(data_dir() / "dlib_faces/Tom_Cruise_avp_2014_4.jpg");
    const Bytes png = read_bytes(data_dir() / "faceapi_bbt/test/images/face_rectangular.png");
    auto cut = [](const Bytes& b, double fraction) {
        return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(static_cast<double>(b.size()) * fraction));
    };
    const std::string text = "this is not an image\n";
    Bytes zero_png = png_declaring(0, 0);

    struct Case {
        std::string file;
        Bytes bytes;
        std::string why;
    };
    const std::vector<Case> cases = {
        {"empty.jpg", {}, "empty file"},
        {"notes.jpg", Bytes(text.begin(), text.end()), "not an image (unknown format)"},
        {"cut.jpg", cut(jpeg, 0.6), "truncated JPEG"},
        {"cut_progressive.jpg", cut(progressive, 0.6), "truncated JPEG"},
        {"header_only.jpg", Bytes(jpeg.begin(), jpeg.begin() + 20), "truncated JPEG header"},
        {"cut.png", cut(png, 0.6), "truncated PNG"},
        {"cut_ihdr.png", Bytes(png.begin(), png.begin() + 20), "truncated PNG header"},
        {"zero.png", zero_png, "image is 0x0"},
    };
    for (const Case& c : cases) {
        INFO(c.file);
        write_bytes(tmp / c.file, c.bytes);
        const faceq::Error e = error_from([&] { faceq::load_image_file(tmp / c.file); });
        CHECK(e.kind() == ErrorKind::invalid_input);
        CHECK_THAT(e.what(), Catch::Contains("'" + (tmp / c.file).string() + "'") && Catch::Contains(c.why));
        CHECK(std::string(e.what()).find('\n') == std::string::npos);
    }
}

TEST_CASE("a corrupt PNG that is complete in structure is reported as undecodable", "[image_io]") {
    REQUIRE_SHARED();
    Bytes png = read_bytes(data_dir() / "faceapi_bbt/test/images/face_rectangular.png");
    // Flip bytes inside the first IDAT's data: framing and IEND stay intact.
    std::size_t pos = 8;
    while (std::memcmp(png.data() + pos + 4, "IDAT", 4) != 0)
        pos += 12 + static_cast<std::size_t>(png[pos] << 24 | png[pos + 1] << 16 | png[pos + 2] << 8 | png[pos + 3]);
    for (std::size_t i = pos + 8 + 2; i < pos + 8 + 40; ++i) png[i] ^= 0x5A;
    const faceq::Error e = error_from([&] { faceq::decode_image(png, "corrupt.png"); });
    CHECK(e.kind() == ErrorKind::invalid_input);
    CHECK_THAT(e.what(), Catch::Contains("'corrupt.png'") && Catch::Contains("corrupt or truncated"));
}

TEST_CASE("bytes after the JPEG end-of-image marker are tolerated", "[image_io]") {
    REQUIRE_SHARED();
    const Bytes jpeg = read_bytes(sample_jpeg());
    const cv::Mat plain = faceq::decode_image(jpeg, "plain.jpg").bgr;
    Bytes padded = jpeg;
    padded.insert(padded.end(), 100, 0x00);
    const std::string trailer = "trailing data from some camera";
    padded.insert(padded.end(), trailer.begin(), trailer.end());
    CHECK(same_pixels(faceq::decode_image(padded, "padded.jpg").bgr, plain));
}

TEST_CASE("missing files, directories and devices", "[image_io]") {
    TempDir tmp;
    faceq::Error e = error_from([&] { faceq::load_image_file(tmp / "nope.jpg"); });
    CHECK(e.kind() == ErrorKind::not_found);
    CHECK(std::string(e.what()) == "no such file '" + (tmp / "nope.jpg").string() + "'");

    fs::create_directory(tmp / "album.jpg");
    e = error_from([&] { faceq::load_image_file(tmp / "album.jpg"); });
    CHECK(e.kind() == ErrorKind::invalid_input);
    CHECK_THAT(e.what(), Catch::Contains("album.jpg") && Catch::Contains("is a directory"));

    e = error_from([&] { faceq::load_image_file("/dev/null"); });
    CHECK(e.kind() == ErrorKind::invalid_input);
    CHECK_THAT(e.what(), Catch::Contains("not a regular file"));
}

TEST_CASE("header parsers never read past the buffer", "[image_io]") {
    std::vector<Bytes> headers = crafted_headers();
    if (faceq::test::shared_available()) {
        for (const char* f : {"dlib_faces/2008_002079.jpg", "faceapi_bbt/test/images/face_rectangular.png",
                              "face_recognition_examples/examples/obama2.jpg"}) {
            const Bytes b = read_bytes(data_dir() / f);
            headers.emplace_back(b.begin(),
                                 b.begin() + std::min<std::ptrdiff_t>(4096, static_cast<std::ptrdiff_t>(b.size())));
        }
    }
    auto peek_copy = [](const Bytes& b, std::size_t n) {
        // An exact-size heap copy, so a sanitizer build catches any over-read.
        std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[n == 0 ? 1 : n]);
        std::memcpy(copy.get(), b.data(), n);
        try {
            faceq::peek_image_header(n == 0 ? nullptr : copy.get(), n);
        } catch (const faceq::Error& e) {
            CHECK((e.kind() == ErrorKind::invalid_input || e.kind() == ErrorKind::too_large));
        }
    };
    for (const Bytes& h : headers)
        for (std::size_t n = 0; n <= h.size(); ++n) peek_copy(h, n);

    std::mt19937 rng(12345);
    for (const Bytes& h : headers) {
        for (int round = 0; round < 300; ++round) {
            Bytes m = h;
            const std::size_t span = std::min<std::size_t>(m.size(), 64);
            for (int k = 0; k < 3; ++k) m[rng() % span] = static_cast<std::uint8_t>(rng());
            peek_copy(m, m.size());
        }
    }
}

TEST_CASE("image file extensions", "[image_io]") {
    for (const char* yes : {"a.jpg", "a.JPEG", "dir/b.Png", "c.bmp", "d.gif", "e.webp", "f.tif", "g.TIFF", "h.pgm",
                            "i.ppm", "j.pnm", "k.pbm"})
        CHECK(faceq::has_image_extension(yes));
    for (const char* no : {"a.txt", "jpg", ".jpg", "a.jpg.bak", "a.", "a", "a.heic", "a.svg"})
        CHECK_FALSE(faceq::has_image_extension(no));
}

// ---------------------------------------------------------------- against cv::imdecode
//
// decode_image decodes JPEG and PNG with libjpeg and libpng itself; OpenCV
// 4.6's cv::imdecode(IMREAD_COLOR) is the reference it must match exactly.

namespace {

cv::Mat opencv_decode(const Bytes& bytes) {
    return cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<std::uint8_t*>(bytes.data())),
                        cv::IMREAD_COLOR);
}

// Checks decode_image against cv::imdecode for one buffer: the same pixels, or
// both refusing it.
void check_like_opencv(const Bytes& bytes, const std::string& name) {
    INFO(name);
    const cv::Mat expected = opencv_decode(bytes);
    if (expected.empty()) {
        CHECK_THROWS_AS(faceq::decode_image(bytes, name), faceq::Error);
        return;
    }
    const faceq::DecodedImage img = faceq::decode_image(bytes, name);
    CHECK(same_pixels(img.bgr, expected));
}

// Every `step`-th JPEG/PNG under `dir` (sorted, so the pick is stable).
std::vector<fs::path> photos_under(const fs::path& dir, std::size_t step) {
    std::vector<fs::path> all;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        std::string ext = e.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        if (e.is_regular_file() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png")) all.push_back(e.path());
    }
    std::sort(all.begin(), all.end());
    std::vector<fs::path> picked;
    for (std::size_t i = 0; i < all.size(); i += step) picked.push_back(all[i]);
    return picked;
}

// A PNG written with libpng: `width` x `height` pixels of the given colour
// type and bit depth, filled from a pattern, optionally Adam7-interlaced, with
// a tRNS chunk, and with an eXIf chunk before or after the image data.
struct PngSpec {
    int color_type = PNG_COLOR_TYPE_RGB;
    int bit_depth = 8;
    bool interlaced = false;
    bool trns = false;
    Bytes exif_before, exif_after;
};

PngSpec png_spec(int color_type, int bit_depth, bool interlaced = false, bool trns = false) {
    PngSpec s;
    s.color_type = color_type;
    s.bit_depth = bit_depth;
    s.interlaced = interlaced;
    s.trns = trns;
    return s;
}

Bytes write_png(const PngSpec& s, int width = 37, int height = 23) {
    Bytes out;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    png_infop end_info = png_create_info_struct(png);
    REQUIRE(end_info != nullptr);
    png_set_write_fn(
        png, &out,
        [](png_structp p, png_bytep data, png_size_t n) {
            auto* o = static_cast<Bytes*>(png_get_io_ptr(p));
            o->insert(o->end(), data, data + n);
        },
        nullptr);
    png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), s.bit_depth,
                 s.color_type, s.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s.color_type == PNG_COLOR_TYPE_PALETTE) {
        std::vector<png_color> palette(std::size_t{1} << s.bit_depth);
        for (std::size_t i = 0; i < palette.size(); ++i)
            palette[i] = {static_cast<png_byte>(i * 37), static_cast<png_byte>(255 - i * 11),
                          static_cast<png_byte>(i * 91)};
        png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
        if (s.trns) {
            std::vector<png_byte> alpha(palette.size() / 2 + 1, 40);
            png_set_tRNS(png, info, alpha.data(), static_cast<int>(alpha.size()), nullptr);
        }
    } else if (s.trns) {
        png_color_16 key{};
        key.red = key.green = key.blue = key.gray = 1;  // in range at every bit depth
        png_set_tRNS(png, info, nullptr, 0, &key);
    }
    if (!s.exif_before.empty())
        png_set_eXIf_1(png, info, static_cast<png_uint_32>(s.exif_before.size()),
                       const_cast<png_bytep>(s.exif_before.data()));
    if (!s.exif_after.empty())
        png_set_eXIf_1(png, end_info, static_cast<png_uint_32>(s.exif_after.size()),
                       const_cast<png_bytep>(s.exif_after.data()));
    png_write_info(png, info);
    const std::size_t row_bytes = png_get_rowbytes(png, info);
    std::vector<Bytes> rows(static_cast<std::size_t>(height), Bytes(row_bytes));
    std::vector<png_bytep> row_ptrs;
    for (std::size_t y = 0; y < rows.size(); ++y) {
        for (std::size_t x = 0; x < row_bytes; ++x) rows[y][x] = static_cast<std::uint8_t>(x * 7 + y * 13 + x * y);
        row_ptrs.push_back(rows[y].data());
    }
    png_write_image(png, row_ptrs.data());
    png_write_end(png, end_info);
    png_destroy_info_struct(png, &end_info);
    png_destroy_write_struct(&png, &info);
    return out;
}

// A TIFF block (what follows "Exif\0\0") whose IFD0 holds `entries` (tag,
// type, count, value or offset), little-endian, then `tail`.
Bytes tiff_block(const std::vector<std::array<std::uint32_t, 4>>& entries, const Bytes& tail = {}) {
    Bytes t = {'I', 'I', 42, 0, 8, 0, 0, 0};
    auto put = [&t](std::uint32_t v, int n) {
        for (int i = 0; i < n; ++i) t.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    };
    put(static_cast<std::uint32_t>(entries.size()), 2);
    for (const auto& e : entries) {
        put(e[0], 2);
        put(e[1], 2);
        put(e[2], 4);
        put(e[3], 4);
    }
    put(0, 4);
    t.insert(t.end(), tail.begin(), tail.end());
    return t;
}

// `jpeg` with an APP1 segment holding `payload` right after SOI.
Bytes with_app1(const Bytes& jpeg, const Bytes& payload) {
    const std::size_t len = payload.size() + 2;
    Bytes out(jpeg.size() + 2 + len);
    const std::uint8_t seg[4] = {0xFF, 0xE1, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
    std::copy(jpeg.begin(), jpeg.begin() + 2, out.begin());
    std::copy(seg, seg + 4, out.begin() + 2);
    std::copy(payload.begin(), payload.end(), out.begin() + 6);
    std::copy(jpeg.begin() + 2, jpeg.end(), out.begin() + 6 + static_cast<std::ptrdiff_t>(payload.size()));
    return out;
}

Bytes exif_payload(const Bytes& tiff) {
    Bytes p(6 + tiff.size());
    std::memcpy(p.data(), "Exif\0\0", 6);
    std::copy(tiff.begin(), tiff.end(), p.begin() + 6);
    return p;
}

// A JPEG written with libjpeg from `pixels` (1 or 3 channels) in colour space
// `in` (CMYK adds a fourth channel from the first) stored as `stored`; libjpeg
// writes an Adobe marker for RGB, CMYK and YCCK.
Bytes write_jpeg(const cv::Mat& pixels, J_COLOR_SPACE in, J_COLOR_SPACE stored) {
    jpeg_compress_struct c{};
    jpeg_error_mgr err{};
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char* buf = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = static_cast<JDIMENSION>(pixels.cols);
    c.image_height = static_cast<JDIMENSION>(pixels.rows);
    c.in_color_space = in;
    c.input_components = in == JCS_CMYK ? 4 : in == JCS_GRAYSCALE ? 1 : 3;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, stored);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    Bytes row(static_cast<std::size_t>(pixels.cols) * 4);
    while (c.next_scanline < c.image_height) {
        const std::uint8_t* p = pixels.ptr(static_cast<int>(c.next_scanline));
        const auto n = static_cast<std::size_t>(c.input_components);
        const auto have = static_cast<std::size_t>(pixels.channels());
        for (std::size_t x = 0; x < static_cast<std::size_t>(pixels.cols); ++x)
            for (std::size_t k = 0; k < n; ++k)
                row[x * n + k] = k < have ? p[x * have + k] : static_cast<std::uint8_t>(p[x * have] ^ 0x55);
        JSAMPROW r = row.data();
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    Bytes out(buf, buf + size);
    jpeg_destroy_compress(&c);
    std::free(buf);
    return out;
}

// What `f` writes to stderr (fd 2) while it runs.
template <class F>
std::string stderr_of(F&& f) {
    TempDir tmp;
    const std::string path = (tmp / "stderr").string();
    std::fflush(stderr);
    const int saved = dup(2);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    dup2(fd, 2);
    ::close(fd);
    try {
        f();
    } catch (...) {
        std::fflush(stderr);
        dup2(saved, 2);
        ::close(saved);
        throw;
    }
    std::fflush(stderr);
    dup2(saved, 2);
    ::close(saved);
    const Bytes b = read_bytes(path);
    return std::string(b.begin(), b.end());
}

}  // namespace

TEST_CASE("JPEG and PNG photos decode exactly as cv::imdecode decodes them", "[image_io]") {
    REQUIRE_SHARED();
    const fs::path d = data_dir();
    std::vector<fs::path> files;
    for (const auto& [dir, step] : std::vector<std::pair<const char*, std::size_t>>{{"face_recognition_examples", 1},
                                                                                    {"dlib_faces", 1},
                                                                                    {"negatives", 1},
                                                                                    {"faceapi_bbt", 1},
                                                                                    {"lfw-dev", 16},
                                                                                    {"wider-dev", 3},
                                                                                    {"celeba-dev", 20}}) {
        const std::vector<fs::path> picked = photos_under(d / dir, step);
        CHECK(!picked.empty());
        files.insert(files.end(), picked.begin(), picked.end());
    }
    CHECK(files.size() > 600);
    for (const fs::path& f : files) check_like_opencv(read_bytes(f), f.string());
}

TEST_CASE("PNG variants decode as cv::imdecode decodes them", "[image_io]") {
    struct Variant {
        const char* name;
        PngSpec spec;
    };
    const Bytes rotate = tiff_block({{0x0112, 3, 1, 6}});
    std::vector<Variant> variants;
    for (int depth : {1, 2, 4, 8, 16}) {
        variants.push_back({"gray", png_spec(PNG_COLOR_TYPE_GRAY, depth)});
        variants.push_back({"gray, tRNS", png_spec(PNG_COLOR_TYPE_GRAY, depth, false, true)});
        if (depth <= 8) {
            variants.push_back({"palette", png_spec(PNG_COLOR_TYPE_PALETTE, depth)});
            variants.push_back({"palette, tRNS, interlaced", png_spec(PNG_COLOR_TYPE_PALETTE, depth, true, true)});
        }
        if (depth >= 8) {
            variants.push_back({"gray+alpha", png_spec(PNG_COLOR_TYPE_GRAY_ALPHA, depth)});
            variants.push_back({"RGB", png_spec(PNG_COLOR_TYPE_RGB, depth)});
            variants.push_back({"RGB, tRNS, interlaced", png_spec(PNG_COLOR_TYPE_RGB, depth, true, true)});
            variants.push_back({"RGBA", png_spec(PNG_COLOR_TYPE_RGB_ALPHA, depth)});
            variants.push_back({"RGBA, interlaced", png_spec(PNG_COLOR_TYPE_RGB_ALPHA, depth, true)});
        }
    }
    variants.push_back({"eXIf before IDAT", png_spec(PNG_COLOR_TYPE_RGB, 8)});
    variants.back().spec.exif_before = rotate;
    variants.push_back({"eXIf after IDAT", png_spec(PNG_COLOR_TYPE_RGB, 8)});
    variants.back().spec.exif_after = rotate;
    for (const Variant& v : variants) {
        INFO(v.name << ", " << v.spec.bit_depth << " bits");
        const Bytes png = write_png(v.spec);
        check_like_opencv(png, "variant.png");
        if (!v.spec.exif_before.empty() || !v.spec.exif_after.empty())
            CHECK(faceq::decode_image(png, "variant.png").bgr.size() == cv::Size(23, 37));
    }
}

TEST_CASE("grayscale, CMYK and Adobe YCCK JPEGs decode as cv::imdecode decodes them", "[image_io]") {
    REQUIRE_SHARED();
    const cv::Mat photo = photo_crop();
    cv::Mat gray;
    cv::cvtColor(photo, gray, cv::COLOR_BGR2GRAY);
    check_like_opencv(write_jpeg(gray, JCS_GRAYSCALE, JCS_GRAYSCALE), "gray.jpg");
    check_like_opencv(write_jpeg(photo, JCS_RGB, JCS_RGB), "rgb.jpg");  // Adobe marker, no transform
    check_like_opencv(write_jpeg(photo, JCS_CMYK, JCS_CMYK), "cmyk.jpg");
    check_like_opencv(write_jpeg(photo, JCS_CMYK, JCS_YCCK), "ycck.jpg");
    std::vector<unsigned char> progressive;
    REQUIRE(cv::imencode(".jpg", photo, progressive, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
    check_like_opencv(Bytes(progressive.begin(), progressive.end()), "progressive.jpg");
}

TEST_CASE("EXIF blocks are read as OpenCV 4.6 reads them, odd ones included", "[image_io]") {
    REQUIRE_SHARED();
    std::vector<unsigned char> encoded;
    REQUIRE(cv::imencode(".jpg", photo_crop(), encoded));
    const Bytes jpeg(encoded.begin(), encoded.end());
    const Bytes far_string = {'s', 'o', 'n', 'y', 0, 0, 0, 0};
    const std::vector<std::pair<const char*, Bytes>> cases = {
        {"orientation 6", exif_payload(tiff_block({{0x0112, 3, 1, 6}}))},
        {"two orientations: the first counts", exif_payload(tiff_block({{0x0112, 3, 1, 6}, {0x0112, 3, 1, 3}}))},
        {"orientation 9: ignored", exif_payload(tiff_block({{0x0112, 3, 1, 9}}))},
        {"a string past the end stops the walk before the orientation",
         exif_payload(tiff_block({{0x010F, 2, 50, 4000}, {0x0112, 3, 1, 6}}))},
        {"a string past the end after the orientation",
         exif_payload(tiff_block({{0x0112, 3, 1, 8}, {0x010F, 2, 50, 4000}}))},
        {"a short string, looked for at offset 8 of the block",
         exif_payload(tiff_block({{0x010F, 2, 4, 0}, {0x0112, 3, 1, 5}}))},
        {"a rational past the end", exif_payload(tiff_block({{0x011A, 5, 1, 4000}, {0x0112, 3, 1, 6}}))},
        {"a string in range", exif_payload(tiff_block({{0x010F, 2, 8, 38}, {0x0112, 3, 1, 7}}, far_string))},
        {"more entries than bytes: the orientation before the end counts",
         [] {
             Bytes p = exif_payload(tiff_block({{0x0112, 3, 1, 2}}));
             p[6 + 8] = 40;  // entry count
             return p;
         }()},
        {"no Exif header check: the first APP1 is XMP", Bytes{'h', 't', 't', 'p', ':', '/', '/', 'n', 's'}},
        {"mixed byte-order mark: read big-endian",
         exif_payload({'I', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0})},
    };
    for (const auto& [name, payload] : cases) check_like_opencv(with_app1(jpeg, payload), name);

    // Random damage to a block with every tag exif.cpp reads: never a
    // different picture, never a crash (the sanitizer build runs this too).
    const Bytes full = exif_payload(tiff_block({{0x010E, 2, 3, 0},
                                                {0x010F, 2, 8, 134},
                                                {0x011A, 5, 1, 134},
                                                {0x011B, 5, 1, 134},
                                                {0x0128, 3, 1, 2},
                                                {0x0112, 3, 1, 6},
                                                {0x013E, 5, 2, 134},
                                                {0x013F, 5, 6, 134},
                                                {0x0211, 5, 3, 134},
                                                {0x0213, 3, 1, 1},
                                                {0x0214, 5, 6, 134},
                                                {0x8769, 4, 1, 0}},
                                               Bytes(48, 1)));
    std::mt19937 rng(7);
    for (int round = 0; round < 150; ++round) {
        Bytes p = full;
        for (int k = 0; k < 3; ++k) p[6 + rng() % (p.size() - 6)] = static_cast<std::uint8_t>(rng());
        if (round % 5 == 0) p.resize(6 + rng() % (p.size() - 6));
        check_like_opencv(with_app1(jpeg, p), "damaged EXIF, round " + std::to_string(round));
    }
}

TEST_CASE("a JPEG broken in the middle of its data is one error line, with nothing on stderr", "[image_io]") {
    REQUIRE_SHARED();
    const Bytes jpeg = read_bytes(sample_jpeg());
    const Bytes progressive = read_bytes(data_dir() / "dlib_faces/Tom_Cruise_avp_2014_4.jpg");
    // Cut in the middle of the entropy-coded data, then closed with an EOI
    // marker as if complete: libjpeg would grey out the rest.
    auto cut_and_closed = [](const Bytes& b) {
        Bytes out(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(b.size() / 2));
        out.insert(out.end(), {0xFF, 0xD9});
        return out;
    };
    // SOF's first component refers to quantization table 3, never defined.
    Bytes no_table = jpeg;
    no_table[jpeg_sof_offset(jpeg) + 10 + 2] = 3;
    // An SOS for a component the frame does not have.
    Bytes bad_sos = jpeg;
    for (std::size_t i = 2; i + 5 < bad_sos.size(); ++i) {
        if (bad_sos[i] == 0xFF && bad_sos[i + 1] == 0xDA) {
            bad_sos[i + 5] = 0x77;
            break;
        }
    }
    const std::vector<std::pair<std::string, Bytes>> cases = {
        {"cut_and_closed.jpg", cut_and_closed(jpeg)},
        {"cut_and_closed_progressive.jpg", cut_and_closed(progressive)},
        {"no_table.jpg", no_table},
        {"bad_sos.jpg", bad_sos}};
    for (const auto& [name, bytes] : cases) {
        INFO(name);
        std::string message;
        const std::string err = stderr_of([&] {
            const faceq::Error e = error_from([&] { faceq::decode_image(bytes, name); });
            CHECK(e.kind() == ErrorKind::invalid_input);
            message = e.what();
        });
        CHECK(err.empty());
        CHECK_THAT(message, Catch::Contains("'" + name + "'") && Catch::Contains("cannot decode jpeg data") &&
                                Catch::Contains("corrupt or truncated"));
        CHECK(message.find('\n') == std::string::npos);
    }
}

TEST_CASE("imgcodecs is loaded lazily: the entry points are OpenCV's, a missing library is named", "[image_io]") {
    const faceq::imgcodecs::Codecs c = faceq::imgcodecs::load(FACEQ_IMGCODECS_SONAME);
    CHECK(c.imdecode == static_cast<cv::Mat (*)(cv::InputArray, int)>(&cv::imdecode));
    CHECK(c.imencode ==
          static_cast<bool (*)(const cv::String&, cv::InputArray, std::vector<uchar>&, const std::vector<int>&)>(
              &cv::imencode));
    const faceq::Error e = error_from([] { faceq::imgcodecs::load("libopencv_imgcodecs_missing.so.406"); });
    CHECK(e.kind() == ErrorKind::internal);
    CHECK_THAT(e.what(), Catch::Contains("libopencv_imgcodecs_missing.so.406"));
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
}

TEST_CASE("run_command collects exit code, stdout and stderr without a shell", "[support]") {
    using faceq::test::run_command;
    auto r = run_command({"cat"}, "hello\nworld\n");
    CHECK(r.exit_code == 0);
    CHECK(r.out == "hello\nworld\n");
    CHECK(r.err.empty());

    // Megabytes on both pipes and on stdin at once must not deadlock.
    const std::string big(3 << 20, 'x');
    r = run_command({"sh", "-c", "cat; head -c 2000000 /dev/zero >&2; exit 3"}, big);
    CHECK(r.exit_code == 3);
    CHECK(r.out.size() == big.size());
    CHECK(r.err.size() == 2000000);

    // A child that ignores its stdin: the write side must not kill us with SIGPIPE.
    r = run_command({"true"}, big);
    CHECK(r.exit_code == 0);

    r = run_command({"sh", "-c", "printf '%s|%s' \"$FQ_A\" \"${HOME-unset}\""}, {}, {"FQ_A=1", "HOME"});
    CHECK(r.out == "1|unset");

    r = run_command({"sh", "-c", "kill -TERM $$"});
    CHECK(r.exit_code == 128 + SIGTERM);

    r = run_command({"sleep", "10"}, {}, {}, std::chrono::milliseconds(200));
    CHECK(r.timed_out);

    CHECK_THROWS_WITH(run_command({"/nonexistent/faceq"}), Catch::Contains("No such file"));
}
