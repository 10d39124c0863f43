// analyze_identity.hpp — what `faceq analyze` does with the gallery: identify
// every face when a gallery exists (or --store makes one), record images and
// detections with --store, and skip images stored before with the same
// models (same sha256, same model versions) unless --force. Kept apart from
// cmd_analyze.cpp so the pipeline command stays about the pipeline.
//
// Threads: unchanged() and pending() run on analyze's worker threads (the
// Gallery serializes them); apply() runs on the delivering thread, in input
// order, so a stranger in photo 3 already exists when photo 4 is identified.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {

struct IdentifyOptions {
    bool store = false;
    bool force = false;
    CalibrationFlags calibration;
};

void add_identify_options(CLI::App* sub, IdentifyOptions& options);

// One analysed image on its way from a worker to apply().
struct PendingIdentity {
    ImageFacts image;
    std::vector<Face> faces;
};

class AnalyzeIdentity {
public:
    AnalyzeIdentity(const Context& ctx, const ModelSet& models, const ModelVersions& versions,
                    const IdentifyOptions& options);
    ~AnalyzeIdentity();

    bool active() const { return gallery_ != nullptr; }
    // With --store and without --force: the record for an image already
    // stored with these models, which is then not analysed again.
    std::optional<nlohmann::json> unchanged(const std::string& path, const std::string& sha256);
    PendingIdentity pending(const std::string& path, const DecodedImage& image, const AnalysisResult& result) const;
    // Adds identity fields to the faces of `record` (and stores it with --store).
    void apply(nlohmann::json& record, const PendingIdentity& pending);

private:
    const Context& ctx_;
    IdentifyOptions options_;
    std::unique_ptr<Gallery> gallery_;
    IdentifyContext identify_;
    std::string models_key_;
    nlohmann::json calibration_json_;
};

}  // namespace faceq::cli
