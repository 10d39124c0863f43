#include "faceq/base/time.hpp"

#include <ctime>

namespace faceq {
namespace {

std::string format_utc(std::int64_t unix_seconds, const char* format) {
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    const std::size_t n = std::strftime(buf, sizeof buf, format, &tm);
    return std::string(buf, n);
}

}  // namespace

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string iso_time(std::int64_t unix_seconds) { return format_utc(unix_seconds, "%Y-%m-%dT%H:%M:%SZ"); }

std::string iso_day(std::int64_t unix_seconds) { return format_utc(unix_seconds, "%Y-%m-%d"); }

std::string utc_now_iso8601() { return iso_time(unix_now()); }

}  // namespace faceq
