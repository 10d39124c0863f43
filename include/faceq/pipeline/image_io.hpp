// faceq/pipeline/image_io.hpp — reading photos safely.
//
// decode_image() turns bytes into an 8-bit 3-channel BGR image with EXIF
// orientation applied: grayscale, RGBA/BGRA (alpha dropped) and 16-bit images
// are converted. Before decoding it reads the declared size from the header
// (JPEG, PNG, GIF, BMP, WebP, PNM, TIFF) and refuses images above the pixel
// limit, so a small file declaring 50000x50000 pixels is never decoded.
// Truncated JPEG/PNG data is refused rather than returned half-grey. Formats
// other than these seven are refused too (their size cannot be checked first),
// and GIF, whose header is read, cannot be decoded by OpenCV 4.6. JPEG and PNG
// are decoded with libjpeg and libpng, to exactly the pixels OpenCV 4.6's
// cv::imdecode(IMREAD_COLOR) gives; the other formats by OpenCV's imgcodecs,
// loaded on first use (pipeline/imgcodecs_lazy.hpp).
//
// Errors: Error{not_found} (missing file), Error{io} (unreadable),
// Error{invalid_input} (empty file, directory, not an image, truncated,
// corrupt, 0x0), Error{too_large} (over the byte or pixel limit, ours or
// OpenCV's), Error{internal} (imgcodecs cannot be loaded, for a format other
// than JPEG and PNG). Messages are one line and name the file:
// "cannot read image '<name>': <why>" ("no such file '<path>'" when missing).
// Thread-safety: all functions are reentrant. The first decode of a format
// other than JPEG and PNG lowers OpenCV's log level from WARNING (its default)
// to ERROR, once per process.
#pragma once

#include <cstdint>
#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

namespace faceq {

struct ImageLimits {
    std::uint64_t max_pixels = 100'000'000;  // 100 MP: bigger than any camera photo
    std::uint64_t max_file_bytes = 256ull << 20;
};

struct ImageHeader {
    std::string format;  // "jpeg", "png", ...
    int width = 0;
    int height = 0;
};

// Reads the declared size (before any EXIF rotation) without decoding, never
// reading past `size`. Throws Error{invalid_input} when the bytes are not a
// recognised image format or the header is cut short, Error{too_large} when a
// side does not fit in an int.
ImageHeader peek_image_header(const std::uint8_t* data, std::size_t size);

struct DecodedImage {
    cv::Mat bgr;         // CV_8UC3, EXIF orientation applied
    std::string format;  // from the header
    std::string sha256;  // of the encoded bytes
    std::uint64_t bytes = 0;
};

// `name` is used only in error messages (a path, or "upload").
DecodedImage decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name,
                          const ImageLimits& limits = {});
DecodedImage load_image_file(const std::filesystem::path& path, const ImageLimits& limits = {});

// True for the file extensions faceq treats as images when scanning folders.
bool has_image_extension(const std::filesystem::path& path);

}  // namespace faceq
