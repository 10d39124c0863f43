// tests/test_gallery_lfw.cpp — identification measured on LFW View 1
// (../shared/data/lfw-dev): closed-set rank-1, open-set false accepts and
// false rejects at the default calibration for galleries of 10, 100 and 1,000
// persons, several samples per person, and --far. Descriptors come from the
// real pipeline once (lfw_descriptors.hpp caches them in the build tree);
// galleries are real Gallery databases in a TempDir, so the numbers are those
// of the code users run.
//
// [.slow] cases assert the measured bounds (run by the README's test
// command); [.bench] cases print the tables of docs/identification.md and the
// speed figures of docs/benchmarks.md (run by tools/bench_gallery.sh).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "base/sysinfo.hpp"
#include "faceq/identity/calibration.hpp"
#include "faceq/identity/face_index.hpp"
#include "faceq/identity/gallery.hpp"
#include "identity/index_cache.hpp"
#include "lfw_descriptors.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

const std::string embedder = "lfw-test-embedder";

// The people of lfw-dev with at least one detected face, sorted by name.
struct People {
    std::vector<std::string> names;
    std::vector<std::vector<Descriptor>> photos;
    std::vector<std::size_t> with_at_least(std::size_t n) const {
        std::vector<std::size_t> out;
        for (std::size_t i = 0; i < photos.size(); ++i)
            if (photos[i].size() >= n) out.push_back(i);
        return out;
    }
};

const People& people() {
    static const People p = [] {
        People out;
        std::map<std::string, std::vector<Descriptor>> by;
        for (const auto& photo : lfw_descriptors())
            if (photo.descriptor) by[photo.person].push_back(*photo.descriptor);
        for (auto& [name, ds] : by) out.names.push_back(name), out.photos.push_back(std::move(ds));
        return out;
    }();
    return p;
}

struct Probe {
    Descriptor d;
    std::optional<std::string> truth;  // the enrolled name, or none for a stranger
};

// One draw: `size` persons of `pool` enrolled with `samples` random photos
// each; probes are their other photos and every photo of everyone else.
struct Draw {
    std::vector<std::pair<std::string, std::vector<Descriptor>>> enrolled;
    std::vector<Probe> probes;
};

Draw make_draw(const std::vector<std::size_t>& pool, std::size_t size, std::size_t samples, std::mt19937& rng) {
    const auto& P = people();
    std::vector<std::size_t> pick = pool;
    std::shuffle(pick.begin(), pick.end(), rng);
    pick.resize(size);
    const std::set<std::size_t> in(pick.begin(), pick.end());
    Draw d;
    for (std::size_t k : pick) {
        auto photos = P.photos[k];
        std::shuffle(photos.begin(), photos.end(), rng);
        d.enrolled.emplace_back(P.names[k], std::vector<Descriptor>(photos.begin(), photos.begin() + samples));
        for (std::size_t j = samples; j < photos.size(); ++j) d.probes.push_back({photos[j], P.names[k]});
    }
    for (std::size_t i = 0; i < P.photos.size(); ++i)
        if (!in.count(i))
            for (const auto& ph : P.photos[i]) d.probes.push_back({ph, std::nullopt});
    return d;
}

std::unique_ptr<Gallery> build_gallery(const TempDir& dir, const Draw& draw) {
    auto g = std::make_unique<Gallery>(dir / "faceq.db");
    std::size_t n = 0;
    for (const auto& [name, ds] : draw.enrolled) {
        std::vector<FaceSample> samples;
        for (const auto& d : ds) {
            FaceSample s;
            s.descriptor = d;
            s.source_path = name;
            s.source_sha256 = name + "#" + std::to_string(n++);
            samples.push_back(s);
        }
        g->enroll(name, samples, embedder);
    }
    return g;
}

// The nearest two persons of every probe, as the gallery sees them.
struct Answer {
    float d1 = 9, d2 = 9;
    bool first_right = false;  // the nearest person is the probe's own
    bool genuine = false;
};

std::vector<Answer> answers(Gallery& g, const Draw& draw) {
    std::vector<Answer> out;
    for (const auto& p : draw.probes) {
        const auto near = g.nearest(p.d, embedder, 2);
        Answer a;
        a.genuine = p.truth.has_value();
        if (!near.empty()) {
            a.d1 = near[0].distance;
            a.first_right = p.truth && near[0].person.name == p.truth;
        }
        if (near.size() > 1) a.d2 = near[1].distance;
        out.push_back(a);
    }
    return out;
}

