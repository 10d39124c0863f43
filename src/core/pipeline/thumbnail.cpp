// thumbnail.cpp — see faceq/pipeline/thumbnail.hpp: crop, shrink, and JPEG
// encoding with libjpeg into memory.
#include "faceq/pipeline/thumbnail.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <opencv2/imgproc.hpp>

#include "faceq/base/error.hpp"

// After <cstdio> above: jpeglib.h uses FILE and size_t without including them.
#include <jpeglib.h>

namespace faceq {
namespace {

// libjpeg's error manager: an error longjmps back instead of calling exit().
struct JpegEncoder {
    jpeg_compress_struct cinfo{};
    jpeg_error_mgr errors{};
    std::jmp_buf jump{};
    char message[JMSG_LENGTH_MAX] = {};
    unsigned char* out = nullptr;  // jpeg_mem_dest's buffer (malloc'ed by libjpeg)
    unsigned long out_size = 0;

    JpegEncoder() = default;
    JpegEncoder(const JpegEncoder&) = delete;
    JpegEncoder& operator=(const JpegEncoder&) = delete;
    ~JpegEncoder() {
        jpeg_destroy_compress(&cinfo);
        std::free(out);
    }
};

void encoder_fail(j_common_ptr cinfo) {
    auto& e = *static_cast<JpegEncoder*>(cinfo->client_data);
    cinfo->err->format_message(cinfo, e.message);
    std::longjmp(e.jump, 1);
}

void encoder_quiet(j_common_ptr, int) {}

// Encodes `bgr` (CV_8UC3, continuous rows not required); false when libjpeg
// gave up (e.message says why). Creates no object with a destructor, so a
// longjmp out of libjpeg skips none.
bool encode(JpegEncoder& e, const cv::Mat& bgr, int quality) {
    e.cinfo.err = jpeg_std_error(&e.errors);
    e.errors.error_exit = encoder_fail;
    e.errors.emit_message = encoder_quiet;
    e.cinfo.client_data = &e;
    if (setjmp(e.jump) != 0) return false;
    jpeg_create_compress(&e.cinfo);
    jpeg_mem_dest(&e.cinfo, &e.out, &e.out_size);
    e.cinfo.image_width = static_cast<JDIMENSION>(bgr.cols);
    e.cinfo.image_height = static_cast<JDIMENSION>(bgr.rows);
    e.cinfo.input_components = 3;
    e.cinfo.in_color_space = JCS_EXT_BGR;  // libjpeg-turbo's extension: no channel swap needed
    jpeg_set_defaults(&e.cinfo);           // YCbCr, 4:2:0
    jpeg_set_quality(&e.cinfo, quality, TRUE);
    e.cinfo.optimize_coding = TRUE;  // ~10% smaller at 112x112, for a second pass over the coefficients
    jpeg_start_compress(&e.cinfo, TRUE);
    while (e.cinfo.next_scanline < e.cinfo.image_height) {
        JSAMPROW row = const_cast<JSAMPROW>(bgr.ptr(static_cast<int>(e.cinfo.next_scanline)));
        jpeg_write_scanlines(&e.cinfo, &row, 1);
    }
    jpeg_finish_compress(&e.cinfo);
    return true;
}

// The thumbnail's pixels: the square around the box, shrunk.
cv::Mat face_square(const cv::Mat& bgr, const Box& box) {
    if (bgr.empty() || bgr.type() != CV_8UC3)
        throw Error(ErrorKind::invalid_input, "a face thumbnail needs a decoded colour image");
    if (box.width <= 0 || box.height <= 0)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("a face thumbnail needs a face box (got {}x{})", box.width, box.height));
    // The square around the box's centre, margin included, in image pixels.
    const double longer = std::max(box.width, box.height);
    const int side = std::max(1, static_cast<int>(std::lround(longer * (1 + 2 * thumbnail_margin))));
    const int x0 = static_cast<int>(std::lround(box.x + box.width / 2.0 - side / 2.0));
    const int y0 = static_cast<int>(std::lround(box.y + box.height / 2.0 - side / 2.0));
    const cv::Rect square(x0, y0, side, side);
    const cv::Rect inside = square & cv::Rect(0, 0, bgr.cols, bgr.rows);
    cv::Mat crop;
    if (inside == square) {
        crop = bgr(square);
    } else {
        crop = cv::Mat(side, side, CV_8UC3, cv::Scalar(128, 128, 128));
        if (inside.area() > 0)
            bgr(inside).copyTo(crop(cv::Rect(inside.x - x0, inside.y - y0, inside.width, inside.height)));
    }
    cv::Mat small;
    cv::resize(crop, small, cv::Size(thumbnail_side, thumbnail_side), 0, 0,
               side >= thumbnail_side ? cv::INTER_AREA : cv::INTER_LINEAR);
    return small;
}

std::string jpeg_of(const cv::Mat& small, int quality) {
    if (quality < 1 || quality > 100)
        throw Error(ErrorKind::internal, fmt::format("JPEG quality {} is not within 1..100", quality));
    JpegEncoder e;
    if (!encode(e, small, quality))
        throw Error(ErrorKind::internal, fmt::format("cannot encode a face thumbnail: {}", e.message));
    return std::string(reinterpret_cast<const char*>(e.out), e.out_size);
}

}  // namespace

std::string make_face_thumbnail(const cv::Mat& bgr, const Box& box) {
    const cv::Mat small = face_square(bgr, box);
    std::string jpeg = jpeg_of(small, thumbnail_quality);
    // Quality 50 is within 3 kB on every face measured; a face above the
    // limit even there keeps that (the loop ends).
    for (int q = thumbnail_quality - 4; jpeg.size() > thumbnail_max_bytes && q >= 50; q -= 4) jpeg = jpeg_of(small, q);
    return jpeg;
}

std::string encode_face_thumbnail(const cv::Mat& bgr, const Box& box, int quality) {
    return jpeg_of(face_square(bgr, box), quality);
}

}  // namespace faceq
