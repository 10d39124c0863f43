// faceq/session/thumbnails.hpp — `faceq gallery thumbnails`: makes the
// thumbnails a gallery lacks (faces recorded before faceq stored them, or
// with --no-thumbnails) from the photos they were recorded from.
//
// Each photo recorded for a face without a thumbnail (Gallery::
// missing_thumbnails) is read from its recorded path and checked against its
// recorded sha256; its faces' thumbnails are cut at their stored boxes
// (make_face_thumbnail) — nothing is analysed again. Photos are committed a
// batch at a time, so an interrupted run keeps what it finished and a second
// run goes on from there. A photo that is missing, changed since it was
// recorded, or cannot be decoded is reported (on_skip, once per face) and its
// faces stay without a thumbnail: no thumbnail is made from another file. A
// dry run reads and checks every photo the same way and writes nothing.
//
// Errors: Error{database} from the gallery. Photos' own failures are reported
// through `on_skip`, never thrown. Thread-safety: runs `jobs` worker threads
// of its own; call from one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "faceq/base/progress.hpp"
#include "faceq/identity/gallery.hpp"

namespace faceq {

struct ThumbnailSkip {
    StoredFace face;
    std::string reason;  // "missing", "changed since it was recorded", "no path was recorded", a decoding error
};

struct ThumbnailsResult {
    std::size_t samples = 0, detections = 0;            // without a thumbnail when the run started
    std::size_t samples_made = 0, detections_made = 0;  // stored (with dry_run: that would be)
    std::size_t photos = 0, skipped = 0;                // photos read; faces left without one
    std::size_t bytes = 0;                              // of the thumbnails made
    bool dry_run = false;
    bool interrupted = false;
};

ThumbnailsResult make_missing_thumbnails(Gallery& gallery, bool dry_run, int jobs, const std::function<bool()>& stop,
                                         const ProgressFn& progress,
                                         const std::function<void(const ThumbnailSkip&)>& on_skip);

}  // namespace faceq