struct Rates {
    double far = 0;    // strangers named as somebody
    double tpir = 0;   // known people named correctly
    double misid = 0;  // known people named as somebody else
    double frr = 0;    // known people not named (unknown or ambiguous)
    std::size_t strangers = 0, genuine = 0;
};

// The decision rule (calibration.hpp) applied to precomputed answers.
Rates rates(const std::vector<Answer>& as, float t, float m) {
    Calibration c;
    c.threshold = t;
    c.margin = m;
    Rates r;
    for (const auto& a : as) {
        const auto d = decide({{1, a.d1}, {2, a.d2}}, c).decision;
        const bool named = d == Decision::known;
        if (!a.genuine) {
            ++r.strangers;
            r.far += named;
        } else {
            ++r.genuine;
            r.tpir += named && a.first_right;
            r.misid += named && !a.first_right;
        }
    }
    r.far /= static_cast<double>(std::max<std::size_t>(r.strangers, 1));
    r.tpir /= static_cast<double>(std::max<std::size_t>(r.genuine, 1));
    r.misid /= static_cast<double>(std::max<std::size_t>(r.genuine, 1));
    r.frr = 1.0 - r.tpir - r.misid;
    return r;
}

// Answers pooled over `draws` galleries of one configuration.
std::vector<Answer> pooled(const std::vector<std::size_t>& pool, std::size_t size, std::size_t samples, int draws,
                           unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<Answer> all;
    for (int i = 0; i < draws; ++i) {
        TempDir dir;
        const Draw draw = make_draw(pool, size, samples, rng);
        auto g = build_gallery(dir, draw);
        const auto a = answers(*g, draw);
        all.insert(all.end(), a.begin(), a.end());
    }
    return all;
}

// Every pair of lfw-dev photos: same person (genuine) or not (impostor).
void pair_distances(std::vector<float>& genuine, std::vector<float>& impostor) {
    const auto& P = people();
    std::vector<const Descriptor*> all;
    std::vector<std::size_t> owner;
    for (std::size_t i = 0; i < P.photos.size(); ++i)
        for (const auto& d : P.photos[i]) all.push_back(&d), owner.push_back(i);
    std::vector<float> d2(all.size());
    std::vector<float> flat;
    for (std::size_t i = 0; i + 1 < all.size(); ++i) {
        const std::size_t rest = all.size() - i - 1;
        flat.resize(rest * 128);
        for (std::size_t j = 0; j < rest; ++j)
            std::copy(all[i + 1 + j]->begin(), all[i + 1 + j]->end(), flat.begin() + j * 128);
        squared_distances(flat.data(), rest, all[i]->data(), d2.data());
        for (std::size_t j = 0; j < rest; ++j)
            (owner[i] == owner[i + 1 + j] ? genuine : impostor).push_back(std::sqrt(d2[j]));
    }
}

}  // namespace

TEST_CASE("LFW closed set: rank-1 with one enrolled photo per person", "[gallery][.slow]") {
    REQUIRE_MODELS();
    const auto& P = people();
    const auto pool = P.with_at_least(2);
    Draw draw;
    for (std::size_t k : pool) {
        draw.enrolled.emplace_back(P.names[k], std::vector<Descriptor>{P.photos[k][0]});
        for (std::size_t j = 1; j < P.photos[k].size(); ++j) draw.probes.push_back({P.photos[k][j], P.names[k]});
    }
    TempDir dir;
    auto g = build_gallery(dir, draw);
    const auto a = answers(*g, draw);
    const double rank1 =
        static_cast<double>(std::count_if(a.begin(), a.end(), [](const Answer& x) { return x.first_right; })) /
        static_cast<double>(a.size());
    WARN("LFW closed set: " << pool.size() << " persons, " << a.size() << " probes, rank-1 " << rank1);
    CHECK(pool.size() >= 1100);
    CHECK(a.size() >= 1800);
    // Measured: 0.9014 on YuNet + 5-point chips (more probes: the ~30 photos
    // HOG missed are in); 0.9346 on HOG + 68.
    CHECK(rank1 >= 0.89);
}

