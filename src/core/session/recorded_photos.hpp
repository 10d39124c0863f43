// session/recorded_photos.hpp — what `faceq gallery reindex` and `faceq
// gallery thumbnails` share: the stored faces they work on grouped by the
// photo they were recorded from, and that photo read back only when it is
// still the one recorded (same sha256). Both then make something of each face
// (a new descriptor, a thumbnail) or say why not.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "faceq/base/batch.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/pipeline/image_io.hpp"

namespace faceq::detail {

// One photo and its stored faces (StoredDescriptor, StoredFace: anything with
// path and sha256).
template <class StoredFaceT>
struct RecordedPhoto {
    std::string path, sha256;
    std::vector<StoredFaceT> faces;
};

// The faces grouped by photo (path and sha256), in the order each photo first appears.
template <class StoredFaceT>
std::vector<RecordedPhoto<StoredFaceT>> group_by_photo(const std::vector<StoredFaceT>& faces) {
    std::vector<RecordedPhoto<StoredFaceT>> photos;
    std::map<std::pair<std::string, std::string>, std::size_t> index;
    for (const auto& f : faces) {
        auto it = index.find({f.path, f.sha256});
        if (it == index.end()) {
            it = index.emplace(std::make_pair(f.path, f.sha256), photos.size()).first;
            photos.push_back({f.path, f.sha256, {}});
        }
        photos[it->second].faces.push_back(f);
    }
    return photos;
}

// The photo at `path` decoded, when it is still the photo whose bytes had
// `sha256`; else why it cannot be used: "no path was recorded", "missing",
// the decoder's error, or "changed since it was recorded" (another photo
// under the old name is not the face that was recorded).
std::variant<DecodedImage, std::string> load_recorded_photo(const std::string& path, const std::string& sha256);

// Runs a worker over `count` photos on `jobs` threads (`make_worker()` gives
// each thread its function, index -> std::optional<Outcome>, nullopt once
// stopped) and hands each photo's Outcome to `take` on this thread, in photo
// order; `commit()` every `batch` photos and once at the end, so an
// interrupted run keeps what it finished; progress under `stage`. Returns the
// number of photos taken and whether the run was stopped before the end.
template <class Outcome, class MakeWorker, class Take, class Commit>
std::pair<std::size_t, bool> for_each_photo_in_batches(std::size_t count, int jobs, std::size_t batch,
                                                       const char* stage, const ProgressFn& progress,
                                                       MakeWorker make_worker, Take take, Commit commit) {
    std::size_t delivered = 0;
    bool interrupted = false;
    ordered_parallel<std::optional<Outcome>>(count, jobs, make_worker,
                                             [&](std::size_t, std::optional<Outcome>&& outcome) {
                                                 if (!outcome || interrupted) {
                                                     interrupted = true;
                                                     return;
                                                 }
                                                 take(std::move(*outcome));
                                                 if (++delivered % batch == 0) commit();
                                                 if (progress) progress({stage, delivered, count});
                                             });
    commit();
    return {delivered, interrupted};
}

}  // namespace faceq::detail
