// metrics.cpp — see http/metrics.hpp.
#include "http/metrics.hpp"

#include <fmt/format.h>

namespace faceq::detail {
namespace {

const std::array<const char*, 6> route_names{"/health", "/analyze", "/register", "/stats", "/search", "/metrics"};
const std::array<const char*, 7> method_names{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};

}  // namespace

void Histogram::observe(double seconds) {
    for (std::size_t i = 0; i < latency_buckets.size(); ++i)
        if (seconds <= latency_buckets[i]) {
            ++buckets[i];
            break;
        }
    ++count;
    sum += seconds;
}

std::string route_label(const std::string& path) {
    for (const char* r : route_names)
        if (path == r) return r;
    // The page's routes, two series in all (a path holds person ids).
    if (path.rfind("/api/", 0) == 0) return "/api";
    if (path == "/" || path.rfind("/ui/", 0) == 0) return "/ui";
    return "other";
}

std::string method_label(const std::string& method) {
    for (const char* m : method_names)
        if (method == m) return m;
    return "other";
}

void Metrics::request(const std::string& method, const std::string& path, int status, double seconds) {
    const auto route = route_label(path);
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_[{route, method_label(method), status}];
    if (seconds >= 0) latency_[route].observe(seconds);
}

void Metrics::write(std::string& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    out +=
        "# HELP faceq_http_requests_total HTTP requests answered, by route, method and status.\n"
        "# TYPE faceq_http_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
        const auto& [route, method, status] = key;
        out += fmt::format("faceq_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n", route, method,
                           status, n);
    }
    out +=
        "# HELP faceq_http_request_duration_seconds Time from request line to response sent, by route.\n"
        "# TYPE faceq_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
            cumulative += h.buckets[i];
            out += fmt::format("faceq_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", route,
                               latency_buckets[i], cumulative);
        }
        out +=
            fmt::format("faceq_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", route, h.count);
        out += fmt::format("faceq_http_request_duration_seconds_sum{{route=\"{}\"}} {:.6f}\n", route, h.sum);
        out += fmt::format("faceq_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route, h.count);
    }
    out += fmt::format(
        "# HELP faceq_images_analyzed_total Images analysed by /analyze and /register.\n"
        "# TYPE faceq_images_analyzed_total counter\n"
        "faceq_images_analyzed_total {}\n"
        "# HELP faceq_faces_analyzed_total Faces found by /analyze.\n"
        "# TYPE faceq_faces_analyzed_total counter\n"
        "faceq_faces_analyzed_total {}\n"
        "# HELP faceq_persons_registered_total Samples added by /register.\n"
        "# TYPE faceq_persons_registered_total counter\n"
        "faceq_persons_registered_total {}\n",
        images_analyzed.load(), faces_analyzed.load(), persons_registered.load());
}

}  // namespace faceq::detail
