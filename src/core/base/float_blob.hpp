// float_blob.hpp — float32 arrays as portable bytes, private to the core: how
// every gallery store keeps descriptors (128 float32, little-endian whatever
// the host's byte order; SQLite BLOB, PostgreSQL bytea), so a file or a dump
// moves between machines unchanged.
//
// Errors: none thrown; blob_to_floats says false for bytes of the wrong size.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace faceq::detail {

std::vector<std::uint8_t> floats_to_blob(const float* values, std::size_t count);
// False (and `out` untouched) unless `size` is exactly count * 4 bytes.
bool blob_to_floats(const void* data, std::size_t size, float* out, std::size_t count);

}  // namespace faceq::detail
