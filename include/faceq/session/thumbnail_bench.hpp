// faceq/session/thumbnail_bench.hpp — the benchmark behind `faceq bench
// thumbnails`: what a face thumbnail (pipeline/thumbnail.hpp) costs at each
// JPEG quality, on the faces the session's detector finds in real photos:
// bytes per face (mean, percentiles, largest) and milliseconds per face (crop,
// resize and encode, on one worker thread). It chose thumbnail_quality
// (docs/benchmarks.md, "Face thumbnails"). Figures, not pass/fail.
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

struct ThumbnailQualityFigures {
    int quality = 0;
    bool made = false;  // make_face_thumbnail itself: thumbnail_quality, lowered for faces above the limit
    std::size_t faces = 0;
    double mean_bytes = 0;
    std::size_t p50_bytes = 0, p90_bytes = 0, p99_bytes = 0, max_bytes = 0;
    std::size_t over_limit = 0;  // faces above thumbnail_max_bytes
    double ms_per_face = 0;      // mean wall time per thumbnail on a worker (crop, resize, encode)
};

struct ThumbnailBenchResult {
    std::size_t photos = 0, failed = 0, faces = 0;
    std::vector<ThumbnailQualityFigures> qualities;  // in the order asked, then make_face_thumbnail's
};

// Finds the faces of every file (the session's detector) and makes each face's
// thumbnail at each of `qualities` (1..100) with encode_face_thumbnail, and
// with make_face_thumbnail.
ThumbnailBenchResult run_thumbnail_bench(const AnalysisSession& session, const std::vector<std::string>& files,
                                         const std::vector<int>& qualities, int jobs, const ProgressFn& progress);

}  // namespace faceq
