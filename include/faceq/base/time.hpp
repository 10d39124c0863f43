// faceq/base/time.hpp — the one place faceq turns times into text: UTC only,
// ISO 8601 with a "Z", so records from different machines sort and compare.
//
// Thread-safety: pure functions (gmtime_r). Throws nothing but std::bad_alloc.
#pragma once

#include <cstdint>
#include <string>

namespace faceq {

// Seconds since the Unix epoch, now.
std::int64_t unix_now();

// "YYYY-MM-DDTHH:MM:SSZ" for a Unix time.
std::string iso_time(std::int64_t unix_seconds);

// "YYYY-MM-DD" (the UTC day) for a Unix time.
std::string iso_day(std::int64_t unix_seconds);

// iso_time(unix_now()).
std::string utc_now_iso8601();

}  // namespace faceq
