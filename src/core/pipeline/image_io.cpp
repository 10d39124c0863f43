// image_io.cpp — header sniffing, size limits, and decoding: JPEG with
// libjpeg and PNG with libpng here, every other format with OpenCV's imgcodecs.
//
// Every header parser reads through ByteView, which checks bounds on each
// access, so a short or lying file can only make us throw, never read past the
// buffer. The declared size is checked against the caller's limit and against
// OpenCV's own decoder limit before anything is decoded; truncated JPEG and
// PNG files are recognised from their structure (no EOI / no IEND) because
// libjpeg would otherwise hand back a half-grey image.
//
// JPEG and PNG are decoded with the libraries directly, not through
// cv::imdecode, because linking libopencv_imgcodecs costs every process
// ~0.12 s of dynamic loading (pipeline/imgcodecs_lazy.hpp); it is loaded on
// first use for the other formats. The two decoders reproduce OpenCV 4.6's
// cv::imdecode(buf, IMREAD_COLOR) pixel for pixel (grfmt_jpeg.cpp,
// grfmt_png.cpp, loadsave.cpp, exif.cpp): the same libjpeg/libpng calls and
// settings, OpenCV's CMYK conversion, and EXIF orientation read and applied as
// OpenCV reads and applies it. tests/test_image_io.cpp compares them with
// cv::imdecode on a few hundred real photos and on crafted variants. Unlike
// OpenCV, library errors and warnings never reach stderr.
#include "faceq/pipeline/image_io.hpp"

#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <system_error>
#include <utility>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "pipeline/imgcodecs_lazy.hpp"

// After <cstdio> above: jpeglib.h uses FILE and size_t without including them.
#include <jerror.h>
#include <jpeglib.h>

namespace faceq {
namespace {

// OpenCV 4.6 refuses images beyond these (loadsave.cpp, validateInputImageSize)
// with an assertion message nobody can act on; we refuse them first, by name.
// They can be changed with OPENCV_IO_MAX_IMAGE_* variables, which only OpenCV
// reads; a lowered limit still surfaces as too_large via the exception mapping.
constexpr std::uint64_t opencv_max_side = 1u << 20;
constexpr std::uint64_t opencv_max_pixels = 1u << 30;

[[noreturn]] void fail(ErrorKind kind, const std::string& why) { throw Error(kind, why); }
[[noreturn]] void truncated(const char* format) {
    fail(ErrorKind::invalid_input, fmt::format("truncated {} header", format));
}

// A bounds-checked view of the encoded bytes.
class ByteView {
public:
    ByteView(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

    std::size_t size() const { return size_; }
    bool has(std::size_t offset, std::size_t len) const { return offset <= size_ && len <= size_ - offset; }
    std::uint8_t u8(std::size_t offset) const {
        check(offset, 1);
        return data_[offset];
    }
    std::uint16_t u16(std::size_t offset, bool big_endian) const {
        check(offset, 2);
        const std::uint8_t* p = data_ + offset;
        return big_endian ? static_cast<std::uint16_t>(p[0] << 8 | p[1]) : static_cast<std::uint16_t>(p[1] << 8 | p[0]);
    }
    std::uint32_t u24le(std::size_t offset) const {
        check(offset, 3);
        const std::uint8_t* p = data_ + offset;
        return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16;
    }
    std::uint32_t u32(std::size_t offset, bool big_endian) const {
        check(offset, 4);
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            const std::uint8_t b = data_[offset + static_cast<std::size_t>(big_endian ? i : 3 - i)];
            v = v << 8 | b;
        }
        return v;
    }
    std::uint64_t u64(std::size_t offset, bool big_endian) const {
        check(offset, 8);
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            const std::uint8_t b = data_[offset + static_cast<std::size_t>(big_endian ? i : 7 - i)];
            v = v << 8 | b;
        }
        return v;
    }
    bool starts_with(std::size_t offset, const char* magic, std::size_t len) const {
        return has(offset, len) && std::memcmp(data_ + offset, magic, len) == 0;
    }
    const std::uint8_t* data() const { return data_; }
    // Names the format in the "truncated ... header" error of an out-of-range read.
    void set_format(const char* format) { format_ = format; }

private:
    void check(std::size_t offset, std::size_t len) const {
        if (!has(offset, len)) truncated(format_);
    }

