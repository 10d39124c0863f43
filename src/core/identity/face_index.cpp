#include "faceq/identity/face_index.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace faceq {

// Eight independent accumulators let the compiler vectorize the sum without
// -ffast-math (it may not reassociate one float accumulator). The AVX2 clone
// is chosen at load time on CPUs that have it; the default one uses SSE2.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void squared_distances(const float* rows_data, std::size_t rows, const float* query, float* out) {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = rows_data + r * 128;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (std::size_t j = 0; j < 128; j += 8) {
            for (std::size_t l = 0; l < 8; ++l) {
                const float d = row[j + l] - query[j + l];
                acc[l] += d * d;
            }
        }
        out[r] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
}

void FaceIndex::reserve(std::size_t samples) {
    data_.reserve(samples * 128);
    persons_of_rows_.reserve(samples);
}

std::size_t FaceIndex::add(std::int64_t person, const Descriptor& descriptor) {
    data_.insert(data_.end(), descriptor.begin(), descriptor.end());
    persons_of_rows_.push_back(person);
    return persons_of_rows_.size() - 1;
}

void FaceIndex::replace(std::size_t row, const Descriptor& descriptor) {
    std::copy(descriptor.begin(), descriptor.end(), data_.begin() + static_cast<std::ptrdiff_t>(row * 128));
}

std::optional<std::int64_t> FaceIndex::remove(std::size_t row) {
    const std::size_t last = samples() - 1;
    std::optional<std::int64_t> moved;
    if (row != last) {
        std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(last * 128), 128,
                    data_.begin() + static_cast<std::ptrdiff_t>(row * 128));
        persons_of_rows_[row] = persons_of_rows_[last];
        moved = persons_of_rows_[row];
    }
    data_.resize(last * 128);
    persons_of_rows_.pop_back();
    return moved;
}

void FaceIndex::clear() {
    data_.clear();
    persons_of_rows_.clear();
}

std::size_t FaceIndex::persons() const {
    return std::unordered_set<std::int64_t>(persons_of_rows_.begin(), persons_of_rows_.end()).size();
}

std::vector<PersonMatch> FaceIndex::nearest_persons(const Descriptor& query, std::size_t k) const {
    std::vector<PersonMatch> best;  // squared distances while scanning, sorted ascending
    if (k == 0 || empty()) return best;
    best.reserve(k + 1);
    // Blocks keep the distance buffer in L1 while the rows stream through.
    constexpr std::size_t block = 1024;
    float d2[block];
    const std::size_t n = samples();
    for (std::size_t start = 0; start < n; start += block) {
        const std::size_t count = std::min(block, n - start);
        squared_distances(data_.data() + start * 128, count, query.data(), d2);
        for (std::size_t i = 0; i < count; ++i) {
            const float d = d2[i];
            if (best.size() == k && d >= best.back().distance) continue;
            const std::int64_t person = persons_of_rows_[start + i];
            // A person already listed keeps only its nearest row.
            auto same =
                std::find_if(best.begin(), best.end(), [&](const PersonMatch& m) { return m.person == person; });
            if (same != best.end()) {
                if (d >= same->distance) continue;
                best.erase(same);
            } else if (best.size() == k) {
                best.pop_back();
            }
            const auto at = std::upper_bound(best.begin(), best.end(), d,
                                             [](float v, const PersonMatch& m) { return v < m.distance; });
            best.insert(at, PersonMatch{person, d});
        }
    }
    for (auto& m : best) m.distance = std::sqrt(m.distance);
    return best;
}

}  // namespace faceq
