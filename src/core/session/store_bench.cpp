// store_bench.cpp — see faceq/session/store_bench.hpp.
#include "faceq/session/store_bench.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

#include "faceq/base/error.hpp"

namespace faceq {
namespace {

using Clock = std::chrono::steady_clock;

Descriptor random_unit(std::mt19937& rng) {
    std::normal_distribution<float> n(0.0f, 1.0f);
    Descriptor d{};
    double norm = 0;
    for (auto& v : d) {
        v = n(rng);
        norm += static_cast<double>(v) * v;
    }
    for (auto& v : d) v = static_cast<float>(v / std::sqrt(norm));
    return d;
}

// `d` moved by about `amount` (Euclidean), as another photo of the same face.
Descriptor jittered(const Descriptor& d, std::mt19937& rng, float amount) {
    std::normal_distribution<float> n(0.0f, amount / std::sqrt(128.0f));
    Descriptor out = d;
    for (auto& v : out) v += n(rng);
    return out;
}

std::string fake_sha(std::mt19937_64& rng) {
    return fmt::format("{:016x}{:016x}{:016x}{:016x}", rng(), rng(), rng(), rng());
}

}  // namespace

StoreBenchResult run_store_bench(const StoreBenchOptions& o, const LogFn& log) {
    if (o.writers < 1 || o.persons < 1 || o.faces_per_image < 1 || o.seconds <= 0 || o.new_share < 0 || o.new_share > 1)
        throw Error(ErrorKind::usage,
                    "bench store: writers, persons and faces must be positive, seconds > 0, "
                    "new share in 0..1");
    Gallery::Options go;
    go.log = log;
    StoreBenchResult out;
    out.engine = Gallery::is_database_url(o.location) ? "postgresql" : "sqlite";
    const IdentifyContext context{o.embedder, default_calibration()};

    // The known persons, enrolled first (one transaction each, as enroll does).
    std::mt19937 rng(o.seed);
    std::vector<Descriptor> known;
    {
        auto g = Gallery::open(o.location, go);
        const auto there = g->stats(0);
        if (there.persons_known + there.persons_unknown + there.images > 0)
            throw Error(ErrorKind::usage,
                        fmt::format("bench store writes synthetic rows: '{}' holds a gallery ({} persons, {} images); "
                                    "give an empty database or a new file",
                                    Gallery::describe_location(o.location), there.persons_known + there.persons_unknown,
                                    there.images));
        const auto start = Clock::now();
        for (int p = 0; p < o.persons; ++p) {
            known.push_back(random_unit(rng));
            FaceSample s;
            s.descriptor = known.back();
            s.source_path = fmt::format("bench/person{}.jpg", p);
            s.source_sha256 = fmt::format("{:064x}", p + 1);
            s.box = {0, 0, 100, 100};
            s.quality = 1;
            g->enroll(fmt::format("bench person {}", p), {s}, context.embedder);
        }
        out.enroll_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    }
    if (log) log(fmt::format("debug: bench store: {} persons enrolled in {:.1f} s", o.persons, out.enroll_seconds));

    // The writers: each its own connection, recording images until the time is up.
    std::vector<std::unique_ptr<Gallery>> galleries;
    for (int w = 0; w < o.writers; ++w) galleries.push_back(Gallery::open(o.location, go));
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> images{0}, detections{0}, strangers{0};
    std::mutex mu;
    std::vector<double> latencies_ms;
    std::exception_ptr failure;
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (int w = 0; w < o.writers; ++w)
        threads.emplace_back([&, w] {
            std::mt19937 r(o.seed * 7919u + static_cast<std::uint32_t>(w));
            std::mt19937_64 r64(o.seed * 104729u + static_cast<std::uint32_t>(w));
            std::uniform_int_distribution<int> pick(0, o.persons - 1);
            std::uniform_real_distribution<double> coin(0, 1);
            std::vector<double> mine;
            try {
                for (std::int64_t n = 0; !stop; ++n) {
                    ImageFacts image;
                    image.sha256 = fake_sha(r64);
                    image.path = fmt::format("bench/w{}/{}.jpg", w, n);
                    image.size = 100000;
                    image.models = "bench";
                    std::vector<Face> faces(static_cast<std::size_t>(o.faces_per_image));
                    for (std::size_t f = 0; f < faces.size(); ++f) {
                        faces[f].bbox = {static_cast<int>(f) * 120, 0, 100, 100};
                        faces[f].confidence = 0.9;
                        faces[f].has_descriptor = true;
                        faces[f].descriptor = coin(r) < o.new_share
                                                  ? random_unit(r)
                                                  : jittered(known[static_cast<std::size_t>(pick(r))], r, 0.15f);
                    }
                    const auto t0 = Clock::now();
                    const auto ids =
                        galleries[static_cast<std::size_t>(w)]->record_analysis(image, faces, context, false);
                    mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                    if (!ids) continue;
                    ++images;
                    detections += static_cast<std::int64_t>(ids->size());
                    for (const auto& id : *ids) strangers += id.new_person;
                }
            } catch (...) {
                std::lock_guard<std::mutex> lock(mu);
                if (!failure) failure = std::current_exception();
                stop = true;
            }
            std::lock_guard<std::mutex> lock(mu);
            latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
        });
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
    stop = true;
    for (auto& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
    out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    out.images = images;
    out.detections = detections;
    out.new_strangers = strangers;
    out.images_per_second = static_cast<double>(out.images) / out.seconds;
    out.detections_per_second = static_cast<double>(out.detections) / out.seconds;
    std::sort(latencies_ms.begin(), latencies_ms.end());
    if (!latencies_ms.empty()) {
        out.p50_ms = latencies_ms[latencies_ms.size() / 2];
        out.p99_ms = latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)];
    }
    return out;
}

}  // namespace faceq
