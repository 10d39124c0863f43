// index_cache.cpp — see index_cache.hpp.
#include "identity/index_cache.hpp"

#include <algorithm>

namespace faceq {
namespace {

template <typename Entry>
Descriptor mean_of(const Entry& e) {
    Descriptor d{};
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<float>(e.sum[i] / static_cast<double>(e.count));
    return d;
}

}  // namespace

void IndexCache::refresh(StoreReader& reader, const std::string& embedder) {
    const std::int64_t probe = reader.change_probe();
    refreshed_ = std::chrono::steady_clock::now();
    if (valid_ && embedder_ == embedder && probe == probe_) return;
    if (!valid_ || embedder_ != embedder) {
        reload(reader, embedder);
    } else if (const std::int64_t generation = reader.generation(); generation != generation_) {
        // Person by person while few changed; whole when many did (one scan
        // is then cheaper than many lookups) or the log no longer reaches back.
        const auto changed = reader.changed_persons(generation_);
        if (changed && changed->size() <= persons_.size() / 2 + 64) {
            update(reader, *changed);
            generation_ = generation;
        } else {
            reload(reader, embedder);
        }
    }
    probe_ = probe;
}

void IndexCache::update(StoreReader& reader, const std::vector<std::int64_t>& ids) {
    valid_ = false;  // until every changed person is back
    for (const std::int64_t id : ids) {
        const auto it = persons_.find(id);
        if (it == persons_.end()) continue;
        if (it->second.row) {
            const std::size_t row = *it->second.row;
            if (const auto moved = index_for(it->second.ref).remove(row)) persons_.at(*moved).row = row;
        }
        persons_.erase(it);
    }
    for (const std::int64_t id : ids) rejections_.erase(id);
    reader.scan_persons_in(ids, [&](const PersonRef& ref) { persons_[ref.id].ref = ref; });
    reader.scan_rejections_of(embedder_, ids, [&](const RejectionRow& r) { rejections_[r.person].push_back(r); });
    reader.scan_samples_of(embedder_, ids, [&](std::int64_t person, const Descriptor& d) {
        const auto it = persons_.find(person);
        if (it == persons_.end()) return;
        for (std::size_t i = 0; i < d.size(); ++i) it->second.sum[i] += d[i];
        ++it->second.count;
    });
    for (const std::int64_t id : ids) {
        const auto it = persons_.find(id);
        if (it != persons_.end() && it->second.count > 0 && !it->second.row)
            it->second.row = index_for(it->second.ref).add(id, mean_of(it->second));
    }
    valid_ = true;
}

void IndexCache::reload(StoreReader& reader, const std::string& embedder) {
    valid_ = false;
    known_.clear();
    strangers_.clear();
    persons_.clear();
    rejections_.clear();
    reader.scan_persons([&](const PersonRef& ref) { persons_[ref.id].ref = ref; });
    reader.scan_rejections(embedder, [&](const RejectionRow& r) { rejections_[r.person].push_back(r); });
    reader.scan_samples(embedder, [&](std::int64_t person, const Descriptor& d) {
        const auto it = persons_.find(person);
        if (it == persons_.end()) return;
        for (std::size_t i = 0; i < d.size(); ++i) it->second.sum[i] += d[i];
        ++it->second.count;
    });
    std::size_t known_rows = 0, stranger_rows = 0;
    for (const auto& [id, e] : persons_)
        if (e.count > 0) ++(e.ref.kind == "known" ? known_rows : stranger_rows);
    known_.reserve(known_rows + known_rows / 8 + 64);  // room to grow without copying it all at once
    strangers_.reserve(stranger_rows + stranger_rows / 8 + 64);
    for (auto& [id, e] : persons_)
        if (e.count > 0) e.row = index_for(e.ref).add(id, mean_of(e));
    embedder_ = embedder;
    generation_ = reader.generation();
    valid_ = true;
}

void IndexCache::add_person(const PersonRef& person) { persons_[person.id].ref = person; }

void IndexCache::add_sample(std::int64_t person, const Descriptor& d) {
    auto& e = persons_[person];
    for (std::size_t i = 0; i < d.size(); ++i) e.sum[i] += d[i];
    ++e.count;
    if (e.row)
        index_for(e.ref).replace(*e.row, mean_of(e));
    else
        e.row = index_for(e.ref).add(person, mean_of(e));
}

std::vector<const RejectionRow*> IndexCache::rejections_near(const Descriptor& d, float radius) const {
    std::vector<const RejectionRow*> out;
    for (const auto& [person, rows] : rejections_)
        for (const auto& r : rows)
            if (descriptor_distance(r.descriptor, d) < radius) out.push_back(&r);
    return out;
}

std::vector<PersonMatch> nearest_of(std::vector<PersonMatch> a, const std::vector<PersonMatch>& b, std::size_t k) {
    a.insert(a.end(), b.begin(), b.end());
    std::stable_sort(a.begin(), a.end(),
                     [](const PersonMatch& x, const PersonMatch& y) { return x.distance < y.distance; });
    if (a.size() > k) a.resize(k);
    return a;
}

std::vector<PersonMatch> IndexCache::nearest(const Descriptor& query, std::size_t k) const {
    return nearest_of(known_.nearest_persons(query, k), strangers_.nearest_persons(query, k), k);
}

Descriptor IndexCache::mean(std::int64_t person) const { return mean_of(persons_.at(person)); }

std::vector<std::pair<std::int64_t, Descriptor>> IndexCache::stranger_means() const {
    std::vector<std::pair<std::int64_t, Descriptor>> out;
    for (const auto& [id, e] : persons_)
        if (e.count > 0 && e.ref.kind != "known") out.emplace_back(id, mean_of(e));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
}

std::int64_t IndexCache::samples_of(std::int64_t person) const {
    const auto it = persons_.find(person);
    return it == persons_.end() ? 0 : it->second.count;
}

std::size_t IndexCache::samples() const {
    std::size_t n = 0;
    for (const auto& [id, e] : persons_) n += static_cast<std::size_t>(e.count);
    return n;
}

}  // namespace faceq
