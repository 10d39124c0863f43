// bench.cpp — see faceq/session/bench.hpp.
#include "faceq/session/bench.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>

#include "base/sysinfo.hpp"
#include "faceq/base/batch.hpp"

namespace faceq {
namespace {

struct ItemStats {
    StageTimes times;
    std::size_t faces = 0;
    bool failed = false;
};

// CPU seconds (user + system) this process has used so far.
double process_cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Resets VmHWM so each run reports its own peak (Linux >= 4.0).
void reset_peak_rss() {
    const int fd = ::open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0) return;
    [[maybe_unused]] const auto n = ::write(fd, "5", 1);
    ::close(fd);
}

void add(StageTimes& sum, const StageTimes& t) {
    sum.decode += t.decode;
    sum.detect += t.detect;
    sum.landmarks += t.landmarks;
    sum.descriptor += t.descriptor;
    sum.gender += t.gender;
    sum.attributes += t.attributes;
}

}  // namespace

BenchResult run_bench(const AnalysisSession& session, const std::vector<std::string>& files, int jobs,
                      const ProgressFn& progress) {
    BenchResult r;
    r.jobs = jobs;
    r.images = files.size();
    reset_peak_rss();
    r.rss_start_mb = current_rss_bytes() / 1e6;
    const ImageLimits limits;
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = process_cpu_seconds();
    ordered_parallel<ItemStats>(
        files.size(), jobs,
        [&] {
            return [&, analyzer = Analyzer(session.prototype())](std::size_t i) mutable {
                ItemStats s;
                try {
                    const auto a = session.analyze_file(analyzer, files[i], limits);
                    s.times = a.result.times;
                    s.faces = a.result.faces.size();
                } catch (const std::exception&) {
                    s.failed = true;
                }
                return s;
            };
        },
        [&](std::size_t i, ItemStats&& s) {
            add(r.total, s.times);
            r.faces += s.faces;
            r.failed += s.failed ? 1 : 0;
            if (i == files.size() / 2) r.rss_middle_mb = current_rss_bytes() / 1e6;
            if (progress && i % 20 == 0) progress({"bench", i, files.size()});
        });
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.cpu_ms_per_image = files.empty() ? 0 : (process_cpu_seconds() - cpu_start) * 1000.0 / files.size();
    r.rss_end_mb = current_rss_bytes() / 1e6;
    r.rss_peak_mb = peak_rss_bytes() / 1e6;
    return r;
}

}  // namespace faceq