TEST_CASE("LFW open set at the default calibration: FAR < 1% at 100 persons", "[gallery][.slow]") {
    REQUIRE_MODELS();
    const auto c = default_calibration();
    const auto& P = people();
    const auto multi = P.with_at_least(2), multi4 = P.with_at_least(4);

    // One photo per person, persons with >= 2 photos (so each has probes).
    const auto r10 = rates(pooled(multi, 10, 1, 40, 1), c.threshold, c.margin);
    const auto r100 = rates(pooled(multi, 100, 1, 10, 2), c.threshold, c.margin);
    const auto r1000 = rates(pooled(multi, 1000, 1, 3, 3), c.threshold, c.margin);
    // Three photos per person: the mean descriptor names more people correctly.
    const auto r100x3 = rates(pooled(multi4, 100, 3, 10, 4), c.threshold, c.margin);
    auto line = [](const char* what, const Rates& r) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "%s: FAR %.4f (%zu strangers) | named right %.4f, wrong %.4f, FRR %.4f (%zu)",
                      what, r.far, r.strangers, r.tpir, r.misid, r.frr, r.genuine);
        return std::string(buf);
    };
    WARN(line("10 persons x1", r10) << "\n"
                                    << line("100 persons x1", r100) << "\n"
                                    << line("1000 persons x1", r1000) << "\n"
                                    << line("100 persons x3", r100x3));
    // Measured on YuNet + 5-point chips (HOG + 68 in brackets; docs/identification.md).
    CHECK(r100.far < 0.01);      // 0.0030 (0.0029)
    CHECK(r100x3.far < 0.01);    // 0.0077 (0.0077)
    CHECK(r10.far < 0.002);      // 0.0006 (0.0006)
    CHECK(r1000.far < 0.01);     // 0.0048 (0.0051)
    CHECK(r10.tpir >= 0.66);     // 0.70 (0.72)
    CHECK(r100.tpir >= 0.62);    // 0.645 (0.70)
    CHECK(r1000.tpir >= 0.57);   // 0.59 (0.65)
    CHECK(r100x3.tpir >= 0.92);  // 0.936 (0.96)
    CHECK(r100.misid <= 0.002);
    CHECK(r1000.misid <= 0.005);
}

TEST_CASE("LFW open set: --far sets the threshold for the gallery's size", "[gallery][.slow]") {
    REQUIRE_MODELS();
    const auto c = default_calibration();
    const auto multi = people().with_at_least(2);
    for (const auto& [size, far] :
         std::vector<std::pair<std::size_t, double>>{{100, 0.01}, {1000, 0.01}, {100, 0.001}}) {
        const float t = threshold_for_far(c, far, size);
        const auto r = rates(pooled(multi, size, 1, size == 1000 ? 2 : 10, 5), t, c.margin);
        WARN("--far " << far << " at " << size << " persons: threshold " << t << ", measured FAR " << r.far
                      << ", named right " << r.tpir);
        CHECK(r.far <= far * 1.3);  // measured 0.0037, 0.0026, 0.00055: the margin keeps it under
        // Measured 0.67, 0.42, 0.44 on YuNet + 5-point chips (0.72, 0.45, 0.48 on HOG + 68).
        CHECK(r.tpir >= (far >= 0.01 && size <= 100 ? 0.62 : 0.37));
    }
}

TEST_CASE("calibrate() on LFW pairs reproduces the default calibration", "[gallery][.slow]") {
    REQUIRE_MODELS();
    std::vector<float> genuine, impostor;
    pair_distances(genuine, impostor);
    const auto c = calibrate(genuine, impostor, 0.01, 100);
    const auto d = default_calibration();
    INFO("calibrated threshold " << c.threshold << " margin " << c.margin);
    // The table default_calibration() carries (calibration.cpp's lfw_impostor_tail), for when the
    // pipeline's descriptors change.
    std::string tail;
    for (const auto& point : c.impostor_tail) tail += fmt::format("{:.4f}f, ", point.first);
    WARN("impostor tail from " << c.impostor_tail.front().second << ": " << tail);
    CHECK(std::abs(c.threshold - threshold_for_far(d, 0.01, 100)) < 0.005);
    CHECK(c.impostor_tail.size() >= 40);
    CHECK(std::abs(impostor_pair_rate(c, 0.47f) - impostor_pair_rate(d, 0.47f)) < 2e-5);
}

