// faceq/session/store_bench.hpp — how fast one gallery database records
// analyses from many writers at once (`faceq bench store`, issue 13): the
// figure that says how many analysis nodes one database serves.
//
// No image is analysed: each writer (its own Gallery, i.e. its own database
// connection, on its own thread, as a separate process would) records
// synthetic images of `faces_per_image` faces each, through the same
// Gallery::record_analysis that `analyze --store` and `serve` use. A face is
// a known person seen again (a random one of `persons` enrolled first, its
// descriptor jittered: the writer runs without the gallery's writer lock) or,
// with probability `new_share`, a new stranger (random descriptor: the lock
// is taken, store.hpp). Descriptors are random unit vectors: identification
// cost is incidental here, the database's is what is measured.
//
// Errors: Error{usage} for a target gallery that is not empty (the bench
// writes synthetic rows there; it never touches a real gallery), the store's
// errors otherwise. Thread-safety: run_store_bench owns its threads.
#pragma once

#include <cstdint>
#include <string>

#include "faceq/base/progress.hpp"
#include "faceq/identity/gallery.hpp"

namespace faceq {

struct StoreBenchOptions {
    std::string location;  // the gallery to write: a PostgreSQL URL or an SQLite file (must be empty)
    int writers = 8;
    double seconds = 20;  // how long the writers run
    int persons = 1000;   // known persons enrolled before
    int faces_per_image = 2;
    double new_share = 0.05;  // faces that are new strangers
    std::uint32_t seed = 1;
    // What the descriptors are recorded as computed by. A made-up id by
    // default; the installed embedder's lets a server on the gallery identify
    // against them (tools/bench_page.sh: the strangers' suggestions).
    std::string embedder = "bench@1";
};

struct StoreBenchResult {
    std::string engine;  // "postgresql" | "sqlite"
    double seconds = 0;  // measured wall time of the writing phase
    std::int64_t images = 0, detections = 0, new_strangers = 0;
    double images_per_second = 0, detections_per_second = 0;
    double p50_ms = 0, p99_ms = 0;  // per recorded image (one transaction)
    double enroll_seconds = 0;      // enrolling the known persons first
};

StoreBenchResult run_store_bench(const StoreBenchOptions& options, const LogFn& log);

}  // namespace faceq
