#include "analyze_identity.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cmath>

#include "faceq/session/records.hpp"

namespace faceq::cli {

void add_identify_options(CLI::App* sub, IdentifyOptions& options) {
    sub->add_flag("--store", options.store,
                  "Record images and detections in the gallery (strangers get stable ids); "
                  "images stored before with the same models are skipped");
    sub->add_flag("--force", options.force, "With --store: analyse and store images again even when unchanged");
    add_calibration_flags(sub, options.calibration);
}

AnalyzeIdentity::AnalyzeIdentity(const Context& ctx, const ModelSet& models, const ModelVersions& versions,
                                 const IdentifyOptions& options)
    : ctx_(ctx), options_(options) {
    gallery_ = open_gallery(ctx, options.store);
    if (!gallery_) return;
    identify_.embedder = versions.embedder;
    warn_foreign_samples(ctx, *gallery_, identify_.embedder);
    const auto persons = gallery_->usable(identify_.embedder).first;
    identify_.calibration = resolve_calibration(ctx, models.embedder, options.calibration, persons);
    models_key_ = models_to_json(versions).dump();
    calibration_json_ = {{"calibration", identify_.calibration.source},
                         {"threshold", std::round(identify_.calibration.threshold * 1e4) / 1e4},
                         {"margin", std::round(identify_.calibration.margin * 1e4) / 1e4}};
}

AnalyzeIdentity::~AnalyzeIdentity() = default;

std::optional<nlohmann::json> AnalyzeIdentity::unchanged(const std::string& path, const std::string& sha256) {
    if (!gallery_ || !options_.store || options_.force) return std::nullopt;
    const auto stored = gallery_->find_image(sha256, models_key_);
    if (!stored) return std::nullopt;
    return nlohmann::json{{"file", path}, {"skipped", "unchanged"}, {"analyzed_at", iso_time(stored->analyzed_at)}};
}

PendingIdentity AnalyzeIdentity::pending(const std::string& path, const DecodedImage& image,
                                         const AnalysisResult& result) const {
    PendingIdentity p;
    if (!gallery_) return p;
    p.image.path = path;
    p.image.sha256 = image.sha256;
    p.image.size = image.bytes;
    p.image.models = models_key_;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) p.image.mtime = static_cast<std::int64_t>(st.st_mtime);
    p.faces = result.faces;
    return p;
}

void AnalyzeIdentity::apply(nlohmann::json& record, const PendingIdentity& pending) {
    if (!gallery_ || !record.contains("faces")) return;
    std::optional<std::vector<Identity>> ids;
    if (options_.store) {
        ids = gallery_->record_analysis(pending.image, pending.faces, identify_, options_.force);
        record["stored"] = ids.has_value();
        // Stored already (the same photo twice in this batch, or another
        // process was faster): identify without writing.
    }
    if (!ids) {
        std::vector<Descriptor> descriptors;
        for (const auto& f : pending.faces)
            if (f.has_descriptor) descriptors.push_back(f.descriptor);
        const auto found = gallery_->identify(descriptors, identify_);
        ids.emplace();
        std::size_t k = 0;
        for (const auto& f : pending.faces) ids->push_back(f.has_descriptor ? found[k++] : Identity{});
    }
    auto& faces = record["faces"];
    for (std::size_t i = 0; i < faces.size() && i < ids->size(); ++i) add_identity(faces[i], (*ids)[i]);
    record["identification"] = calibration_json_;
}

}  // namespace faceq::cli
