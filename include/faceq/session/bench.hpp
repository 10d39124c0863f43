// faceq/session/bench.hpp — the pipeline benchmark behind `faceq bench`:
// throughput of the whole analysis (decode, detect, landmarks, descriptors,
// gender, ages) over a list of photos with N workers, the mean time of each
// stage, CPU time per image and memory. Figures, not pass/fail: targets are
// compared in docs/benchmarks.md.
//
// CPU time per image does not depend on what else the machine runs, so it
// tells throughput on idle cores apart from contention. Memory: RSS after
// loading, at the middle and at the end of the run, and the peak (VmHWM,
// reset before each run where Linux allows it).
//
// Thread-safety: runs `jobs` worker threads of its own; call from one thread.
// Errors: a photo that fails is counted in `failed`, never thrown.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "faceq/base/progress.hpp"
#include "faceq/session/analysis_session.hpp"

namespace faceq {

struct BenchResult {
    int jobs = 1;
    std::size_t images = 0, failed = 0, faces = 0;
    double seconds = 0;
    StageTimes total;  // summed over images, milliseconds
    double cpu_ms_per_image = 0;
    double rss_start_mb = 0, rss_middle_mb = 0, rss_end_mb = 0, rss_peak_mb = 0;

    double images_per_second() const { return seconds > 0 ? images / seconds : 0; }
    double faces_per_second() const { return seconds > 0 ? faces / seconds : 0; }
    // Mean milliseconds of a stage per image (e.g. mean_ms(total.detect)).
    double mean_ms(double stage_total) const { return images ? stage_total / images : 0; }
};

// Analyses every file once with `jobs` workers (copies of the session's
// prototype); identification is not part of it.
BenchResult run_bench(const AnalysisSession& session, const std::vector<std::string>& files, int jobs,
                      const ProgressFn& progress);

}  // namespace faceq
