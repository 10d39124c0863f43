// image_io.cpp — header sniffing, size limits and OpenCV decoding.
//
// Every header parser reads through ByteView, which checks bounds on each
// access, so a short or lying file can only make us throw, never read past the
// buffer. The declared size is checked against the caller's limit and against
// OpenCV's own decoder limit before cv::imdecode is called; truncated JPEG and
// PNG files are recognised from their structure (no EOI / no IEND) because
// libjpeg would otherwise hand back a half-grey image.
//
// EXIF orientation: OpenCV 4.6's cv::imdecode applies it itself (like
// cv::imread, unless IMREAD_IGNORE_ORIENTATION is passed), so this file does
// not rotate; tests/test_image_io.cpp checks all eight orientations.
#include "faceq/pipeline/image_io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
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
    // (imdecode_ "can't read header") and libpng prints its own errors; those
    // cannot be silenced from here, but the structural checks above keep most
    // broken files from reaching the decoders.
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

    quiet_opencv_logging();
    cv::Mat decoded;
    try {
        // imdecode only reads the buffer; the const_cast spares a copy.
        const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<std::uint8_t*>(bytes.data()));
        decoded = cv::imdecode(buffer, cv::IMREAD_COLOR);
        if (!decoded.empty()) decoded = to_bgr8(decoded);
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
