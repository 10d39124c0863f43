// faceq/session/detection_bench.hpp — the detection benchmark behind
// `faceq bench detection DIR --boxes boxes.csv`: scores detectors on photos
// whose faces are boxed (WIDER FACE's protocol, as ../shared/data/wider-dev
// documents it).
//
// Boxes file: CSV with a header naming at least `file,x,y,w,h` and optionally
// `flag`; one row per face, in pixels of the photo (`file` relative to DIR). A
// face with an empty flag is scored; a flagged one (`small`, `invalid`, ...)
// is neither a hit nor a miss, and a detection on it is not a false positive.
// A photo listed in the file is scored even when all its faces are flagged;
// photos of DIR not in the file are not read.
//
// Scoring: a photo's detections, best confidence first, each take the
// unmatched face they overlap most when IoU >= 0.5 (a hit on a scored face, an
// ignored detection on a flagged one, else a false positive). Recall = hits /
// scored faces; precision = hits / (hits + false positives); average precision
// = VOC all-point interpolated, over every photo's detections ranked by
// confidence; recall by face width (of the boxes file) in bands 20-40, 40-80
// and >= 80 px; ms per photo = the detector's wall time per photo, one thread
// per worker (decoding excluded).
//
// Errors: Error{not_found} for a boxes file that cannot be opened,
// Error{invalid_input} for one that cannot be parsed (which file, which line,
// why), Error{usage} for an unknown detector; a photo that cannot be decoded is counted in
// `unreadable` and its faces as misses, never thrown.
// Thread-safety: runs `jobs` worker threads of its own; call from one thread.
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "faceq/base/progress.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/detector.hpp"

namespace faceq {

struct TruthBox {
    Box box;
    bool scored = true;  // false: flagged in the boxes file (ignored)
};

// Photo file (relative to the benchmark's folder) -> its boxed faces.
using BoxTruth = std::map<std::string, std::vector<TruthBox>>;

BoxTruth read_boxes_csv(const std::filesystem::path& csv);

// Face-width bands of DetectionScore::band_recall.
inline constexpr std::array<int, 4> detection_bands = {20, 40, 80, 1 << 30};

struct DetectionScore {
    std::string detector;
    std::size_t photos = 0, unreadable = 0;
    std::string first_unreadable;  // the error of the first photo that could not be read
    std::size_t faces = 0;         // scored faces
    std::size_t hits = 0, false_positives = 0, detections = 0;
    double recall = 0, precision = 0, fp_per_photo = 0, average_precision = 0;
    std::array<std::size_t, 3> band_faces{}, band_hits{};
    std::array<double, 3> band_recall{};  // 20-40, 40-80, >= 80 px (NaN-free: 0 for an empty band)
    double ms_per_photo = 0;
};

// Runs the detector `name` (make_detector with `options`) over the photos of
// `truth` in `dir` with `jobs` workers and scores it.
DetectionScore bench_detection(const std::string& name, const ModelSet& models, const DetectorOptions& options,
                               const std::filesystem::path& dir, const BoxTruth& truth, int jobs,
                               const ProgressFn& progress);

// The scoring alone, on detections already made (one vector per photo of
// `truth`, in its order): what bench_detection() reports without the timing.
DetectionScore score_detections(const BoxTruth& truth, const std::vector<std::vector<Detection>>& found);

}  // namespace faceq