    const std::uint8_t* data_;
    std::size_t size_;
    const char* format_ = "image";
};

int checked_dim(std::uint64_t value, const char* format) {
    if (value > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
        fail(ErrorKind::too_large, fmt::format("{} header declares a side of {} pixels", format, value));
    return static_cast<int>(value);
}

// ---------------------------------------------------------------- JPEG

bool is_jpeg_sof(std::uint8_t marker) {
    // SOF0..SOF15 are 0xC0..0xCF, except DHT (C4), JPG (C8) and DAC (CC).
    return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

struct JpegScan {
    bool have_sof = false;
    int width = 0;
    int height = 0;
    bool have_eoi = false;
};

// Walks the marker segments (and, when !stop_at_sof, the entropy-coded data
// after each SOS) of a JPEG. Stops at the first SOF or at EOI; reaching the
// end of the buffer first leaves the corresponding flag false.
JpegScan scan_jpeg(const ByteView& v, bool stop_at_sof) {
    JpegScan scan;
    const std::uint8_t* d = v.data();
    const std::size_t n = v.size();
    std::size_t pos = 2;  // after SOI
    while (pos < n) {
        if (d[pos] != 0xFF) {  // stray bytes between segments: libjpeg skips them too
            ++pos;
            continue;
        }
        while (pos < n && d[pos] == 0xFF) ++pos;  // fill bytes
        if (pos >= n) break;
        const std::uint8_t marker = d[pos++];
        if (marker == 0xD9) {
            scan.have_eoi = true;
            return scan;
        }
        if (marker == 0x00 || marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7))
            continue;  // no length field
        if (!v.has(pos, 2)) break;
        const std::size_t len = v.u16(pos, true);
        if (len < 2) fail(ErrorKind::invalid_input, "corrupt JPEG marker segment");
        if (!v.has(pos, len)) break;
        if (is_jpeg_sof(marker) && !scan.have_sof) {
            if (len < 7) fail(ErrorKind::invalid_input, "corrupt JPEG frame header");
            scan.have_sof = true;
            scan.height = v.u16(pos + 3, true);
            scan.width = v.u16(pos + 5, true);
            if (stop_at_sof) return scan;
        }
        pos += len;
        if (marker == 0xDA) {
            // Entropy-coded data: 0xFF is followed by 0x00 (stuffing), RSTn or
            // more 0xFF fill; anything else is the next marker.
            while (true) {
                const void* ff = std::memchr(d + pos, 0xFF, n - pos);
                if (ff == nullptr) return scan;
                pos = static_cast<std::size_t>(static_cast<const std::uint8_t*>(ff) - d);
                if (pos + 1 >= n) return scan;
                const std::uint8_t next = d[pos + 1];
                if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
                    pos += 2;
                } else if (next == 0xFF) {
                    pos += 1;
                } else {
                    break;  // a marker: handled by the outer loop
                }
            }
        }
    }
    return scan;
}

ImageHeader peek_jpeg(ByteView& v) {
    v.set_format("JPEG");
    const JpegScan scan = scan_jpeg(v, true);
    if (!scan.have_sof) truncated("JPEG");
    return {"jpeg", scan.width, scan.height};
}

// ---------------------------------------------------------------- PNG

ImageHeader peek_png(ByteView& v) {
    v.set_format("PNG");
    if (!v.starts_with(12, "IHDR", 4)) {
        if (!v.has(12, 4)) truncated("PNG");
        fail(ErrorKind::invalid_input, "corrupt PNG header (first chunk is not IHDR)");
    }
    const std::uint32_t w = v.u32(16, true);
    const std::uint32_t h = v.u32(20, true);
    return {"png", checked_dim(w, "PNG"), checked_dim(h, "PNG")};
}

// True when the chunk sequence reaches IEND inside the buffer.
bool png_complete(const ByteView& v) {
    std::size_t pos = 8;
    while (v.has(pos, 12)) {
        const std::uint32_t len = v.u32(pos, true);
        if (!v.has(pos + 12, len)) return false;
        if (v.starts_with(pos + 4, "IEND", 4)) return true;
        pos += 12 + std::size_t{len};
    }
    return false;
}

// ---------------------------------------------------------------- others

ImageHeader peek_gif(ByteView& v) {
    v.set_format("GIF");
    return {"gif", v.u16(6, false), v.u16(8, false)};
}

ImageHeader peek_bmp(ByteView& v) {
    v.set_format("BMP");
    const std::uint32_t dib_size = v.u32(14, false);
    if (dib_size == 12) {  // BITMAPCOREHEADER: unsigned 16-bit sides
        return {"bmp", v.u16(18, false), v.u16(20, false)};
    }
    if (dib_size < 16) fail(ErrorKind::invalid_input, "corrupt BMP header");
    const auto w = static_cast<std::int32_t>(v.u32(18, false));
    const auto h = static_cast<std::int32_t>(v.u32(22, false));  // negative: rows top-down
    if (w < 0) fail(ErrorKind::invalid_input, "corrupt BMP header (negative width)");
    const std::int64_t h64 = h;
    const auto abs_h = static_cast<std::uint64_t>(h64 < 0 ? -h64 : h64);
    return {"bmp", w, checked_dim(abs_h, "BMP")};
}

ImageHeader peek_webp(ByteView& v) {
    v.set_format("WebP");
    if (v.starts_with(12, "VP8X", 4)) {
        return {"webp", static_cast<int>(v.u24le(24) + 1), static_cast<int>(v.u24le(27) + 1)};
    }
    if (v.starts_with(12, "VP8L", 4)) {
        if (v.u8(20) != 0x2F) fail(ErrorKind::invalid_input, "corrupt WebP lossless header");
        const std::uint32_t bits = v.u32(21, false);
        return {"webp", static_cast<int>((bits & 0x3FFF) + 1), static_cast<int>(((bits >> 14) & 0x3FFF) + 1)};
    }
    if (v.starts_with(12, "VP8 ", 4)) {
        if (v.u8(23) != 0x9D || v.u8(24) != 0x01 || v.u8(25) != 0x2A)
            fail(ErrorKind::invalid_input, "corrupt WebP lossy header");
        return {"webp", v.u16(26, false) & 0x3FFF, v.u16(28, false) & 0x3FFF};
    }
    if (!v.has(12, 4)) truncated("WebP");
    fail(ErrorKind::invalid_input, "unsupported WebP chunk layout");
}

ImageHeader peek_pnm(ByteView& v) {
    v.set_format("PNM");
    std::size_t pos = 2;
    auto next_number = [&]() -> std::uint64_t {
        // Whitespace and '#' comments (to end of line) separate the fields.
        while (true) {
            const std::uint8_t c = v.u8(pos);
            if (c == '#') {
                while (v.u8(pos) != '\n' && v.u8(pos) != '\r') ++pos;
            } else if (std::isspace(c)) {
                ++pos;
            } else {
                break;
            }
        }
        if (!std::isdigit(v.u8(pos))) fail(ErrorKind::invalid_input, "corrupt PNM header");
        std::uint64_t value = 0;
        while (v.has(pos, 1) && std::isdigit(v.u8(pos))) {
            value = value * 10 + static_cast<std::uint64_t>(v.u8(pos) - '0');
            if (value > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
                fail(ErrorKind::too_large, "PNM header declares a side over 2147483647 pixels");
            ++pos;
        }
        if (!v.has(pos, 1)) truncated("PNM");  // the field may go on in the missing bytes
        return value;
    };
    const std::uint64_t w = next_number();
    const std::uint64_t h = next_number();
    return {"pnm", static_cast<int>(w), static_cast<int>(h)};
}

ImageHeader peek_tiff(ByteView& v) {
    v.set_format("TIFF");
    const bool be = v.u8(0) == 'M';
    const bool big_tiff = v.u16(2, be) == 43;
    std::uint64_t ifd = 0;
    std::size_t entry_size = 12;
    std::uint64_t count = 0;
    if (big_tiff) {
        if (v.u16(4, be) != 8) fail(ErrorKind::invalid_input, "corrupt BigTIFF header");
        ifd = v.u64(8, be);
        entry_size = 20;
        if (ifd > v.size()) truncated("TIFF");
        count = v.u64(static_cast<std::size_t>(ifd), be);
        ifd += 8;
    } else {
        ifd = v.u32(4, be);
        if (ifd > v.size()) truncated("TIFF");
        count = v.u16(static_cast<std::size_t>(ifd), be);
        ifd += 2;
    }
    std::uint64_t width = 0;
    std::uint64_t height = 0;
    bool have_width = false;
    bool have_height = false;
    for (std::uint64_t i = 0; i < count && !(have_width && have_height); ++i) {
        const std::uint64_t entry = ifd + i * entry_size;
        if (entry > v.size()) truncated("TIFF");
        const auto e = static_cast<std::size_t>(entry);
        const std::uint16_t tag = v.u16(e, be);
        if (tag != 256 && tag != 257) {
            if (!v.has(e, entry_size)) truncated("TIFF");
            continue;
        }
        const std::uint16_t type = v.u16(e + 2, be);
        const std::size_t value_at = e + (big_tiff ? 12 : 8);
        std::uint64_t value = 0;
        if (type == 3) {  // SHORT
            value = v.u16(value_at, be);
        } else if (type == 4) {  // LONG
            value = v.u32(value_at, be);
        } else if (type == 16 && big_tiff) {  // LONG8
            value = v.u64(value_at, be);
        } else {
            fail(ErrorKind::invalid_input, "corrupt TIFF header (bad ImageWidth/ImageLength type)");
        }
        if (tag == 256) {
            width = value;
            have_width = true;
        } else {
            height = value;
            have_height = true;
        }
    }
    if (!have_width || !have_height)
        fail(ErrorKind::invalid_input, "corrupt TIFF header (no ImageWidth/ImageLength in the first IFD)");
    return {"tiff", checked_dim(width, "TIFF"), checked_dim(height, "TIFF")};
}

// ---------------------------------------------------------------- decoding

// libjpeg fills a truncated JPEG with grey and only warns, so data that stops
// early is refused here, from its structure, before any decoding.
void check_complete(const std::string& format, const ByteView& v) {
    if (format == "jpeg" && !scan_jpeg(v, false).have_eoi)
        fail(ErrorKind::invalid_input, "truncated JPEG (no end-of-image marker)");
    if (format == "png" && !png_complete(v)) fail(ErrorKind::invalid_input, "truncated PNG (no IEND chunk)");
    if (format == "webp" && std::uint64_t{v.u32(4, false)} + 8 > v.size())
        fail(ErrorKind::invalid_input, "truncated WebP (RIFF size beyond the end of the data)");
}

void quiet_opencv_logging() {
    // Only the default level (WARNING) is lowered to ERROR, once per process,
    // so OpenCV's warnings do not interleave with our own one-line errors; a
    // level someone chose (OPENCV_LOG_LEVEL, or setLogLevel before the first
    // decode) is left alone. OpenCV 4.6 writes some messages with std::cerr
    // (imdecode_ "can't read header"); those cannot be silenced from here, but
    // the structural checks above keep most broken files from reaching it.
    static const bool done = [] {
        using namespace cv::utils::logging;
        if (getLogLevel() == LOG_LEVEL_WARNING) setLogLevel(LOG_LEVEL_ERROR);
        return true;
    }();
    (void)done;
}

std::string one_line(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

// Empty when the channel layout is not one OpenCV's IMREAD_COLOR can produce.
cv::Mat to_bgr8(const cv::Mat& m) {
    cv::Mat eight;
    if (m.depth() == CV_8U) {
        eight = m;
    } else if (m.depth() == CV_16U) {
        m.convertTo(eight, CV_8U, 1.0 / 257.0);
    } else if (m.depth() == CV_32F || m.depth() == CV_64F) {
        m.convertTo(eight, CV_8U, 255.0);
    } else {
        m.convertTo(eight, CV_8U);
    }
    cv::Mat bgr;
    switch (eight.channels()) {
        case 1:
            cv::cvtColor(eight, bgr, cv::COLOR_GRAY2BGR);
            break;
        case 3:
            bgr = eight;
            break;
        case 4:
            cv::cvtColor(eight, bgr, cv::COLOR_BGRA2BGR);
            break;
        default:
            break;
    }
    return bgr;
}

// ---------------------------------------------------------------- EXIF orientation

// The EXIF orientation (1..8; 1 when there is none) that OpenCV 4.6's
// ExifReader (exif.cpp) finds in `v`, a TIFF header and IFD0: little-endian
// only after "II", IFD0's entries in order, the first Orientation entry's
// value. Like exif.cpp it also reads the values of the other tags it knows and
// stops at the first it cannot read; what it found before that stands.
int exif_orientation(const ByteView& v) {
    const bool be = !(v.has(0, 2) && v.u8(0) == 'I' && v.u8(1) == 'I');
    int orientation = 1;
    bool found = false;
    try {
        if (v.u16(2, be) != 0x2A) return 1;
        std::size_t entry = v.u32(4, be);
        const std::size_t count = v.u16(entry, be);
        entry += 2;
        for (std::size_t i = 0; i < count; ++i, entry += 12) {
            std::size_t rationals = 0;  // unsigned RATIONALs at the offset in the value field
            switch (v.u16(entry, be)) {
                case 0x0112: {  // Orientation
                    const std::uint16_t value = v.u16(entry + 8, be);
                    if (!found) orientation = value;
                    found = true;
                    break;
                }
                case 0x0128:  // ResolutionUnit
                case 0x0213:  // YCbCrPositioning
                    (void)v.u16(entry + 8, be);
                    break;
                case 0x010E:    // ImageDescription
                case 0x010F:    // Make
                case 0x0110:    // Model
                case 0x0131:    // Software
                case 0x0132:    // DateTime
                case 0x8298: {  // Copyright
                    const std::uint32_t len = v.u32(entry + 4, be);
                    // exif.cpp looks for a string of up to 4 bytes at offset 8
                    // of the TIFF data, not of the entry: a bug we must share.
                    const std::uint32_t at = len > 4 ? v.u32(entry + 8, be) : 8;
                    if (!v.has(at, len)) return orientation;
                    break;
                }
                case 0x011A:  // XResolution
                case 0x011B:  // YResolution
                    rationals = 1;
                    break;
                case 0x013E:  // WhitePoint
                    rationals = 2;
                    break;
                case 0x0211:  // YCbCrCoefficients
                    rationals = 3;
                    break;
                case 0x013F:  // PrimaryChromaticities
                case 0x0214:  // ReferenceBlackWhite
                    rationals = 6;
                    break;
                default:
                    break;
            }
            if (rationals > 0 && !v.has(v.u32(entry + 8, be), rationals * 8)) return orientation;
        }
    } catch (const Error&) {
        // exif.cpp's ExifParsingError: the walk ends, what it found stands.
    }
    return orientation;
}

// loadsave.cpp's ApplyExifOrientation.
cv::Mat apply_orientation(const cv::Mat& img, int orientation) {
    cv::Mat out;
    switch (orientation) {
        case 2:
            cv::flip(img, out, 1);
            break;
        case 3:
            cv::flip(img, out, -1);
            break;
        case 4:
            cv::flip(img, out, 0);
            break;
        case 5:
            cv::transpose(img, out);
            break;
        case 6:
            cv::transpose(img, out);
            cv::flip(out, out, 1);
            break;
        case 7:
            cv::transpose(img, out);
            cv::flip(out, out, -1);
            break;
        case 8:
            cv::transpose(img, out);
            cv::flip(out, out, 0);
            break;
        default:
            out = img;
    }
    return out;
}

[[noreturn]] void undecodable(const char* format, const char* why) {
    fail(ErrorKind::invalid_input, fmt::format("cannot decode {} data (corrupt or truncated: {})", format,
                                               one_line(why[0] != '\0' ? why : "decoder stopped")));
}

// ---------------------------------------------------------------- JPEG decoding

// libjpeg's error manager: an error longjmps back to the current jpeg_* step
// with its message kept, instead of printing it and calling exit().
struct JpegDecoder {
    jpeg_decompress_struct cinfo{};  // mem == nullptr until created: destroying it is a no-op
    jpeg_error_mgr errors{};
    std::jmp_buf jump{};
    char message[JMSG_LENGTH_MAX] = {};

    JpegDecoder() = default;
    JpegDecoder(const JpegDecoder&) = delete;
    JpegDecoder& operator=(const JpegDecoder&) = delete;
    ~JpegDecoder() { jpeg_destroy_decompress(&cinfo); }
};

JpegDecoder& jpeg_owner(j_common_ptr cinfo) { return *static_cast<JpegDecoder*>(cinfo->client_data); }

void jpeg_fail(j_common_ptr cinfo) {
    JpegDecoder& d = jpeg_owner(cinfo);
    cinfo->err->format_message(cinfo, d.message);
    std::longjmp(d.jump, 1);
}

// Warnings (level -1) and trace messages are not printed. A warning about
// the image data (data ended early, after which libjpeg fills the rest with
// grey; a bad Huffman or arithmetic code; extraneous bytes; a lost restart
// marker; bogus progression) means a corrupt image, which fails as truncated
// files do (check_complete), where OpenCV would return pixels. Warnings about
// metadata only (an unknown JFIF revision or Adobe transform code, a bad ICC
// marker) keep OpenCV's pixels. No photo of ../shared/data warns at all.
void jpeg_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    const int code = cinfo->err->msg_code;
    if (code != JWRN_JFIF_MAJOR && code != JWRN_ADOBE_XFORM && code != JWRN_BOGUS_ICC) jpeg_fail(cinfo);
}

// The steps below return false when libjpeg gave up (d.message says why).
// They create no object with a destructor, so a longjmp out of libjpeg skips
// none; all their state lives in `d`.
bool jpeg_read_header_of(JpegDecoder& d, const std::uint8_t* data, std::size_t size) {
    d.cinfo.err = jpeg_std_error(&d.errors);
    d.errors.error_exit = jpeg_fail;
    d.errors.emit_message = jpeg_message;
    d.cinfo.client_data = &d;  // kept by jpeg_create_decompress
    if (setjmp(d.jump) != 0) return false;
    jpeg_create_decompress(&d.cinfo);
    jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
    jpeg_save_markers(&d.cinfo, JPEG_APP0 + 1, 0xFFFF);  // the Exif block
    jpeg_read_header(&d.cinfo, TRUE);
    // grfmt_jpeg.cpp for a colour image: CMYK (and YCCK) as CMYK, converted
    // below; everything else straight to BGR (its JCS_RGB and a swap give the
    // same bytes). DCT method, fancy upsampling and block smoothing keep
    // libjpeg's defaults, as OpenCV does; libjpeg-turbo supplies the standard
    // Huffman tables of MJPEG frames that lack them, as OpenCV does by hand.
    d.cinfo.out_color_space = d.cinfo.num_components == 4 ? JCS_CMYK : JCS_EXT_BGR;
    jpeg_calc_output_dimensions(&d.cinfo);
    return true;
}

// OpenCV's icvCvt_CMYK2BGR_8u_C4C3R (utils.cpp), for one row.
void cmyk_to_bgr(const std::uint8_t* cmyk, std::uint8_t* bgr, int width) {
    for (int i = 0; i < width; ++i, cmyk += 4, bgr += 3) {
        const int k = cmyk[3];
        bgr[2] = static_cast<std::uint8_t>(k - ((255 - cmyk[0]) * k >> 8));
        bgr[1] = static_cast<std::uint8_t>(k - ((255 - cmyk[1]) * k >> 8));
        bgr[0] = static_cast<std::uint8_t>(k - ((255 - cmyk[2]) * k >> 8));
    }
}

bool jpeg_read_rows(JpegDecoder& d, cv::Mat& bgr, std::uint8_t* cmyk_row) {
    if (setjmp(d.jump) != 0) return false;
    jpeg_start_decompress(&d.cinfo);
    if (d.cinfo.output_width != static_cast<JDIMENSION>(bgr.cols) ||
        d.cinfo.output_height != static_cast<JDIMENSION>(bgr.rows))
        return false;
    while (d.cinfo.output_scanline < d.cinfo.output_height) {
        std::uint8_t* out = bgr.ptr(static_cast<int>(d.cinfo.output_scanline));
        JSAMPROW row = cmyk_row != nullptr ? cmyk_row : out;
        if (jpeg_read_scanlines(&d.cinfo, &row, 1) != 1) return false;
        if (cmyk_row != nullptr) cmyk_to_bgr(cmyk_row, out, bgr.cols);
    }
    return true;
}

bool jpeg_finish(JpegDecoder& d) {
    if (setjmp(d.jump) != 0) return false;
    jpeg_finish_decompress(&d.cinfo);
    return true;
}

cv::Mat decode_jpeg(const ByteView& v) {
    JpegDecoder d;
    if (!jpeg_read_header_of(d, v.data(), v.size())) undecodable("jpeg", d.message);
    // grfmt_jpeg.cpp reads EXIF from the first APP1 segment, whatever it
    // holds, past its 6-byte "Exif\0\0" header.
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = d.cinfo.marker_list; m != nullptr; m = m->next) {
        if (m->marker != JPEG_APP0 + 1) continue;
        if (m->data_length > 6) orientation = exif_orientation(ByteView(m->data + 6, m->data_length - 6));
        break;
    }
    cv::Mat bgr(static_cast<int>(d.cinfo.output_height), static_cast<int>(d.cinfo.output_width), CV_8UC3);
    const bool cmyk = d.cinfo.out_color_space == JCS_CMYK;
    std::vector<std::uint8_t> cmyk_row(cmyk ? std::size_t{d.cinfo.output_width} * 4 : 0);
    if (!jpeg_read_rows(d, bgr, cmyk ? cmyk_row.data() : nullptr)) undecodable("jpeg", d.message);
    // A warning or error after the last row (in what follows the scan, e.g.
    // bytes of a damaged scan before EOI) fails the image too, where OpenCV
    // has already set its result: the rows decoded are not to be trusted.
    if (!jpeg_finish(d)) undecodable("jpeg", d.message);
    return apply_orientation(bgr, orientation);
}

// ---------------------------------------------------------------- PNG decoding

struct PngDecoder {
    png_structp png = nullptr;
    png_infop info = nullptr;
    png_infop end_info = nullptr;
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    std::size_t pos = 0;
    char message[256] = {};

