// gallery_cluster.cpp — Gallery::cluster (see faceq/identity/gallery.hpp):
// strangers' detections grouped with dlib's chinese_whispers, each group made
// one unknown person (but never a detection the person was rejected for:
// Gallery::reject). Runs in one write transaction, so the detections it
// reads cannot change before it moves them.
#include <dlib/clustering.h>

#include <algorithm>
#include <map>
#include <set>

#include "faceq/base/time.hpp"
#include "faceq/identity/gallery.hpp"
#include "identity/gallery_impl.hpp"

namespace faceq {
namespace {

// An edge between every two detections nearer than `threshold`, and one from
// each to itself, so every detection takes part even alone.
std::vector<dlib::sample_pair> near_pairs(const std::vector<ClusterDetection>& rows, float threshold) {
    std::vector<dlib::sample_pair> edges;
    const float t2 = threshold * threshold;
    std::vector<float> d2(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        edges.emplace_back(i, i);
        const std::size_t rest = rows.size() - i - 1;
        if (rest == 0) break;
        std::vector<float> flat(rest * 128);
        for (std::size_t j = 0; j < rest; ++j)
            std::copy(rows[i + 1 + j].descriptor.begin(), rows[i + 1 + j].descriptor.end(),
                      flat.begin() + static_cast<std::ptrdiff_t>(j * 128));
        squared_distances(flat.data(), rest, rows[i].descriptor.data(), d2.data());
        for (std::size_t j = 0; j < rest; ++j)
            if (d2[j] < t2) edges.emplace_back(i, i + 1 + j);
    }
    return edges;
}

// The groups (indices into rows), biggest first; equal sizes keep dlib's order.
std::vector<std::vector<std::size_t>> groups_of(const std::vector<ClusterDetection>& rows, float threshold) {
    std::vector<unsigned long> labels;
    dlib::rand rnd;  // fixed seed: the same detections cluster the same way every run
    const unsigned long count = dlib::chinese_whispers(near_pairs(rows, threshold), labels, 100, rnd);
    std::vector<std::vector<std::size_t>> members(count);
    for (std::size_t i = 0; i < rows.size(); ++i) members[labels[i]].push_back(i);
    std::stable_sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    return members;
}

// The stranger a group keeps: the one most of its members already had that
// no bigger group took (the older id on a tie), so ids stay stable across runs.
std::optional<std::int64_t> kept_person(const std::vector<ClusterDetection>& rows,
                                        const std::vector<std::size_t>& members, const std::set<std::int64_t>& taken) {
    std::map<std::int64_t, std::size_t> votes;
    for (std::size_t i : members)
        if (rows[i].person) ++votes[*rows[i].person];
    std::vector<std::pair<std::size_t, std::int64_t>> ranked;
    for (const auto& [person, n] : votes) ranked.emplace_back(n, person);
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (const auto& [n, person] : ranked)
        if (!taken.count(person)) return person;
    return std::nullopt;
}

// For each row, the persons it was rejected from ("not this person"): its
// own detection's rejections, and those whose descriptor lies within
// rejection_radius of it (the same face stored again).
std::vector<std::set<std::int64_t>> rejected_from(StoreReader& r, const std::string& embedder,
                                                  const std::vector<ClusterDetection>& rows) {
    std::vector<RejectionRow> rejections;
    r.scan_rejections(embedder, [&](const RejectionRow& x) { rejections.push_back(x); });
    std::vector<std::set<std::int64_t>> out(rows.size());
    if (rejections.empty()) return out;
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (const auto& x : rejections)
            if (x.detection == rows[i].detection ||
                descriptor_distance(x.descriptor, rows[i].descriptor) < rejection_radius)
                out[i].insert(x.person);
    return out;
}

}  // namespace

ClusterResult Gallery::cluster(const std::string& embedder, float threshold) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    ClusterResult out;
    impl_->write([&](StoreWriter& w) {
        out = ClusterResult{};
        // Strangers' detections, and those left unattributed because they were
        // near someone without a clear answer (decision unknown, no person).
        const auto rows = w.cluster_detections(embedder);
        out.detections = static_cast<std::int64_t>(rows.size());
        if (rows.empty()) return;
        const auto groups = groups_of(rows, threshold);
        const auto rejected = rejected_from(w, embedder, rows);
        out.clusters = static_cast<std::int64_t>(groups.size());
        std::set<std::int64_t> taken;
        const std::int64_t now = unix_now();
        for (const auto& members : groups) {
            std::optional<std::int64_t> target = kept_person(rows, members, taken);
            const bool created = !target;
            if (created)
                target = impl_->add_person(w, std::nullopt, "unknown", now).id, ++out.persons_created;
            else
                ++out.persons_kept;
            taken.insert(*target);
            std::int64_t samples_added = 0;
            for (std::size_t i : members) {
                if (rejected[i].count(*target)) continue;  // never back to a person it was rejected from
                if (rows[i].person != target) {
                    w.reassign_detection(rows[i].detection, *target, Decision::unknown);
                    ++out.reassigned;
                }
                // A new stranger gets samples from its detections, so it can be recognised.
                if (created && samples_added < max_stranger_samples &&
                    w.add_sample_from_detection(*target, rows[i].detection, now))
                    ++samples_added;
            }
        }
        out.persons_removed = w.delete_orphan_strangers();
    });
    impl_->cache.invalidate();
    return out;
}

}  // namespace faceq
