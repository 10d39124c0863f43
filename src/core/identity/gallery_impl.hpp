// gallery_impl.hpp — Gallery's private state, shared by the files that
// implement it (gallery.cpp: persons, identification, storing analyses,
// prune, stats; gallery_cluster.cpp: clustering). Private to the core.
//
// Invariants: every public Gallery method holds `mu` while it uses the store
// or the cache; writes go through write(), which keeps the cache honest when
// a transaction body is run again or fails (see IndexCache).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "faceq/identity/gallery.hpp"
#include "faceq/identity/store.hpp"
#include "identity/index_cache.hpp"

namespace faceq {

// A stranger keeps at most this many samples: enough to be recognised from a
// few angles, few enough that its mean cannot drift far from the first face.
inline constexpr std::int64_t max_stranger_samples = 5;

struct Gallery::Impl {
    std::mutex mu;
    std::unique_ptr<GalleryStore> store;
    std::filesystem::path path;  // store->description(), for path() and messages
    IndexCache cache;

    explicit Impl(std::unique_ptr<GalleryStore> s);

    // store->write(body), dropping the cache before a body runs again (the
    // attempt before was rolled back, with whatever it put in the cache) and
    // when the transaction fails.
    void write(const std::function<void(StoreWriter&)>& body,
               GalleryStore::Finish finish = GalleryStore::Finish::commit,
               GalleryStore::Lock lock = GalleryStore::Lock::at_start);

    // What body returns, read in one read transaction.
    template <typename Body>
    auto read(Body&& body) -> decltype(body(std::declval<StoreReader&>())) {
        std::optional<decltype(body(std::declval<StoreReader&>()))> out;
        store->read([&](StoreReader& r) { out = body(r); });
        return std::move(*out);
    }

    // A new person with a fresh public id (person_... or unknown_...).
    PersonRef add_person(StoreWriter& w, const std::optional<std::string>& name, const std::string& kind,
                         std::int64_t now);
    // The person with this public id or name, or Error{not_found}.
    PersonInfo require_person(StoreReader& r, const std::string& who);

    // The known person nearest to a stranger's mean, when within the
    // calibration's candidate_limit() (the cache must be current): what
    // merge_candidates() and suggestion() report.
    std::optional<Suggestion> suggest(const Descriptor& stranger_mean, const Calibration& calibration);

    // Identifies one face of an image being stored (the cache must be
    // current) and writes its detection: a face nobody is near becomes a new
    // stranger, and a stranger keeps the face as a sample while it has fewer
    // than max_stranger_samples.
    Identity record_face(StoreWriter& w, std::int64_t image_id, const ImageFacts& image, const Face& face,
                         const IdentifyContext& context, std::int64_t now);
};

}  // namespace faceq
