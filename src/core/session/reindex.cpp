// reindex.cpp — see faceq/session/reindex.hpp.
#include "faceq/session/reindex.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <variant>

#include "faceq/base/batch.hpp"
#include "faceq/pipeline/compute.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "session/recorded_photos.hpp"

namespace faceq {
namespace {

using Photo = detail::RecordedPhoto<StoredDescriptor>;

// What one worker made of one photo: new descriptors, or why not.
struct Outcome {
    std::vector<Redescription> done;
    std::vector<ReindexSkip> skipped;
};

Outcome redescribe_photo(Analyzer& analyzer, const Photo& photo) {
    Outcome out;
    auto skip_all = [&](const std::string& why) {
        for (const auto& f : photo.faces) out.skipped.push_back({f, why});
        return out;
    };
    auto loaded = detail::load_recorded_photo(photo.path, photo.sha256);
    if (const auto* why = std::get_if<std::string>(&loaded)) return skip_all(*why);
    const DecodedImage& image = std::get<DecodedImage>(loaded);
    const AnalysisResult result = analyzer.analyze(image.bgr);
    const std::string& embedder = analyzer.versions().embedder;
    for (const auto& f : photo.faces) {
        const Face* best = nullptr;
        double best_iou = 0.3;
        for (const auto& face : result.faces) {
            const double o = iou(face.bbox, f.box);
            if (face.has_descriptor && o >= best_iou) best_iou = o, best = &face;
        }
        if (best)
            out.done.push_back({f, embedder, best->descriptor, best->bbox});
        else
            out.skipped.push_back({f, "no face at the stored box"});
    }
    return out;
}

}  // namespace

ReindexResult reindex_gallery(Gallery& gallery, const ModelSet& models, const AnalyzeOptions& options, int jobs,
                              const std::function<bool()>& stop, const ProgressFn& progress,
                              const std::function<void(const ReindexSkip&)>& on_skip) {
    AnalyzeOptions o = options;
    o.descriptors = true;
    o.gender = false;
    set_compute_threads(1);  // parallelism is across photos
    const Analyzer prototype(models, o);
    ReindexResult r;
    r.embedder = prototype.versions().embedder;
    const auto stale = gallery.stale_descriptors(r.embedder);
    for (const auto& s : stale) (s.sample ? r.samples : r.detections) += 1;
    const std::vector<Photo> photos = detail::group_by_photo(stale);

    // Commit every `batch` photos: an interrupted run keeps what it finished.
    constexpr std::size_t batch = 16;
    std::vector<Redescription> pending;
    auto commit = [&] {
        if (pending.empty()) return;
        gallery.redescribe(pending);
        for (const auto& p : pending) (p.which.sample ? r.samples_done : r.detections_done) += 1;
        pending.clear();
    };
    const auto [taken, stopped] = detail::for_each_photo_in_batches<Outcome>(
        photos.size(), jobs, batch, "reindex", progress,
        [&] {
            return [&, analyzer = Analyzer(prototype)](std::size_t i) mutable -> std::optional<Outcome> {
                if (stop && stop()) return std::nullopt;
                return redescribe_photo(analyzer, photos[i]);
            };
        },
        [&](Outcome&& outcome) {
            for (auto& d : outcome.done) pending.push_back(std::move(d));
            for (const auto& s : outcome.skipped) {
                ++r.skipped;
                if (on_skip) on_skip(s);
            }
        },
        commit);
    r.photos = taken;
    r.interrupted = stopped;
    return r;
}

}  // namespace faceq