// ---------------------------------------------------------------- benchmarks

TEST_CASE("bench: identification curves on LFW (docs/identification.md)", "[.bench][gallery]") {
    REQUIRE_MODELS();
    const auto& P = people();
    const auto multi = P.with_at_least(2), multi4 = P.with_at_least(4);
    std::printf("lfw-dev: %zu persons with a face, %zu with >= 2 photos, %zu with >= 4\n", P.photos.size(),
                multi.size(), multi4.size());
    std::vector<float> genuine, impostor;
    pair_distances(genuine, impostor);
    std::sort(genuine.begin(), genuine.end());
    std::sort(impostor.begin(), impostor.end());
    std::printf("\npairs: %zu genuine, %zu impostor\n| threshold | impostor pairs under | genuine pairs under |\n",
                genuine.size(), impostor.size());
    for (float t = 0.40f; t <= 0.6001f; t += 0.02f) {
        auto frac = [t](const std::vector<float>& v) {
            return static_cast<double>(std::lower_bound(v.begin(), v.end(), t) - v.begin()) /
                   static_cast<double>(v.size());
        };
        std::printf("| %.2f | %.2e | %.4f |\n", t, frac(impostor), frac(genuine));
    }
    const auto cal = calibrate(genuine, impostor, 0.01, 100);
    std::printf("\ncalibrate(far 0.01 at 100): threshold %.4f margin %.4f\ntail: %s\n", cal.threshold, cal.margin,
                calibration_to_json(cal)["impostor_tail"].dump().c_str());

    auto curve = [](const char* title, const std::vector<Answer>& a) {
        std::printf("\n%s\n| threshold | FAR | named right | named wrong | FRR |\n|---|---|---|---|---|\n", title);
        for (float t = 0.40f; t <= 0.5601f; t += 0.01f) {
            const auto r = rates(a, t, default_calibration().margin);
            std::printf("| %.2f | %.4f | %.4f | %.4f | %.4f |\n", t, r.far, r.tpir, r.misid, r.frr);
        }
    };
    auto at_far = [](const std::vector<Answer>& a, double far, float m) {
        float best_t = 0;
        Rates best;
        for (float t = 0.30f; t <= 0.80f; t += 0.0025f) {
            const auto r = rates(a, t, m);
            if (r.far <= far) best_t = t, best = r;
        }
        std::printf("| %.2f | %.4f | %.4f | %.4f | %.4f |\n", m, best_t, best.far, best.tpir, best.misid);
    };
    const auto a10 = pooled(multi, 10, 1, 20, 11), a100 = pooled(multi, 100, 1, 20, 12),
               a1000 = pooled(multi, 1000, 1, 3, 13);
    curve("10 persons, 1 photo each (20 draws)", a10);
    curve("100 persons, 1 photo each (20 draws)", a100);
    curve("1000 persons, 1 photo each (3 draws)", a1000);
    for (std::size_t k : {1, 2, 3}) {
        const auto a = pooled(multi4, 100, k, 20, 20 + static_cast<unsigned>(k));
        curve(("100 persons with >= 4 photos, " + std::to_string(k) + " enrolled (mean descriptor)").c_str(), a);
    }
    std::printf(
        "\nmargin at FAR <= 1%%, 100 persons x1 photo\n| margin | threshold | FAR | named right | named wrong |\n");
    for (float m : {0.0f, 0.02f, 0.04f, 0.06f, 0.08f, 0.10f, 0.12f}) at_far(a100, 0.01, m);
    std::printf(
        "\nmargin at FAR <= 1%%, 1000 persons x1 photo\n| margin | threshold | FAR | named right | named wrong |\n");
    for (float m : {0.0f, 0.02f, 0.04f, 0.06f, 0.08f, 0.10f, 0.12f}) at_far(a1000, 0.01, m);
}

