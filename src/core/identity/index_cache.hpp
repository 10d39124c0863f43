// index_cache.hpp — the gallery's identification index, kept in memory
// between calls (private to the core; Gallery owns one).
//
// For one embedder at a time: every person of the store (its PersonRef), and
// for each person with samples of that embedder one FaceIndex row holding the
// mean of those samples (the sums are kept, so adding a sample updates the
// mean without reading the others). Known persons and strangers have an
// index each, so the nearest of either kind comes from the same one pass
// over all rows that one index would take (identification's stranger rules,
// calibration.hpp), and the persons' rejections of that embedder (their
// descriptors: few, scanned whole per query). refresh() makes it current from what a
// StoreReader sees: nothing is read while the store's change probe has not
// moved; when it moved, the generation tells whether samples or persons
// changed, and then the persons changed since the cache's generation are
// read again, each alone (store.hpp, "Change detection"); everything is
// reloaded only when more than half the persons changed or the store's log
// does not reach back that far.
//
// Invariants: when valid, the index holds exactly the committed samples of
// `embedder` as of `generation`, plus what add_person/add_sample added inside
// the current transaction (which are read again, with any other change, when
// the generation next moves). The owner must invalidate() when a transaction
// it changed the cache in does not commit (Gallery does, on any failure and
// before a retried body runs), and after its own commits that the cache did
// not follow (its own commits do not move SQLite's probe).
//
// Errors: what the reader throws; a failed reload leaves the cache invalid.
// Thread-safety: none (Gallery's mutex).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "faceq/identity/face_index.hpp"
#include "faceq/identity/store.hpp"

namespace faceq {

// The k nearest of two lists of matches (each best first), best first; on
// equal distances `a`'s come first.
std::vector<PersonMatch> nearest_of(std::vector<PersonMatch> a, const std::vector<PersonMatch>& b, std::size_t k);

class IndexCache {
public:
    // How old a record_analysis may let the index be when every face matches
    // someone (Gallery::record_analysis; a face that may be new always
    // refreshes, under the writer lock).
    static constexpr std::chrono::milliseconds max_staleness{50};

    // Makes the index current for `embedder`: cheap when nothing changed.
    void refresh(StoreReader& reader, const std::string& embedder);
    // refresh(), unless the index holds `embedder` and was refreshed less
    // than `max_age` ago.
    void refresh_within(StoreReader& reader, const std::string& embedder, std::chrono::milliseconds max_age) {
        if (!valid_ || embedder_ != embedder || std::chrono::steady_clock::now() - refreshed_ > max_age)
            refresh(reader, embedder);
    }
    // Forgets everything: the next refresh reloads.
    void invalidate() { valid_ = false; }
    // A person created in the current transaction (no samples yet).
    void add_person(const PersonRef& person);
    // A sample the current transaction added to a cached person.
    void add_sample(std::int64_t person, const Descriptor& descriptor);

    // The k nearest persons (one row each: its mean), best first: of both
    // kinds, known persons only, strangers only.
    std::vector<PersonMatch> nearest(const Descriptor& query, std::size_t k) const;
    std::vector<PersonMatch> nearest_known(const Descriptor& query, std::size_t k) const {
        return known_.nearest_persons(query, k);
    }
    std::vector<PersonMatch> nearest_strangers(const Descriptor& query, std::size_t k) const {
        return strangers_.nearest_persons(query, k);
    }
    // The mean of a person's samples (requires samples_of(person) > 0).
    Descriptor mean(std::int64_t person) const;
    // Every stranger with samples, and its mean.
    std::vector<std::pair<std::int64_t, Descriptor>> stranger_means() const;
    // The rejections ("not this person") of `embedder` whose descriptor lies
    // within `radius` of `d`: the persons a face there must not be given to.
    std::vector<const RejectionRow*> rejections_near(const Descriptor& d, float radius) const;
    // Requires a person the index returned or add_person added.
    const PersonRef& person(std::int64_t id) const { return persons_.at(id).ref; }
    // Samples of this embedder the person has (0 for one without).
    std::int64_t samples_of(std::int64_t person) const;
    std::size_t persons_with_samples() const { return known_.samples() + strangers_.samples(); }
    std::size_t samples() const;

private:
    struct Entry {
        PersonRef ref;
        std::array<double, 128> sum{};
        std::int64_t count = 0;
        std::optional<std::size_t> row;  // in index_for(ref), once it has samples
    };

    FaceIndex& index_for(const PersonRef& person) { return person.kind == "known" ? known_ : strangers_; }

    void reload(StoreReader& reader, const std::string& embedder);
    // Reads the persons `ids` (and their samples) again.
    void update(StoreReader& reader, const std::vector<std::int64_t>& ids);

    bool valid_ = false;
    std::chrono::steady_clock::time_point refreshed_;
    std::string embedder_;
    std::int64_t generation_ = -1;
    std::int64_t probe_ = -1;
    FaceIndex known_, strangers_;
    std::unordered_map<std::int64_t, Entry> persons_;
    // Rejections with a descriptor of embedder_, by person (only persons with some).
    std::unordered_map<std::int64_t, std::vector<RejectionRow>> rejections_;
};

}  // namespace faceq