    PngDecoder(const std::uint8_t* bytes, std::size_t n) : data(bytes), size(n) {}
    PngDecoder(const PngDecoder&) = delete;
    PngDecoder& operator=(const PngDecoder&) = delete;
    ~PngDecoder() {
        if (png != nullptr) png_destroy_read_struct(&png, &info, &end_info);
    }
};

// libpng's error function: keeps the message and longjmps back to the
// current step (its default prints "libpng error: ..." to stderr first).
[[noreturn]] void png_fail(png_structp png, png_const_charp why) {
    auto* d = static_cast<PngDecoder*>(png_get_error_ptr(png));
    std::snprintf(d->message, sizeof d->message, "%s", why);
    png_longjmp(png, 1);
}

void png_quiet(png_structp, png_const_charp) {}

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
    auto* d = static_cast<PngDecoder*>(png_get_io_ptr(png));
    if (n > d->size - d->pos) png_error(png, "PNG input buffer is incomplete");
    std::memcpy(out, d->data + d->pos, n);
    d->pos += n;
}

// As jpeg_read_header_of and jpeg_read_rows: false when libpng gave up, and
// no object with a destructor in their frames.
bool png_read_header_of(PngDecoder& d) {
    d.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d, png_fail, png_quiet);
    if (d.png != nullptr) d.info = png_create_info_struct(d.png);
    if (d.info != nullptr) d.end_info = png_create_info_struct(d.png);
    if (d.end_info == nullptr) {
        std::snprintf(d.message, sizeof d.message, "out of memory");
        return false;
    }
    if (setjmp(png_jmpbuf(d.png)) != 0) return false;
    png_set_read_fn(d.png, &d, png_read_bytes);
    png_read_info(d.png, d.info);
    return true;
}