TEST_CASE("bench: aggregation of several samples (docs/identification.md)", "[.bench][gallery]") {
    REQUIRE_MODELS();
    // Compared outside the gallery (which implements only the winner): 100
    // persons with >= 4 photos, 3 enrolled, the threshold chosen per method
    // for FAR <= 1%, margin 0 and the default.
    const auto& P = people();
    const auto pool = P.with_at_least(4);
    std::mt19937 rng(7);
    enum Method { nearest_sample, mean_descriptor, mean_distance, two_nn };
    const char* names[] = {"nearest sample (min distance)", "mean descriptor", "mean distance", "mean of 2 nearest"};
    std::map<int, std::vector<Answer>> all;
    for (int draw = 0; draw < 20; ++draw) {
        const Draw d = make_draw(pool, 100, 3, rng);
        for (int m = 0; m < 4; ++m) {
            for (const auto& p : d.probes) {
                Answer a;
                a.genuine = p.truth.has_value();
                float b1 = 9, b2 = 9;
                std::string who;
                for (const auto& [name, ds] : d.enrolled) {
                    std::vector<float> dist;
                    Descriptor mean{};
                    for (const auto& s : ds) {
                        float d2 = 0;
                        squared_distances(s.data(), 1, p.d.data(), &d2);
                        dist.push_back(std::sqrt(d2));
                        for (std::size_t i = 0; i < 128; ++i) mean[i] += s[i] / static_cast<float>(ds.size());
                    }
                    std::sort(dist.begin(), dist.end());
                    float v = 0;
                    if (m == nearest_sample) v = dist[0];
                    if (m == mean_distance) v = std::accumulate(dist.begin(), dist.end(), 0.0f) / dist.size();
                    if (m == two_nn) v = (dist[0] + dist[1]) / 2;
                    if (m == mean_descriptor) {
                        squared_distances(mean.data(), 1, p.d.data(), &v);
                        v = std::sqrt(v);
                    }
                    if (v < b1)
                        b2 = b1, b1 = v, who = name;
                    else if (v < b2)
                        b2 = v;
                }
                a.d1 = b1, a.d2 = b2, a.first_right = p.truth && *p.truth == who;
                all[m].push_back(a);
            }
        }
    }
    std::printf("| method | margin | threshold | FAR | named right | named wrong |\n|---|---|---|---|---|---|\n");
    for (int m = 0; m < 4; ++m)
        for (float margin : {0.0f, default_calibration().margin}) {
            float best_t = 0;
            Rates best;
            for (float t = 0.30f; t <= 0.80f; t += 0.0025f) {
                const auto r = rates(all[m], t, margin);
                if (r.far <= 0.01) best_t = t, best = r;
            }
            std::printf("| %s | %.2f | %.4f | %.4f | %.4f | %.4f |\n", names[m], margin, best_t, best.far, best.tpir,
                        best.misid);
        }
}

TEST_CASE("bench: identification speed against 100,000 descriptors", "[.bench][gallery]") {
    REQUIRE_MODELS();
    // Real descriptors, replicated with small noise up to 100,000 rows: one
    // index of them all (identification before issue 11), and the same rows
    // split as the gallery keeps them since (IndexCache: known persons, and
    // every fifth row a stranger), read as identify_one reads them (the 2
    // nearest known, the 4 nearest strangers, merged by nearest_of).
    std::vector<Descriptor> base;
    for (const auto& ds : people().photos) base.insert(base.end(), ds.begin(), ds.end());
    std::mt19937 rng(3);
    std::normal_distribution<float> noise(0.0f, 0.02f);
    FaceIndex index, known, strangers;
    // The exact scan, as measured before the graph (from 50,000 rows by
    // default) existed; the graph has its own bench below.
    for (FaceIndex* i : {&index, &known, &strangers}) i->set_search(FaceIndex::Search::exact);
    constexpr std::size_t rows = 100000;
    index.reserve(rows);
    for (std::size_t i = 0; i < rows; ++i) {
        Descriptor d = base[i % base.size()];
        if (i >= base.size())
            for (auto& v : d) v += noise(rng);
        index.add(static_cast<std::int64_t>(i), d);
        (i % 5 == 0 ? strangers : known).add(static_cast<std::int64_t>(i), d);
    }
    const std::size_t queries = 300;
    std::vector<double> one_ms, split_ms;
    float sink = 0;
    // Interleaved, so that load from elsewhere falls on both alike.
    for (std::size_t q = 0; q < queries; ++q) {
        const Descriptor& query = base[(q * 37) % base.size()];
        auto start = std::chrono::steady_clock::now();
        const auto m = index.nearest_persons(query, 2);
        one_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        start = std::chrono::steady_clock::now();
        const auto both = nearest_of(known.nearest_persons(query, 2), strangers.nearest_persons(query, 4), 2);
        split_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        sink += m[0].distance - both[0].distance;
    }
    std::sort(one_ms.begin(), one_ms.end());
    std::sort(split_ms.begin(), split_ms.end());
    std::printf(
        "identification, %zu rows x 128 float32 (%.1f MB), one thread, %zu queries: one index median %.2f ms, "
        "p95 %.2f ms, max %.2f ms; known + strangers indexes median %.2f ms, p95 %.2f ms, max %.2f ms; "
        "ratio of medians %.3f (checksum %.3f, 0 when both find the same nearest)\n",
        rows, rows * 512 / 1e6, queries, one_ms[one_ms.size() / 2], one_ms[one_ms.size() * 95 / 100], one_ms.back(),
        split_ms[split_ms.size() / 2], split_ms[split_ms.size() * 95 / 100], split_ms.back(),
        split_ms[split_ms.size() / 2] / one_ms[one_ms.size() / 2], sink);
    CHECK(sink == 0.0f);
}

