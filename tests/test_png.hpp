// tests/test_png.hpp — hand-made PNG bytes for the decoder and bomb tests:
// big-endian integers, chunks with real CRCs, and a PNG that declares any
// size while holding almost nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace faceq::test {

using Bytes = std::vector<std::uint8_t>;

inline void put_be32(Bytes& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

// The CRC-32 of PNG chunks (and zlib's): reflected polynomial 0xEDB88320.
inline std::uint32_t crc32(const std::uint8_t* p, std::size_t n) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

// Appends one chunk: length, type, data, CRC of type + data.
inline void png_chunk(Bytes& out, const char* type, const Bytes& data) {
    put_be32(out, static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    put_be32(out, crc32(out.data() + start, out.size() - start));
}

// A well-formed PNG (valid CRCs, IEND) declaring width x height 8-bit RGB
// pixels whose IDAT holds an empty zlib stream (one stored block): tiny, and a
// bomb if ever decoded. The size in the header is all a decoder would go by
// before allocating.
inline Bytes png_declaring(std::uint32_t width, std::uint32_t height) {
    Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    Bytes ihdr;
    put_be32(ihdr, width);
    put_be32(ihdr, height);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // depth 8, RGB, deflate, no filter, no interlace
    png_chunk(out, "IHDR", ihdr);
    png_chunk(out, "IDAT", {0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01});
    png_chunk(out, "IEND", {});
    return out;
}

}  // namespace faceq::test
