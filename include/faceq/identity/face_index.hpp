// faceq/identity/face_index.hpp — the in-memory identification index: descriptors as
// rows of a flat float32 array, each row owned by a person, scanned exactly.
//
// nearest_persons() returns the k persons nearest to a query descriptor, each
// at the distance of its nearest row (best first, distinct persons). The
// gallery gives each person one row, the mean of its samples (measured best
// on LFW, docs/identification.md); the index itself accepts any number of
// rows per person. The scan is exact: one pass computing squared L2
// distances with a loop the compiler vectorizes (an AVX2 clone is picked at
// run time where the CPU has it), then a pass keeping the best k distinct
// persons. 100,000 rows take ~2.4 ms per query on one core
// (docs/benchmarks.md).
//
// Invariants: rows and person ids stay parallel. Thread-safety: const
// methods may run concurrently; add/replace/remove/clear need exclusive access.
// Throws nothing but std::bad_alloc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace faceq {

using Descriptor = std::array<float, 128>;

struct PersonMatch {
    std::int64_t person = 0;  // the caller's person key (the gallery's row id)
    float distance = 0;       // Euclidean distance to the person's nearest sample
};

class FaceIndex {
public:
    void reserve(std::size_t samples);
    // Appends a row; returns its position.
    std::size_t add(std::int64_t person, const Descriptor& descriptor);
    // Overwrites the descriptor of row `row` (e.g. a person's updated mean).
    void replace(std::size_t row, const Descriptor& descriptor);
    // Removes row `row` by moving the last row into its place; returns the
    // person of the row that moved there (nullopt when `row` was the last).
    std::optional<std::int64_t> remove(std::size_t row);
    void clear();

    std::size_t samples() const { return persons_of_rows_.size(); }
    std::size_t persons() const;
    bool empty() const { return persons_of_rows_.empty(); }

    // The k nearest distinct persons, best first (fewer when the index has fewer).
    std::vector<PersonMatch> nearest_persons(const Descriptor& query, std::size_t k) const;

private:
    std::vector<float> data_;  // samples() x 128
    std::vector<std::int64_t> persons_of_rows_;
};

// Squared Euclidean distances from `query` to `rows` consecutive 128-float rows.
void squared_distances(const float* rows_data, std::size_t rows, const float* query, float* out);

}  // namespace faceq
