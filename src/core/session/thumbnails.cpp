// thumbnails.cpp — see faceq/session/thumbnails.hpp.
#include "faceq/session/thumbnails.hpp"

#include <optional>
#include <string>
#include <variant>

#include "faceq/base/batch.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/pipeline/thumbnail.hpp"
#include "session/recorded_photos.hpp"

namespace faceq {
namespace {

using Photo = detail::RecordedPhoto<StoredFace>;

// What one worker made of one photo: thumbnails, or why not.
struct Outcome {
    std::vector<FaceThumbnail> made;
    std::vector<ThumbnailSkip> skipped;
};

Outcome thumbnails_of(const Photo& photo) {
    Outcome out;
    auto skip_all = [&](const std::string& why) {
        for (const auto& f : photo.faces) out.skipped.push_back({f, why});
        return out;
    };
    auto loaded = detail::load_recorded_photo(photo.path, photo.sha256);
    if (const auto* why = std::get_if<std::string>(&loaded)) return skip_all(*why);
    const DecodedImage& image = std::get<DecodedImage>(loaded);
    for (const auto& f : photo.faces) {
        try {
            out.made.push_back({f, make_face_thumbnail(image.bgr, f.box)});
        } catch (const std::exception& e) {
            out.skipped.push_back({f, e.what()});  // a degenerate stored box
        }
    }
    return out;
}

}  // namespace

ThumbnailsResult make_missing_thumbnails(Gallery& gallery, bool dry_run, int jobs, const std::function<bool()>& stop,
                                         const ProgressFn& progress,
                                         const std::function<void(const ThumbnailSkip&)>& on_skip) {
    ThumbnailsResult r;
    r.dry_run = dry_run;
    const auto missing = gallery.missing_thumbnails();
    for (const auto& f : missing) (f.sample ? r.samples : r.detections) += 1;
    const std::vector<Photo> photos = detail::group_by_photo(missing);

    // Commit every `batch` photos: an interrupted run keeps what it finished.
    constexpr std::size_t batch = 32;
    std::vector<FaceThumbnail> pending;
    auto commit = [&] {
        if (pending.empty()) return;
        if (!dry_run) gallery.add_thumbnails(pending);
        for (const auto& t : pending) {
            (t.face.sample ? r.samples_made : r.detections_made) += 1;
            r.bytes += t.jpeg.size();
        }
        pending.clear();
    };
    const auto [taken, stopped] = detail::for_each_photo_in_batches<Outcome>(
        photos.size(), jobs, batch, "thumbnails", progress,
        [&] {
            return [&](std::size_t i) -> std::optional<Outcome> {
                if (stop && stop()) return std::nullopt;
                return thumbnails_of(photos[i]);
            };
        },
        [&](Outcome&& outcome) {
            for (auto& t : outcome.made) pending.push_back(std::move(t));
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
