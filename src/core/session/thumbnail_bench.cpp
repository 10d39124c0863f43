// thumbnail_bench.cpp — see faceq/session/thumbnail_bench.hpp.
#include "faceq/session/thumbnail_bench.hpp"

#include <algorithm>
#include <chrono>

#include "faceq/base/batch.hpp"
#include "faceq/pipeline/thumbnail.hpp"

namespace faceq {
namespace {

// One photo's faces: per quality, each face's bytes and milliseconds.
struct PhotoFigures {
    bool failed = false;
    std::vector<std::vector<std::size_t>> bytes;
    std::vector<double> ms;
};

std::size_t percentile(const std::vector<std::size_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    // Nearest rank: the smallest value with at least p of the faces at or below it.
    const auto rank = static_cast<std::size_t>(std::max(1.0, std::ceil(p * static_cast<double>(sorted.size()))));
    return sorted[std::min(rank, sorted.size()) - 1];
}

}  // namespace

ThumbnailBenchResult run_thumbnail_bench(const AnalysisSession& session, const std::vector<std::string>& files,
                                         const std::vector<int>& qualities, int jobs, const ProgressFn& progress) {
    using Clock = std::chrono::steady_clock;
    const std::size_t nq = qualities.size() + 1;  // the last: make_face_thumbnail
    std::vector<std::vector<std::size_t>> bytes(nq);
    std::vector<double> ms(nq, 0);
    ThumbnailBenchResult r;
    r.photos = files.size();
    const ImageLimits limits;
    ordered_parallel<PhotoFigures>(
        files.size(), jobs,
        [&] {
            return [&, analyzer = Analyzer(session.prototype())](std::size_t i) mutable {
                PhotoFigures f;
                f.bytes.resize(nq);
                f.ms.assign(nq, 0);
                try {
                    const auto a = session.analyze_file(analyzer, files[i], limits);
                    for (const auto& face : a.result.faces)
                        for (std::size_t q = 0; q < nq; ++q) {
                            const auto start = Clock::now();
                            const std::string jpeg = q + 1 < nq
                                                         ? encode_face_thumbnail(a.image.bgr, face.bbox, qualities[q])
                                                         : make_face_thumbnail(a.image.bgr, face.bbox);
                            f.ms[q] += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
                            f.bytes[q].push_back(jpeg.size());
                        }
                } catch (const std::exception&) {
                    f.failed = true;
                }
                return f;
            };
        },
        [&](std::size_t i, PhotoFigures&& f) {
            r.failed += f.failed ? 1 : 0;
            for (std::size_t q = 0; q < nq; ++q) {
                bytes[q].insert(bytes[q].end(), f.bytes[q].begin(), f.bytes[q].end());
                ms[q] += f.ms[q];
            }
            if (progress && i % 20 == 0) progress({"bench thumbnails", i, files.size()});
        });
    for (std::size_t q = 0; q < nq; ++q) {
        auto& b = bytes[q];
        std::sort(b.begin(), b.end());
        ThumbnailQualityFigures out;
        out.made = q + 1 == nq;
        out.quality = out.made ? thumbnail_quality : qualities[q];
        out.faces = b.size();
        double sum = 0;
        for (const auto v : b) sum += static_cast<double>(v);
        out.mean_bytes = b.empty() ? 0 : sum / static_cast<double>(b.size());
        out.p50_bytes = percentile(b, 0.50);
        out.p90_bytes = percentile(b, 0.90);
        out.p99_bytes = percentile(b, 0.99);
        out.max_bytes = b.empty() ? 0 : b.back();
        out.over_limit = static_cast<std::size_t>(b.end() - std::upper_bound(b.begin(), b.end(), thumbnail_max_bytes));
        out.ms_per_face = b.empty() ? 0 : ms[q] / static_cast<double>(b.size());
        r.qualities.push_back(out);
    }
    r.faces = r.qualities.back().faces;
    return r;
}

}  // namespace faceq
