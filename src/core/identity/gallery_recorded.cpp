// gallery_recorded.cpp — Gallery::recorded_faces (gallery.hpp): each recorded
// photo's faces and their persons, from the store's whole-row scans (the
// ones gallery copy reads), so that no store needs a query of its own.
#include <map>
#include <unordered_map>

#include "identity/gallery_impl.hpp"

namespace faceq {

std::vector<RecordedFace> Gallery::recorded_faces() {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) {
        std::unordered_map<std::int64_t, PersonRef> persons;
        r.scan_person_rows([&](std::int64_t id, const NewPerson& p) {
            persons[id] = PersonRef{id, p.public_id, p.name, p.kind};
        });
        struct Image {
            std::string path, sha256;
            std::int64_t analyzed_at = 0;
        };
        std::unordered_map<std::int64_t, Image> images;
        std::map<std::string, std::int64_t> newest;  // path -> image id of its newest analysis
        r.scan_image_rows([&](std::int64_t id, const ImageFacts& facts, std::int64_t analyzed_at) {
            images[id] = {facts.path, facts.sha256, analyzed_at};
            auto [it, inserted] = newest.emplace(facts.path, id);
            if (!inserted && analyzed_at >= images[it->second].analyzed_at) it->second = id;
        });
        std::unordered_map<std::int64_t, std::vector<RecordedFace>> faces;  // by image id
        r.scan_detection_rows([&](std::int64_t, const NewDetection& d) {
            const auto image = images.find(d.image);
            if (image == images.end() || newest[image->second.path] != d.image) return;
            RecordedFace f;
            f.path = image->second.path;
            f.sha256 = image->second.sha256;
            f.analyzed_at = image->second.analyzed_at;
            f.box = d.box;
            f.decision = d.decision;
            if (d.person) {
                const auto p = persons.find(*d.person);
                if (p != persons.end()) f.person = p->second;
            }
            faces[d.image].push_back(std::move(f));
        });
        std::vector<RecordedFace> out;
        for (const auto& [path, id] : newest) {
            auto it = faces.find(id);
            if (it == faces.end()) continue;
            for (auto& f : it->second) out.push_back(std::move(f));
        }
        return out;
    });
}

}  // namespace faceq
