// http/metrics.hpp (private) — the server's Prometheus metrics: requests by
// route, method and status, latency histograms by route, and counters of
// images, faces and registrations. Route and method labels are limited to the
// known ones (everything else is "other"), so that scanners probing random
// paths cannot blow up the number of series.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace faceq::detail {

inline constexpr std::array<double, 12> latency_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

struct Histogram {
    std::array<std::uint64_t, latency_buckets.size()> buckets{};  // non-cumulative
    std::uint64_t count = 0;
    double sum = 0;

    void observe(double seconds);
};

// The label of a route ("/analyze"; "/api" for every /api/ route, "/ui" for
// the page's files) or "other"; of a method ("GET") or "other".
std::string route_label(const std::string& path);
std::string method_label(const std::string& method);

class Metrics {
public:
    // One answered request; `seconds` < 0 when its duration is unknown.
    void request(const std::string& method, const std::string& path, int status, double seconds);
    // Appends the metrics in Prometheus' text format.
    void write(std::string& out) const;

    std::atomic<std::uint64_t> images_analyzed{0};
    std::atomic<std::uint64_t> faces_analyzed{0};
    std::atomic<std::uint64_t> persons_registered{0};

private:
    mutable std::mutex mutex_;
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
    std::map<std::string, Histogram> latency_;
};

}  // namespace faceq::detail
