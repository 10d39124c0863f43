// faceq/session/reindex.hpp — `faceq gallery reindex`: re-describes a
// gallery's stored samples and detections with the installed pipeline, so a
// gallery built with one detector/alignment/embedder moves to another (their
// descriptors never compare: models.hpp, descriptor_identity()).
//
// Each photo recorded for a stale descriptor (one computed by another
// embedder id) is read from its recorded path, checked against its recorded
// sha256, analysed once, and each of its stored faces takes the descriptor of
// the analysed face that overlaps its stored box most (IoU >= 0.3; boxes of
// different detectors differ). Photos are committed a batch at a time, so an
// interrupted run keeps what it finished and a second run resumes: what was
// re-described carries the new id. A photo that is missing, changed or has no
// matching face is reported and its descriptors stay as they were (still
// usable by the pipeline that made them): nothing is lost.
//
// Errors: Error{model} for models that are not installed, Error{database} from
// the gallery. Photos' own failures are reported through `on_skip`, never
// thrown. Thread-safety: runs `jobs` worker threads of its own; call from one
// thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "faceq/base/home.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/models/models.hpp"
#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

struct ReindexSkip {
    StoredDescriptor which;
    std::string reason;  // "missing", "changed since it was recorded", "no face at the stored box", ...
};

struct ReindexResult {
    std::string embedder;                               // the id the descriptors now carry
    std::size_t samples = 0, detections = 0;            // stale when the run started
    std::size_t samples_done = 0, detections_done = 0;  // re-described (or merged, for samples)
    std::size_t photos = 0, skipped = 0;                // photos read; stale descriptors left as they were
    bool interrupted = false;
};

ReindexResult reindex_gallery(Gallery& gallery, const ModelSet& models, const AnalyzeOptions& options, int jobs,
                              const std::function<bool()>& stop, const ProgressFn& progress,
                              const std::function<void(const ReindexSkip&)>& on_skip);

}  // namespace faceq
