#include "faceq/identity/face_index.hpp"

// hnswlib 0.6.2 (Debian 12) with its manual vectorization on reads one link
// past a full upper-level list to prefetch (an over-read of the malloc'd list
// that ASan reports in searchBaseLayer). Its vectorized distances are not
// used (DescriptorSpace below), so only those prefetch hints go.
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <thread>
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

namespace {

constexpr std::size_t no_row = std::numeric_limits<std::size_t>::max();

// hnswlib's metric, computed by squared_distances: the graph sees the
// distances the exact scan sees, bit for bit ((a-b)^2 == (b-a)^2 in IEEE
// arithmetic, so the argument order does not matter), and gets the AVX2
// clone, which hnswlib's own L2Space would not without -mavx.
class DescriptorSpace final : public hnswlib::SpaceInterface<float> {
public:
    std::size_t get_data_size() override { return sizeof(Descriptor); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return &distance; }
    void* get_dist_func_param() override { return &dimensions_; }

private:
    static float distance(const void* a, const void* b, const void*) {
        float out;
        squared_distances(static_cast<const float*>(b), 1, static_cast<const float*>(a), &out);
        return out;
    }
    std::size_t dimensions_ = 128;
};

}  // namespace

// Labels are hnswlib's names for nodes: a row's label stays while rows move
// (remove fills a gap with the last row, whose node does not move), so the
// two maps translate.
struct FaceIndex::Graph {
    Graph(std::size_t capacity, const GraphOptions& o)
        : hnsw(&space, std::max<std::size_t>(capacity, 1), o.links, o.build_breadth) {}
    DescriptorSpace space;  // before hnsw, which keeps a pointer into it
    hnswlib::HierarchicalNSW<float> hnsw;
    std::vector<std::size_t> label_of_row;
    std::vector<std::size_t> row_of_label;  // no_row once the row was removed
};

FaceIndex::FaceIndex() = default;
FaceIndex::~FaceIndex() = default;

void FaceIndex::reserve(std::size_t samples) {
    data_.reserve(samples * 128);
    persons_of_rows_.reserve(samples);
}

std::size_t FaceIndex::add(std::int64_t person, const Descriptor& descriptor) {
    data_.insert(data_.end(), descriptor.begin(), descriptor.end());
    persons_of_rows_.push_back(person);
    const std::size_t row = persons_of_rows_.size() - 1;
    if (graph_) {
        try {
            auto& g = *graph_;
            const std::size_t label = g.row_of_label.size();
            if (g.hnsw.cur_element_count >= g.hnsw.max_elements_)
                g.hnsw.resizeIndex(g.hnsw.max_elements_ + g.hnsw.max_elements_ / 2 + 1024);
            g.row_of_label.push_back(row);
            g.label_of_row.push_back(label);
            g.hnsw.addPoint(descriptor.data(), label);
            g.hnsw.setEf(search_breadth_for(samples()));
        } catch (const std::exception&) {
            drop_graph();  // a cache: the next query that needs it builds it again
        }
    }
    return row;
}

void FaceIndex::replace(std::size_t row, const Descriptor& descriptor) {
    std::copy(descriptor.begin(), descriptor.end(), data_.begin() + static_cast<std::ptrdiff_t>(row * 128));
    if (graph_) {
        try {
            // An existing label: hnswlib moves the node and relinks its neighbourhood.
            graph_->hnsw.addPoint(descriptor.data(), graph_->label_of_row[row]);
        } catch (const std::exception&) {
            drop_graph();
        }
    }
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
    if (graph_) {
        try {
            auto& g = *graph_;
            const std::size_t label = g.label_of_row[row];
            g.hnsw.markDelete(label);
            g.row_of_label[label] = no_row;
            if (row != last) {
                g.label_of_row[row] = g.label_of_row[last];
                g.row_of_label[g.label_of_row[row]] = row;
            }
            g.label_of_row.pop_back();
            // Deleted nodes are still walked through: past a quarter of the
            // rows they cost more than a rebuild saves.
            if (g.hnsw.num_deleted_ * 4 > samples() || !uses_graph())
                drop_graph();
            else
                g.hnsw.setEf(search_breadth_for(samples()));
        } catch (const std::exception&) {
            drop_graph();
        }
    }
    return moved;
}

void FaceIndex::clear() {
    data_.clear();
    persons_of_rows_.clear();
    drop_graph();
}

std::size_t FaceIndex::persons() const {
    return std::unordered_set<std::int64_t>(persons_of_rows_.begin(), persons_of_rows_.end()).size();
}

void FaceIndex::set_search(Search search) {
    search_ = search;
    // Kept when forcing the exact scan, so that switching back is immediate.
    if (graph_ && !uses_graph() && search_ != Search::exact) drop_graph();
}

void FaceIndex::set_graph_options(const GraphOptions& options) {
    const GraphOptions before = options_;
    options_ = options;
    options_.links = std::clamp<std::size_t>(options_.links, 2, 256);
    if (!graph_) return;
    // The shape of the graph depends on these; the search breadth does not.
    if (options_.links != before.links || options_.build_breadth != before.build_breadth || !uses_graph())
        drop_graph();
    else
        graph_->hnsw.setEf(search_breadth_for(samples()));
}

