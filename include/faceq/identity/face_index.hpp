// faceq/identity/face_index.hpp — the in-memory identification index:
// descriptors as rows of a flat float32 array, each row owned by a person,
// searched exactly below a size and through an HNSW graph (hnswlib) above it.
//
// nearest_persons() returns the k persons nearest to a query descriptor, each
// at the distance of its nearest row (best first, distinct persons). The
// gallery gives each person one row, the mean of its samples (measured best
// on LFW, docs/identification.md); the index itself accepts any number of
// rows per person.
//
// The exact scan: one pass computing squared L2 distances with a loop the
// compiler vectorizes (an AVX2 clone is picked at run time where the CPU has
// it), then a pass keeping the best k distinct persons. 100,000 rows take
// ~2.4 ms per query on one core (docs/benchmarks.md).
//
// The graph: from GraphOptions::threshold rows on (50,000, where the scan
// reaches ~0.8 ms; docs/scale.md, "Galleries of a million persons"), queries
// search a hierarchical navigable small-world graph over the same rows
// instead: approximate (recall@1 against the exact scan is measured, >= 0.99
// on docs/benchmarks.md's data, not guaranteed), ~1,340 bytes a row in all
// against the scan's 512. It is built on the first query
// that needs it (or by build_graph()), from all rows at once, and then kept in
// step by add/replace/remove: add inserts a node, replace moves the row's node
// (hnswlib's update, which relinks its neighbourhood), remove marks the node
// deleted (it stays in the graph as a waypoint, never returned). When the
// deleted nodes exceed a quarter of the rows the graph is dropped and rebuilt
// by the next query; below the threshold it is dropped and the exact scan
// answers. Distances are computed by the same function in both modes, so a
// row found by either has bit-identical distances. Search::exact forces the
// exact scan (for checking the graph against it).
//
// Invariants: rows and person ids stay parallel; when the graph exists it
// holds one live node per row (labels map both ways) and nothing else live.
// The rows are the truth; the graph is a cache of them that may be dropped
// at any time.
//
// Thread-safety: const methods may run concurrently (the first query that
// builds the graph takes an internal mutex; the others wait for it, then
// search without locking); every non-const method needs exclusive access.
// Throws nothing but std::bad_alloc (hnswlib's failures are memory
// failures: they drop the graph and surface as std::bad_alloc).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
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
    // How queries are answered.
    enum class Search {
        automatic,  // the graph from GraphOptions::threshold rows on, the exact scan below
        exact,      // always the exact scan (checking, measuring)
        graph,      // always the graph, at any size (tests, measuring)
    };

    // The graph's parameters (hnswlib's names in brackets). Defaults are the
    // ones measured in docs/benchmarks.md.
    struct GraphOptions {
        std::size_t threshold = 50000;    // rows from which Search::automatic uses the graph
        std::size_t links = 16;           // links per node [M]; layer 0 has twice as many
        std::size_t build_breadth = 100;  // candidates kept while inserting [ef_construction]
        // Candidates kept while searching [ef] (at least k); 0: by size,
        // max(64, 64 x (rows / 30,000)^0.8) rounded up to 32 (~1,060 at
        // 1,000,000 rows): the breadth that kept recall@1 >= 0.99 as the
        // gallery grew, measured in docs/benchmarks.md.
        std::size_t search_breadth = 0;
        unsigned build_threads = 0;  // threads for a full build (inserting is thread-safe); 0: all cores
    };

    // What the graph holds now (for tests and benches).
    struct GraphState {
        bool built = false;
        std::size_t nodes = 0;           // live + deleted
        std::size_t deleted = 0;         // nodes of removed rows
        std::size_t builds = 0;          // full builds since construction
        std::size_t search_breadth = 0;  // the ef searches use now
    };

    FaceIndex();
    ~FaceIndex();
    FaceIndex(const FaceIndex&) = delete;
    FaceIndex& operator=(const FaceIndex&) = delete;

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

    // Forcing the exact scan keeps a built graph; changing links or
    // build_breadth drops it (the next query that needs it rebuilds it).
    void set_search(Search search);
    Search search() const { return search_; }
    void set_graph_options(const GraphOptions& options);
    const GraphOptions& graph_options() const { return options_; }
    // Whether a query now searches the graph (built or not yet).
    bool uses_graph() const;
    // Builds the graph now if a query would use it and it is not built.
    void build_graph();
    GraphState graph_state() const;

private:
    struct Graph;  // hnswlib's types stay in face_index.cpp

    void ensure_graph() const;
    std::size_t search_breadth_for(std::size_t rows) const;
    void drop_graph();
    std::vector<PersonMatch> exact_nearest(const Descriptor& query, std::size_t k) const;
    std::vector<PersonMatch> graph_nearest(const Descriptor& query, std::size_t k) const;

    std::vector<float> data_;  // samples() x 128
    std::vector<std::int64_t> persons_of_rows_;
    Search search_ = Search::automatic;
    GraphOptions options_;
    // The graph cache: written by the first query needing it (under
    // graph_mutex_, published by graph_ready_) or by non-const methods.
    mutable std::mutex graph_mutex_;
    mutable std::atomic<bool> graph_ready_{false};
    mutable std::unique_ptr<Graph> graph_;
    mutable std::size_t builds_ = 0;
};

// Squared Euclidean distances from `query` to `rows` consecutive 128-float rows.
void squared_distances(const float* rows_data, std::size_t rows, const float* query, float* out);

}  // namespace faceq
