// fuzz_image.cpp — libFuzzer harness for decode_image() (pipeline/image_io.hpp):
// the header sniffers of all seven formats, the size limits, the truncation
// checks, the EXIF reader and the libjpeg/libpng front ends, on any bytes an
// upload or a folder scan could hand it.
//
// The pixel limit is small (256x256 and a bit): the limits are the code under
// test, not the decoders' speed, and a run must not spend its time on big
// allocations. Every input either decodes to what image_io.hpp promises or is
// refused with faceq::Error; anything else — a crash, a sanitizer report, an
// exception of another type — is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/pipeline/image_io.hpp"

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    faceq::ImageLimits limits;
    limits.max_pixels = 70'000;
    limits.max_file_bytes = 1 << 20;
    const std::vector<std::uint8_t> bytes(data, data + size);
    try {
        const faceq::DecodedImage image = faceq::decode_image(bytes, "fuzz", limits);
        require(image.bgr.type() == CV_8UC3 && !image.bgr.empty());
        require(static_cast<std::uint64_t>(image.bgr.total()) <= limits.max_pixels);
        require(image.bytes == size && image.sha256.size() == 64 && !image.format.empty());
    } catch (const faceq::Error&) {
        // Refused: what every bad input must get.
    }
    try {
        // The sniffer alone too: it must never read past `size` (ASan checks).
        const faceq::ImageHeader header = faceq::peek_image_header(data, size);
        require(header.width >= 0 && header.height >= 0);
    } catch (const faceq::Error&) {
    }
    return 0;
}