TEST_CASE("bench: identification at up to 1,000,000 persons, graph against exact scan", "[.bench][gallery]") {
    REQUIRE_MODELS();
    // Synthetic persons around real descriptors: the lfw-dev identities are
    // split, four in five lend their photos to the gallery and the fifth
    // are strangers. Each synthetic person is one real photo's descriptor
    // plus N(0, 0.0375) per dimension (~0.6 from its siblings around the same
    // photo: other persons, farther than the threshold, nearer than most
    // impostors). Queries, 1,000 of each kind: genuine (a person of the
    // gallery, plus N(0, 0.0265): ~0.3 from it, a typical distance between
    // photos of one person) and strangers (the real photos of people not in
    // the gallery). One index grows through the sizes; its graph is built at
    // the first and then kept in step by add() (insertion is how hnswlib
    // builds anyway), so "build" is cumulative. Each query is answered by the
    // graph and the exact scan of the same index, interleaved, one thread.
    const auto& P = people();
    std::vector<Descriptor> photos, stranger_photos;
    for (std::size_t i = 0; i < P.photos.size(); ++i) {
        auto& to = i % 5 == 4 ? stranger_photos : photos;
        to.insert(to.end(), P.photos[i].begin(), P.photos[i].end());
    }
    std::mt19937 rng(13);
    std::normal_distribution<float> person_noise(0.0f, 0.0375f), query_noise(0.0f, 0.0265f);
    const auto around = [&](const Descriptor& d, std::normal_distribution<float>& noise) {
        Descriptor out = d;
        for (auto& v : out) v += noise(rng);
        return out;
    };
    // How many of the exact scan's first m persons the graph lists among its first m.
    const auto overlap = [](const std::vector<PersonMatch>& g, const std::vector<PersonMatch>& e, std::size_t m) {
        std::size_t n = 0;
        for (std::size_t j = 0; j < std::min(m, e.size()); ++j)
            for (std::size_t i = 0; i < std::min(m, g.size()); ++i) n += g[i].person == e[j].person;
        return n;
    };
    const std::vector<std::size_t> sizes{10000, 30000, 50000, 100000, 300000, 1000000};
    const std::vector<std::size_t> breadths{0, 32, 64, 128, 256, 512, 1024};  // 0: by size (the default)
    constexpr std::size_t k = 4;  // identification reads the 2 nearest known, the 4 nearest strangers
    constexpr std::size_t queries_per_kind = 1000;

    FaceIndex index;
    FaceIndex::GraphOptions options;  // the defaults, one build thread
    options.build_threads = 1;
    index.set_graph_options(options);
    index.set_search(FaceIndex::Search::graph);
    std::vector<Descriptor> persons;  // kept to draw genuine queries from
    persons.reserve(sizes.back());    // the bench's own copy: 512 bytes a person, not counted as the index's
    const double rss0 = static_cast<double>(current_rss_bytes());
    float sink = 0;  // keeps the timed exact scans from being optimized away
    double build_s = 0;
    std::printf("descriptors: %zu gallery photos, %zu stranger photos; M %zu, ef_construction %zu, k %zu\n",
                photos.size(), stranger_photos.size(), options.links, options.build_breadth, k);
    std::printf(
        "| persons | build s (cumulative, 1 thread) | RSS MB | index bytes/person | exact median ms | exact p95 | ef | "
        "graph median ms | graph p95 | exact/graph | recall@1 genuine | recall@1 strangers | recall@2 | recall@4 | "
        "misses near |\n");
    for (const std::size_t size : sizes) {
        auto start = std::chrono::steady_clock::now();
        while (persons.size() < size) {
            persons.push_back(around(photos[rng() % photos.size()], person_noise));
            index.add(static_cast<std::int64_t>(persons.size() - 1), persons.back());
            if (persons.size() == sizes.front()) index.build_graph();
        }
        build_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double rss = static_cast<double>(current_rss_bytes());
        std::vector<Descriptor> queries;
        std::vector<bool> genuine;
        for (std::size_t q = 0; q < queries_per_kind; ++q) {
            queries.push_back(around(persons[rng() % persons.size()], query_noise));
            genuine.push_back(true);
            queries.push_back(stranger_photos[rng() % stranger_photos.size()]);
            genuine.push_back(false);
        }
        // The exact answers first; then, timed, the exact scan and the graph
        // at each breadth in turn, so that load from elsewhere falls on all
        // alike. Each search in a turn is of another query (a search does
        // not find its path cached by the one before it).
        const auto ms_since = [](std::chrono::steady_clock::time_point t0) {
            return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        };
        index.set_search(FaceIndex::Search::exact);
        std::vector<std::vector<PersonMatch>> exact;
        for (const auto& q : queries) exact.push_back(index.nearest_persons(q, k));
        std::vector<double> exact_ms;
        std::vector<std::vector<double>> graph_ms(breadths.size());
        std::vector<std::size_t> first_genuine(breadths.size()), first_stranger(breadths.size()), at2(breadths.size()),
            at4(breadths.size()), misses_near(breadths.size()), breadth_used(breadths.size());
        for (std::size_t turn = 0; turn < queries.size(); ++turn) {
            index.set_search(FaceIndex::Search::exact);
            start = std::chrono::steady_clock::now();
            sink += index.nearest_persons(queries[turn], k).at(0).distance;
            exact_ms.push_back(ms_since(start));
            index.set_search(FaceIndex::Search::graph);
            // The scan evicted the graph from the caches; a process that
            // searches only the graph keeps its upper layers cached, so one
            // untimed search first, as the turn's other searches have.
            sink += index.nearest_persons(queries[(turn + 1) % queries.size()], k).at(0).distance;
            for (std::size_t b = 0; b < breadths.size(); ++b) {
                const std::size_t q = (turn + 337 * (b + 1)) % queries.size();
                options.search_breadth = breadths[b];
                index.set_graph_options(options);  // only sets hnswlib's ef
                breadth_used[b] = index.graph_state().search_breadth;
                start = std::chrono::steady_clock::now();
                const auto g = index.nearest_persons(queries[q], k);
                graph_ms[b].push_back(ms_since(start));
                const auto& e = exact[q];
                const bool first = !g.empty() && g[0].person == e[0].person;
                (genuine[q] ? first_genuine : first_stranger)[b] += first;
                at2[b] += overlap(g, e, 2);
                at4[b] += overlap(g, e, 4);
                // Misses that could change a decision: one of the exact two
                // nearest within the default stranger threshold + margin
                // (0.53 + 0.08) and not among the graph's two.
                const auto g2 = g.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(2, g.size()));
                for (std::size_t j = 0; j < std::min<std::size_t>(2, e.size()); ++j)
                    if (e[j].distance < 0.61f &&
                        std::none_of(g.begin(), g2, [&](const PersonMatch& m) { return m.person == e[j].person; })) {
                        ++misses_near[b];
                        break;
                    }
            }
        }
        REQUIRE(index.graph_state().builds == 1);  // a new search breadth did not rebuild it
        const auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        const auto p95 = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() * 95 / 100];
        };
        const double n = static_cast<double>(queries.size());
        for (std::size_t b = 0; b < breadths.size(); ++b)
            std::printf(
                "| %zu | %.1f | %.0f | %.0f | %.3f | %.3f | %s | %.3f | %.3f | %.1f | %.4f | %.4f | %.4f | %.4f | %zu "
                "|\n",
                size, build_s, rss / 1e6, (rss - rss0) / static_cast<double>(size) - sizeof(Descriptor),
                median(exact_ms), p95(exact_ms),
                (std::to_string(breadth_used[b]) + (breadths[b] == 0 ? " (default)" : "")).c_str(), median(graph_ms[b]),
                p95(graph_ms[b]), median(exact_ms) / median(graph_ms[b]),
                static_cast<double>(first_genuine[b]) / (n / 2), static_cast<double>(first_stranger[b]) / (n / 2),
                static_cast<double>(at2[b]) / (2 * n), static_cast<double>(at4[b]) / (4 * n), misses_near[b]);
        std::fflush(stdout);
        // A new sample moves its person's mean (IndexCache::add_sample):
        // replace() moves the node, relinking its neighbourhood.
        std::vector<double> replace_ms;
        for (std::size_t r = 0; r < 200; ++r) {
            const std::size_t row = rng() % persons.size();
            persons[row] = around(persons[row], query_noise);
            start = std::chrono::steady_clock::now();
            index.replace(row, persons[row]);
            replace_ms.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        }
        std::sort(replace_ms.begin(), replace_ms.end());
        std::printf("%zu persons: replace() median %.3f ms, p95 %.3f ms (200 rows)\n", size,
                    replace_ms[replace_ms.size() / 2], replace_ms[replace_ms.size() * 95 / 100]);
        CHECK(index.graph_state().builds == 1);
    }
    // A full build of the largest size at once (what the first query after
    // opening such a gallery waits for), with the default build threads.
    index.clear();
    options = FaceIndex::GraphOptions{};
    index.set_graph_options(options);
    for (std::size_t i = 0; i < persons.size(); ++i) index.add(static_cast<std::int64_t>(i), persons[i]);
    const auto start = std::chrono::steady_clock::now();
    index.build_graph();
    std::printf("full build of %zu persons, %u threads: %.1f s\n", persons.size(),
                std::max(std::thread::hardware_concurrency(), 1u),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    CHECK(index.graph_state().nodes == persons.size());
    CHECK(sink > 0);
}

