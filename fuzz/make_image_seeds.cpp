// make_image_seeds.cpp — writes fuzz/corpus/image/: tiny images in every
// format decode_image() sniffs, cut from one photo of dlib's examples
// (../shared/data/dlib_faces/Tom_Cruise_avp_2014_4.jpg, davisking/dlib
// examples/faces, Boost Software License), plus the variants its checks are
// about: EXIF orientations in both byte orders, truncated files, a header
// declaring 50000x50000 pixels. Run once by hand (docs/fuzzing.md), not by
// the build; the files it wrote are committed (~20 kB in all).
//
//   g++ -std=c++17 -I/usr/include/opencv4 fuzz/make_image_seeds.cpp \
//       -lopencv_imgcodecs -lopencv_imgproc -lopencv_core -o /tmp/make_image_seeds
//   /tmp/make_image_seeds ../shared/data/dlib_faces/Tom_Cruise_avp_2014_4.jpg fuzz/corpus/image
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

using Bytes = std::vector<std::uint8_t>;

namespace {

void save(const std::string& dir, const std::string& name, const Bytes& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes encode(const std::string& ext, const cv::Mat& image, const std::vector<int>& params = {}) {
    Bytes out;
    if (!cv::imencode(ext, image, out, params)) std::fprintf(stderr, "cannot encode %s\n", ext.c_str());
    return out;
}

// `jpeg` with an APP1 Exif segment after SOI holding only Orientation
// (as tests/test_image_io.cpp's with_exif_orientation).
Bytes with_exif(const Bytes& jpeg, std::uint16_t orientation, bool big_endian) {
    Bytes tiff;
    auto put16 = [&](std::uint16_t v) {
        tiff.push_back(static_cast<std::uint8_t>(big_endian ? v >> 8 : v & 0xFF));
        tiff.push_back(static_cast<std::uint8_t>(big_endian ? v & 0xFF : v >> 8));
    };
    auto put32 = [&](std::uint32_t v) {
        put16(static_cast<std::uint16_t>(big_endian ? v >> 16 : v & 0xFFFF));
        put16(static_cast<std::uint16_t>(big_endian ? v & 0xFFFF : v >> 16));
    };
    tiff.push_back(big_endian ? 'M' : 'I');
    tiff.push_back(big_endian ? 'M' : 'I');
    put16(42);
    put32(8);
    put16(1);
    put16(0x0112);
    put16(3);
    put32(1);
    put16(orientation);
    put16(0);
    put32(0);
    Bytes app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
    app1.insert(app1.end(), tiff.begin(), tiff.end());
    app1[2] = static_cast<std::uint8_t>((app1.size() - 2) >> 8);
    app1[3] = static_cast<std::uint8_t>(app1.size() - 2);
    Bytes out(jpeg.begin(), jpeg.begin() + 2);
    out.insert(out.end(), app1.begin(), app1.end());
    out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s PHOTO OUT_DIR\n", argv[0]);
        return 2;
    }
    const cv::Mat photo = cv::imread(argv[1], cv::IMREAD_COLOR);
    if (photo.empty()) return 1;
    const std::string out = argv[2];
    // The middle of the photo (the face), 40x32: not square, so a rotation shows.
    const int side = std::min(photo.cols, photo.rows) / 2;
    cv::Mat tiny;
    cv::resize(photo(cv::Rect((photo.cols - side) / 2, (photo.rows - side) / 2, side, side * 4 / 5)), tiny,
               cv::Size(40, 32), 0, 0, cv::INTER_AREA);
    cv::Mat gray, bgra, wide;
    cv::cvtColor(tiny, gray, cv::COLOR_BGR2GRAY);
    cv::cvtColor(tiny, bgra, cv::COLOR_BGR2BGRA);
    tiny.convertTo(wide, CV_16UC3, 257);

    const Bytes jpeg = encode(".jpg", tiny, {cv::IMWRITE_JPEG_QUALITY, 75});
    save(out, "tiny.jpg", jpeg);
    save(out, "tiny_gray.jpg", encode(".jpg", gray));
    save(out, "tiny_progressive.jpg", encode(".jpg", tiny, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
    save(out, "tiny_exif6_le.jpg", with_exif(jpeg, 6, false));
    save(out, "tiny_exif8_be.jpg", with_exif(jpeg, 8, true));
    save(out, "truncated.jpg", Bytes(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(jpeg.size() / 2)));
    const Bytes png = encode(".png", tiny);
    save(out, "tiny.png", png);
    save(out, "tiny_gray.png", encode(".png", gray));
    save(out, "tiny_rgba.png", encode(".png", bgra));
    save(out, "tiny_16bit.png", encode(".png", wide));
    save(out, "truncated.png", Bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2)));
    Bytes bomb = png;  // IHDR's width and height (bytes 16..23) say 50000x50000
    for (int i : {16, 20}) {
        bomb[i] = 0;
        bomb[i + 1] = 0;
        bomb[i + 2] = 0xC3;
        bomb[i + 3] = 0x50;
    }
    save(out, "bomb_header.png", bomb);
    save(out, "tiny.bmp", encode(".bmp", tiny));
    save(out, "tiny.webp", encode(".webp", tiny));
    save(out, "tiny.tiff", encode(".tiff", tiny));
    save(out, "tiny.ppm", encode(".ppm", tiny));
    save(out, "tiny.pgm", encode(".pgm", gray));
    save(out, "tiny_ascii.pgm", encode(".pgm", gray, {cv::IMWRITE_PXM_BINARY, 0}));
    // A 1x1 GIF (OpenCV 4.6 cannot write GIF; its header is what is read).
    save(out, "one_pixel.gif", {'G',  'I',  'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0,    0,    0, 0xFF, 0xFF,
                                0xFF, 0x2C, 0,   0,   0,   0,   1, 0, 1, 0, 0,    2, 2, 0x44, 0x01, 0, 0x3B});
    return 0;
}
