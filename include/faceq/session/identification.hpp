// faceq/session/identification.hpp — a home's gallery opened for
// identification: the gallery, the embedder whose descriptors it compares,
// and the calibration that decides (models/resolve.hpp). Every command that
// identifies (analyze, search --face, cluster) and the HTTP server open it
// the same way, through open_identification().
//
// Opening reports, through `log`, samples computed by another embedder (they
// are never compared: "warning: ...") and the calibration in use ("debug:
// ..."). Errors: Error{database} when the gallery cannot be opened.
// Thread-safety: the Gallery serializes its own calls (gallery.hpp); the
// context is a plain value.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "faceq/base/home.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/models/resolve.hpp"

namespace faceq {

struct Identification {
    std::unique_ptr<Gallery> gallery;  // nullptr: the home has no gallery (and none was to be created)
    IdentifyContext context;           // embedder id + calibration (set when `gallery` is)

    // {"calibration": source, "threshold", "margin"} as analysis records carry it.
    nlohmann::json summary() const;
};

// The home's gallery (home.gallery_location(): the SQLite file, or the
// PostgreSQL database of home.database_url); nullptr when it does not exist
// (PostgreSQL: the database has no gallery schema) and `create` is false.
// `log` hears about retried transactions.
std::unique_ptr<Gallery> open_gallery(const Home& home, bool create, const LogFn& log = {});

// Logs a warning when the gallery holds samples another embedder computed.
void report_foreign_samples(Gallery& gallery, const std::string& embedder_id, const LogFn& log);

// open_gallery(), report_foreign_samples(), then resolve_calibration() for the
// gallery's current number of usable persons.
Identification open_identification(const Home& home, const EmbedderIdentity& embedder, const CalibrationChoice& choice,
                                   bool create, const LogFn& log);

}  // namespace faceq
