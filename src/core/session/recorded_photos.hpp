// session/recorded_photos.hpp — what `faceq gallery reindex` and `faceq
// gallery thumbnails` share: the stored faces they work on grouped by the
// photo they were recorded from, and that photo read back only when it is
// still the one recorded (same sha256). Both then make something of each face
// (a new descriptor, a thumbnail) or say why not.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

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

}  // namespace faceq::detail
