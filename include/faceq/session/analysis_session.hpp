// faceq/session/analysis_session.hpp — analyse an image, identify its faces,
// record it: the one implementation behind `faceq analyze`, `faceq bench`,
// `faceq search --face` and the HTTP server's /analyze (and, with
// enroller.hpp, `faceq enroll` and /register).
//
//   AnalysisSession session(home, manifest, options, log);   // models, gallery, calibration
//   Analyzer worker = session.prototype();                     // one copy per thread
//                                                              // (or take_prototype() for one)
//   ImageAnalysis a = session.analyze_file(worker, path, limits);   // any thread
//   json record = session.record(a, embeddings);
//   session.identify(a, record);                               // in input order
//
// Building a session resolves the models (installed files + the deployed
// age/gender head, models/resolve.hpp), loads the networks once (the
// prototype Analyzer), sets one BLAS thread per worker (parallelism is across
// images), and opens the gallery for identification when it exists — or
// creates it when `store` or `create_gallery` asks — with the calibration for
// the installed embedder (session/identification.hpp).
//
// The --store rules. With `store`, identify() records the image and its
// detections in one transaction (strangers seen for the first time become
// unknown persons). An image recorded before with the same models (same
// sha256, same model versions) is not analysed again when `skip_unchanged`
// and not `force`: analyze() returns its "skipped" record. With `force`, the
// stored detections are replaced. Without `skip_unchanged` (the HTTP API
// analyses every upload) an image stored before is identified without
// writing ("stored": false). Without `store`, faces are identified against
// the gallery and nothing is written. With `store` and `thumbnails`, analyze()
// makes each face's thumbnail (Face::thumbnail_jpeg, pipeline/thumbnail.hpp)
// on the worker's thread, where the decoded image is at hand, and identify()
// stores it with the detection.
//
// Threads: analyze()/analyze_file() and record() may run on any number of
// threads at once, each with its own Analyzer copy (dlib networks are not
// thread-safe). identify() may be called from several threads (the Gallery
// serializes them), but where the order of images matters (a batch, so that a
// stranger first met in photo 3 is known in photo 4) call it from one thread
// in input order.
//
// Errors: the constructor throws Error{model} (missing or broken models, a
// head for another embedder) and Error{database}; analyze_file() throws the
// image errors of image_io.hpp; identify() throws Error{database}.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "faceq/base/home.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/session/identification.hpp"

namespace faceq {

struct SessionOptions {
    AnalyzeOptions analyze;
    CalibrationChoice calibration;  // --far / --threshold
    bool store = false;             // record images and detections (analyze --store; serve unless --no-store)
    bool force = false;             // with store: analyse and replace images stored before
    bool skip_unchanged = true;     // with store and not force: do not analyse images stored before
    bool create_gallery = false;    // open (create) the gallery even when not storing
    bool identify = true;           // consult the gallery at all (bench does not)
    bool deployed_head = true;      // use the registry's age/gender head (enroll does not need ages)
    bool thumbnails = true;         // with store: each face's thumbnail, stored with it (--no-thumbnails)
};

// One image on its way from a worker to identify().
struct ImageAnalysis {
    std::string name;                       // the path, or the upload's name, as records show it
    DecodedImage image;                     // kept for --draw; empty when skipped
    std::optional<std::int64_t> mtime;      // of the file, unix seconds
    AnalysisResult result;                  // result.times.decode filled by analyze_file()
    std::optional<nlohmann::json> skipped;  // {"file", "skipped": "unchanged", "analyzed_at"}
    double elapsed_ms = 0;                  // decoding + analysis
};

class AnalysisSession {
public:
    AnalysisSession(const Home& home, const Manifest& manifest, const SessionOptions& options, const LogFn& log);
    ~AnalysisSession();
    AnalysisSession(const AnalysisSession&) = delete;
    AnalysisSession& operator=(const AnalysisSession&) = delete;

    const SessionOptions& options() const;
    const ModelSet& models() const;
    // Copy it once per worker thread. Throws Error{internal} after take_prototype().
    const Analyzer& prototype() const;
    // The prototype itself, for a caller with a single worker: copying the
    // networks costs ~0.1 s, a sixth of analysing one photo from a shell.
    Analyzer take_prototype();
    const ModelVersions& versions() const;
    // models_to_json(versions()) and its dump, the key images are stored under.
    const nlohmann::json& models_json() const;
    // True when a gallery is consulted (it existed, or store/create_gallery made one).
    bool identifies() const;
    // The gallery and identification context; gallery is nullptr when !identifies().
    const Identification& identification() const;
    Gallery* gallery() const;

    // Analyses an image decoded by the caller (see the --store rules above for `skipped`).
    ImageAnalysis analyze(Analyzer& worker, std::string name, DecodedImage image, std::optional<std::int64_t> mtime,
                          double decode_ms = 0) const;
    // Loads, decodes (image_io.hpp limits) and analyses a file.
    ImageAnalysis analyze_file(Analyzer& worker, const std::string& path, const ImageLimits& limits) const;

    // The analysis record of records.hpp; for a skipped image, its skipped record.
    nlohmann::json record(const ImageAnalysis& analysis, bool with_embeddings) const;

    // Identifies the faces of `analysis` (and records the image with store) and
    // adds the identity fields to `record`: per face "identity", "person_id",
    // "decision", "distance", "margin" (records.hpp), and "identification" and,
    // with store, "stored". Does nothing without a gallery or for a skipped image.
    void identify(const ImageAnalysis& analysis, nlohmann::json& record);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceq
