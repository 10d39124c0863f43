// float_blob.cpp — see float_blob.hpp.
#include "base/float_blob.hpp"

#include <cstring>

namespace faceq::detail {

std::vector<std::uint8_t> floats_to_blob(const float* values, std::size_t count) {
    std::vector<std::uint8_t> out(count * 4);
    for (std::size_t i = 0; i < count; ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, &values[i], 4);
        out[i * 4 + 0] = static_cast<std::uint8_t>(bits);
        out[i * 4 + 1] = static_cast<std::uint8_t>(bits >> 8);
        out[i * 4 + 2] = static_cast<std::uint8_t>(bits >> 16);
        out[i * 4 + 3] = static_cast<std::uint8_t>(bits >> 24);
    }
    return out;
}

bool blob_to_floats(const void* data, std::size_t size, float* out, std::size_t count) {
    if (data == nullptr || size != count * 4) return false;
    const auto* b = static_cast<const std::uint8_t*>(data);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t bits =
            static_cast<std::uint32_t>(b[i * 4]) | (static_cast<std::uint32_t>(b[i * 4 + 1]) << 8) |
            (static_cast<std::uint32_t>(b[i * 4 + 2]) << 16) | (static_cast<std::uint32_t>(b[i * 4 + 3]) << 24);
        std::memcpy(&out[i], &bits, 4);
    }
    return true;
}

}  // namespace faceq::detail