// grfmt_png.cpp's readData for an 8-bit 3-channel image (IMREAD_COLOR).
bool png_read_rows(PngDecoder& d, png_bytepp rows, std::size_t row_bytes) {
    if (setjmp(png_jmpbuf(d.png)) != 0) return false;
    const int depth = png_get_bit_depth(d.png, d.info);
    const int type = png_get_color_type(d.png, d.info);
    // OpenCV also calls png_set_swap on little-endian machines when it does
    // not strip: it only affects 16-bit output, which IMREAD_COLOR never asks for.
    if (depth == 16) png_set_strip_16(d.png);  // the high byte: no rounding
    png_set_strip_alpha(d.png);                // alpha and tRNS dropped, not composed
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(d.png);
    if ((type & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(d.png);
    if ((type & PNG_COLOR_MASK_COLOR) != 0)
        png_set_bgr(d.png);
    else
        png_set_gray_to_rgb(d.png);
    png_set_interlace_handling(d.png);
    png_read_update_info(d.png, d.info);  // no gamma or colour-profile handling, as in OpenCV
    if (png_get_rowbytes(d.png, d.info) != row_bytes) png_error(d.png, "unexpected row size");
    png_read_image(d.png, rows);
    png_read_end(d.png, d.end_info);
    return true;
}

cv::Mat decode_png(const ByteView& v) {
    PngDecoder d(v.data(), v.size());
    if (!png_read_header_of(d)) undecodable("png", d.message);
    cv::Mat bgr(static_cast<int>(png_get_image_height(d.png, d.info)),
                static_cast<int>(png_get_image_width(d.png, d.info)), CV_8UC3);
    std::vector<png_bytep> rows(static_cast<std::size_t>(bgr.rows));
    for (int y = 0; y < bgr.rows; ++y) rows[static_cast<std::size_t>(y)] = bgr.ptr(y);
    if (!png_read_rows(d, rows.data(), static_cast<std::size_t>(bgr.cols) * 3)) undecodable("png", d.message);
    // grfmt_png.cpp: an eXIf chunk before the image data, else one after it.
    png_uint_32 exif_size = 0;
    png_bytep exif = nullptr;
    if (png_get_valid(d.png, d.info, PNG_INFO_eXIf) != 0)
        png_get_eXIf_1(d.png, d.info, &exif_size, &exif);
    else if (png_get_valid(d.png, d.end_info, PNG_INFO_eXIf) != 0)
        png_get_eXIf_1(d.png, d.end_info, &exif_size, &exif);
    const int orientation = exif != nullptr && exif_size > 0 ? exif_orientation(ByteView(exif, exif_size)) : 1;
    return apply_orientation(bgr, orientation);
}

// ---------------------------------------------------------------- other formats

// Through OpenCV's imgcodecs, loaded on first use.
cv::Mat decode_with_opencv(const std::vector<std::uint8_t>& bytes) {
    quiet_opencv_logging();
    // imdecode only reads the buffer; the const_cast spares a copy.
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<std::uint8_t*>(bytes.data()));
    cv::Mat decoded = imgcodecs::imdecode(buffer, cv::IMREAD_COLOR);
    if (!decoded.empty()) decoded = to_bgr8(decoded);
    return decoded;
}

}  // namespace