TEST_CASE("bench: opening a gallery of 100,000 samples", "[.bench][gallery]") {
    REQUIRE_MODELS();
    std::vector<Descriptor> base;
    for (const auto& ds : people().photos) base.insert(base.end(), ds.begin(), ds.end());
    TempDir dir;
    const auto path = dir / "faceq.db";
    constexpr std::size_t persons = 20000, per_person = 5;
    {
        Gallery g(path);
        const auto start = std::chrono::steady_clock::now();
        std::vector<FaceSample> samples(per_person);
        for (std::size_t p = 0; p < persons; ++p) {
            for (std::size_t k = 0; k < per_person; ++k) {
                samples[k].descriptor = base[(p * per_person + k) % base.size()];
                samples[k].source_sha256 = std::to_string(p) + "/" + std::to_string(k);
                samples[k].source_path = samples[k].source_sha256;
            }
            g.enroll("person " + std::to_string(p), samples, embedder);
        }
        std::printf("wrote %zu persons x %zu samples (one transaction per person): %.1f s\n", persons, per_person,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    const auto start = std::chrono::steady_clock::now();
    Gallery g(path);
    const auto opened = std::chrono::steady_clock::now();
    const auto ids = g.identify({base[0]}, IdentifyContext{embedder, default_calibration()});
    const auto first = std::chrono::steady_clock::now();
    const auto again = g.identify({base[1]}, IdentifyContext{embedder, default_calibration()});
    const auto second = std::chrono::steady_clock::now();
    std::printf("open %.1f ms, first identification (loads %zu samples) %.1f ms, next %.2f ms; file %.1f MB\n",
                std::chrono::duration<double, std::milli>(opened - start).count(), persons * per_person,
                std::chrono::duration<double, std::milli>(first - opened).count(),
                std::chrono::duration<double, std::milli>(second - first).count(),
                std::filesystem::file_size(path) / 1e6);
    CHECK(ids.size() == 1);
    CHECK(again.size() == 1);
}