std::size_t FaceIndex::search_breadth_for(std::size_t rows) const {
    if (options_.search_breadth > 0) return options_.search_breadth;
    const double ef = 64.0 * std::pow(static_cast<double>(rows) / 30000.0, 0.8);
    return std::max<std::size_t>(64, (static_cast<std::size_t>(ef) + 31) / 32 * 32);
}

bool FaceIndex::uses_graph() const {
    if (empty()) return false;
    switch (search_) {
        case Search::exact:
            return false;
        case Search::graph:
            return true;
        case Search::automatic:
            break;
    }
    // Once built, the graph serves down to half the threshold, so that a
    // gallery hovering around it is not rebuilt again and again.
    // graph_ready_, not graph_: another const caller may be building it.
    const bool built = graph_ready_.load(std::memory_order_acquire);
    return samples() >= (built ? options_.threshold / 2 : options_.threshold);
}

void FaceIndex::build_graph() {
    if (uses_graph()) ensure_graph();
}

FaceIndex::GraphState FaceIndex::graph_state() const {
    const std::lock_guard<std::mutex> lock(graph_mutex_);
    GraphState s;
    s.builds = builds_;
    if (graph_) {
        s.built = true;
        s.nodes = graph_->hnsw.cur_element_count;
        s.deleted = graph_->hnsw.num_deleted_;
        s.search_breadth = graph_->hnsw.ef_;
    }
    return s;
}

void FaceIndex::drop_graph() {
    graph_.reset();
    graph_ready_.store(false, std::memory_order_release);
}

void FaceIndex::ensure_graph() const {
    if (graph_ready_.load(std::memory_order_acquire)) return;
    const std::lock_guard<std::mutex> lock(graph_mutex_);
    if (graph_ready_.load(std::memory_order_relaxed)) return;
    const std::size_t n = samples();
    try {
        auto g = std::make_unique<Graph>(n + n / 8 + 1024, options_);
        g->label_of_row.resize(n);
        std::iota(g->label_of_row.begin(), g->label_of_row.end(), std::size_t{0});
        g->row_of_label = g->label_of_row;
        // The first node alone (it becomes the entry point), then the rest
        // from several threads: hnswlib's insertion locks per node.
        // hnswlib's ef is not safe to set while searching: set here and by
        // non-const methods only.
        g->hnsw.setEf(search_breadth_for(n));
        if (n > 0) g->hnsw.addPoint(data_.data(), 0);
        std::atomic<std::size_t> next{1};
        std::exception_ptr failed;
        std::mutex failed_mutex;
        const auto insert = [&] {
            try {
                for (std::size_t row = next++; row < n; row = next++) g->hnsw.addPoint(data_.data() + row * 128, row);
            } catch (...) {
                const std::lock_guard<std::mutex> l(failed_mutex);
                failed = std::current_exception();
                next = n;
            }
        };
        const unsigned wanted =
            options_.build_threads > 0 ? options_.build_threads : std::max(std::thread::hardware_concurrency(), 1u);
        const unsigned threads =
            static_cast<unsigned>(std::min<std::size_t>(wanted, std::max<std::size_t>(n / 1000, 1)));
        std::vector<std::thread> workers;
        for (unsigned t = 1; t < threads; ++t) workers.emplace_back(insert);
        insert();
        for (auto& w : workers) w.join();
        if (failed) std::rethrow_exception(failed);
        graph_ = std::move(g);
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception&) {
        throw std::bad_alloc();  // hnswlib reports failed allocations as runtime_error
    }
    ++builds_;
    graph_ready_.store(true, std::memory_order_release);
}

std::vector<PersonMatch> FaceIndex::nearest_persons(const Descriptor& query, std::size_t k) const {
    if (k == 0 || empty()) return {};
    if (uses_graph()) {
        ensure_graph();
        return graph_nearest(query, k);
    }
    return exact_nearest(query, k);
}

std::vector<PersonMatch> FaceIndex::graph_nearest(const Descriptor& query, std::size_t k) const {
    const Graph& g = *graph_;
    const std::size_t n = samples();
    std::vector<PersonMatch> best;
    std::vector<std::pair<float, std::size_t>> found;  // squared distance, row
    // One row per person (the gallery) needs one search; with several, ask
    // for more rows until k distinct persons are among them.
    for (std::size_t want = k;; want = std::min(n, want * 4)) {
        try {
            auto heap = g.hnsw.searchKnn(query.data(), want);
            found.clear();
            for (; !heap.empty(); heap.pop()) found.emplace_back(heap.top().first, g.row_of_label[heap.top().second]);
        } catch (const std::runtime_error&) {
            return exact_nearest(query, k);  // hnswlib's consistency checks: the graph is not to be trusted
        }
        // Ascending distance, then row: the exact scan's order on ties.
        std::sort(found.begin(), found.end());
        best.clear();
        for (const auto& [d, row] : found) {
            const std::int64_t person = persons_of_rows_[row];
            if (std::none_of(best.begin(), best.end(), [&](const PersonMatch& m) { return m.person == person; }))
                best.push_back(PersonMatch{person, d});
            if (best.size() == k) break;
        }
        if (best.size() == k || want >= n) break;
    }
    for (auto& m : best) m.distance = std::sqrt(m.distance);
    return best;
}

std::vector<PersonMatch> FaceIndex::exact_nearest(const Descriptor& query, std::size_t k) const {
    std::vector<PersonMatch> best;  // squared distances while scanning, sorted ascending
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