ImageHeader peek_image_header(const std::uint8_t* data, std::size_t size) {
    ByteView v(data, data == nullptr ? 0 : size);
    if (v.starts_with(0, "\xFF\xD8\xFF", 3)) return peek_jpeg(v);
    if (v.starts_with(0, "\x89PNG\r\n\x1A\n", 8)) return peek_png(v);
    if (v.starts_with(0, "GIF87a", 6) || v.starts_with(0, "GIF89a", 6)) return peek_gif(v);
    if (v.starts_with(0, "BM", 2)) return peek_bmp(v);
    if (v.starts_with(0, "RIFF", 4) && v.starts_with(8, "WEBP", 4)) return peek_webp(v);
    if (v.has(0, 3) && v.u8(0) == 'P' && v.u8(1) >= '1' && v.u8(1) <= '6' && std::isspace(v.u8(2))) return peek_pnm(v);
    if (v.starts_with(0, "II*\0", 4) || v.starts_with(0, "MM\0*", 4) || v.starts_with(0, "II+\0", 4) ||
        v.starts_with(0, "MM\0+", 4))
        return peek_tiff(v);
    fail(ErrorKind::invalid_input, "not an image (unknown format)");
}

DecodedImage decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name, const ImageLimits& limits) {
    const auto refuse = [&name](ErrorKind kind, const std::string& why) -> Error {
        return Error(kind, fmt::format("cannot read image '{}': {}", name, why));
    };
    if (bytes.empty()) throw refuse(ErrorKind::invalid_input, "empty file");
    // cv::Mat sizes are int: a buffer beyond INT_MAX bytes cannot be handed to imdecode.
    const std::uint64_t max_bytes = std::min<std::uint64_t>(limits.max_file_bytes, std::numeric_limits<int>::max());
    if (bytes.size() > max_bytes)
        throw refuse(ErrorKind::too_large,
                     fmt::format("{} bytes is over the limit of {} bytes", bytes.size(), max_bytes));

    ImageHeader header;
    try {
        header = peek_image_header(bytes.data(), bytes.size());
    } catch (const Error& e) {
        throw refuse(e.kind(), e.what());
    }
    const auto w = static_cast<std::uint64_t>(header.width);
    const auto h = static_cast<std::uint64_t>(header.height);
    if (w == 0 || h == 0) throw refuse(ErrorKind::invalid_input, fmt::format("image is {}x{}", w, h));
    if (w * h > limits.max_pixels)
        throw refuse(ErrorKind::too_large,
                     fmt::format("{}x{} is {} pixels, over the limit of {} pixels", w, h, w * h, limits.max_pixels));
    if (w > opencv_max_side || h > opencv_max_side || w * h > opencv_max_pixels)
        throw refuse(ErrorKind::too_large,
                     fmt::format("{}x{} is over the decoder's limit of {} pixels a side and {} pixels", w, h,
                                 opencv_max_side, opencv_max_pixels));

    try {
        check_complete(header.format, ByteView(bytes.data(), bytes.size()));
    } catch (const Error& e) {
        throw refuse(e.kind(), e.what());
    }

    cv::Mat decoded;
    try {
        const ByteView view(bytes.data(), bytes.size());
        if (header.format == "jpeg")
            decoded = decode_jpeg(view);
        else if (header.format == "png")
            decoded = decode_png(view);
        else
            decoded = decode_with_opencv(bytes);
    } catch (const Error& e) {
        throw refuse(e.kind(), e.what());
    } catch (const cv::Exception& e) {
        if (e.func == "validateInputImageSize")
            throw refuse(ErrorKind::too_large,
                         fmt::format("{}x{} is over the decoder's limit ({})", w, h, one_line(e.err)));
        throw refuse(ErrorKind::invalid_input, fmt::format("cannot decode: {}", one_line(e.err)));
    } catch (const std::bad_alloc&) {
        throw refuse(ErrorKind::too_large, fmt::format("not enough memory to decode {}x{}", w, h));
    }
    if (decoded.empty()) {
        if (header.format == "gif")
            throw refuse(ErrorKind::invalid_input,
                         fmt::format("GIF is not supported by this OpenCV build ({})", CV_VERSION));
        throw refuse(ErrorKind::invalid_input,
                     fmt::format("cannot decode {} data (corrupt or truncated)", header.format));
    }
    // The header decided whether to decode; make sure it told the truth.
    const auto pixels = static_cast<std::uint64_t>(decoded.cols) * static_cast<std::uint64_t>(decoded.rows);
    if (pixels > limits.max_pixels)
        throw refuse(ErrorKind::too_large, fmt::format("decoded {}x{} is over the limit of {} pixels", decoded.cols,
                                                       decoded.rows, limits.max_pixels));

    DecodedImage out;
    out.bgr = std::move(decoded);
    out.format = header.format;
    out.sha256 = sha256_hex(bytes.data(), bytes.size());
    out.bytes = bytes.size();
    return out;
}

DecodedImage load_image_file(const std::filesystem::path& path, const ImageLimits& limits) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (st.type() == fs::file_type::not_found)
        throw Error(ErrorKind::not_found, fmt::format("no such file '{}'", path.string()));
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot read image '{}': {}", path.string(), ec.message()));
    if (st.type() == fs::file_type::directory)
        throw Error(ErrorKind::invalid_input, fmt::format("cannot read image '{}': is a directory", path.string()));
    if (st.type() != fs::file_type::regular)
        throw Error(ErrorKind::invalid_input, fmt::format("cannot read image '{}': not a regular file", path.string()));
    // Refuse huge files before reading them; decode_image checks the bytes again.
    const std::uintmax_t size = fs::file_size(path, ec);
    if (!ec && size > limits.max_file_bytes)
        throw Error(ErrorKind::too_large, fmt::format("cannot read image '{}': {} bytes is over the limit of {} bytes",
                                                      path.string(), size, limits.max_file_bytes));
    return decode_image(read_file(path), path.string(), limits);
}

bool has_image_extension(const std::filesystem::path& path) {
    static const char* const extensions[] = {"jpg", "jpeg", "png", "bmp", "gif", "webp",
                                             "tif", "tiff", "pgm", "ppm", "pnm", "pbm"};
    std::string ext = path.extension().string();
    if (ext.size() < 2) return false;
    ext.erase(0, 1);
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return std::any_of(std::begin(extensions), std::end(extensions), [&ext](const char* e) { return ext == e; });
}

}  // namespace faceq
