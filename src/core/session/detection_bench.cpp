// detection_bench.cpp — `faceq bench detection` (see
// faceq/session/detection_bench.hpp): the boxes file, greedy IoU matching,
// average precision, and the timed run over the photos.
#include "faceq/session/detection_bench.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>

#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/pipeline/compute.hpp"
#include "faceq/pipeline/image_io.hpp"

namespace faceq {
namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream in(line);
    while (std::getline(in, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    return cells;
}

int to_int(const std::string& cell, const std::string& where) {
    try {
        std::size_t used = 0;
        const int v = std::stoi(cell, &used);
        if (used == cell.size()) return v;
    } catch (const std::exception&) {
    }
    throw Error(ErrorKind::invalid_input, fmt::format("{}: '{}' is not a whole number", where, cell));
}

int band_of(int width) {
    for (int b = 0; b < 3; ++b)
        if (width >= detection_bands[b] && width < detection_bands[b + 1]) return b;
    return -1;
}

// One detection after matching: its confidence and whether it hit a scored
// face (ignored ones, on flagged faces, are left out).
struct Ranked {
    double confidence;
    bool hit;
};

}  // namespace

BoxTruth read_boxes_csv(const std::filesystem::path& csv) {
    std::ifstream in(csv);
    if (!in) throw Error(ErrorKind::not_found, fmt::format("boxes file '{}' cannot be opened", csv.string()));
    std::string line;
    if (!std::getline(in, line))
        throw Error(ErrorKind::invalid_input, fmt::format("boxes file '{}' is empty", csv.string()));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto header = split_csv_line(line);
    auto column = [&](const std::string& name) -> std::optional<std::size_t> {
        const auto it = std::find(header.begin(), header.end(), name);
        return it == header.end() ? std::nullopt : std::optional<std::size_t>(it - header.begin());
    };
    std::array<std::size_t, 5> cols{};
    const char* names[5] = {"file", "x", "y", "w", "h"};
    for (int i = 0; i < 5; ++i) {
        const auto c = column(names[i]);
        if (!c)
            throw Error(ErrorKind::invalid_input, fmt::format("boxes file '{}': the header has no '{}' column "
                                                              "(expected file,x,y,w,h[,flag,...])",
                                                              csv.string(), names[i]));
        cols[i] = *c;
    }
    const auto flag = column("flag");
    BoxTruth truth;
    for (std::size_t number = 2; std::getline(in, line); ++number) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        const std::string where = fmt::format("boxes file '{}' line {}", csv.string(), number);
        const auto cells = split_csv_line(line);
        if (cells.size() < header.size())
            throw Error(ErrorKind::invalid_input,
                        fmt::format("{}: {} cells, the header has {}", where, cells.size(), header.size()));
        TruthBox t;
        t.box = {to_int(cells[cols[1]], where), to_int(cells[cols[2]], where), to_int(cells[cols[3]], where),
                 to_int(cells[cols[4]], where)};
        if (t.box.width <= 0 || t.box.height <= 0)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("{}: a box of {}x{} px", where, t.box.width, t.box.height));
        t.scored = !flag || cells[*flag].empty();
        if (cells[cols[0]].empty()) throw Error(ErrorKind::invalid_input, fmt::format("{}: no file name", where));
        truth[cells[cols[0]]].push_back(t);
    }
    if (truth.empty()) throw Error(ErrorKind::invalid_input, fmt::format("boxes file '{}' has no boxes", csv.string()));
    return truth;
}

DetectionScore score_detections(const BoxTruth& truth, const std::vector<std::vector<Detection>>& found) {
    if (found.size() != truth.size()) throw Error(ErrorKind::internal, "score_detections: one result per photo");
    DetectionScore s;
    s.photos = truth.size();
    std::vector<Ranked> ranked;
    std::size_t i = 0;
    for (const auto& [file, faces] : truth) {
        std::vector<Detection> dets = found[i++];
        std::stable_sort(dets.begin(), dets.end(),
                         [](const Detection& a, const Detection& b) { return a.confidence > b.confidence; });
        std::vector<bool> taken(faces.size(), false);
        for (const auto& f : faces) {
            if (!f.scored) continue;
            ++s.faces;
            if (const int b = band_of(f.box.width); b >= 0) ++s.band_faces[b];
        }
        for (const auto& d : dets) {
            ++s.detections;
            double best = 0.5;
            std::optional<std::size_t> match;
            for (std::size_t k = 0; k < faces.size(); ++k) {
                if (taken[k]) continue;
                const double o = iou(d.box, faces[k].box);
                if (o >= best) best = o, match = k;
            }
            if (match) {
                taken[*match] = true;
                if (!faces[*match].scored) continue;  // on a flagged face: ignored
                ++s.hits;
                if (const int b = band_of(faces[*match].box.width); b >= 0) ++s.band_hits[b];
                ranked.push_back({d.confidence, true});
            } else {
                ++s.false_positives;
                ranked.push_back({d.confidence, false});
            }
        }
    }
    s.recall = s.faces ? static_cast<double>(s.hits) / s.faces : 0;
    s.precision = s.hits + s.false_positives ? static_cast<double>(s.hits) / (s.hits + s.false_positives) : 0;
    s.fp_per_photo = s.photos ? static_cast<double>(s.false_positives) / s.photos : 0;
    for (int b = 0; b < 3; ++b)
        s.band_recall[b] = s.band_faces[b] ? static_cast<double>(s.band_hits[b]) / s.band_faces[b] : 0;

    // VOC all-point interpolated AP over the ranking of every photo's detections.
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const Ranked& a, const Ranked& b) { return a.confidence > b.confidence; });
    std::vector<double> recall, precision;
    std::size_t tp = 0;
    for (std::size_t k = 0; k < ranked.size(); ++k) {
        tp += ranked[k].hit ? 1 : 0;
        recall.push_back(s.faces ? static_cast<double>(tp) / s.faces : 0);
        precision.push_back(static_cast<double>(tp) / (k + 1));
    }
    for (std::size_t k = precision.size(); k-- > 1;) precision[k - 1] = std::max(precision[k - 1], precision[k]);
    double previous = 0;
    for (std::size_t k = 0; k < ranked.size(); ++k) {
        s.average_precision += (recall[k] - previous) * precision[k];
        previous = recall[k];
    }
    return s;
}

DetectionScore bench_detection(const std::string& name, const ModelSet& models, const DetectorOptions& options,
                               const std::filesystem::path& dir, const BoxTruth& truth, int jobs,
                               const ProgressFn& progress) {
    const std::unique_ptr<Detector> prototype = make_detector(name, models, options);
    std::vector<std::string> files;
    for (const auto& entry : truth) files.push_back(entry.first);
    struct Result {
        std::vector<Detection> found;
        double ms = 0;
        bool unreadable = false;
        std::string error;
    };
    std::vector<std::vector<Detection>> found(files.size());
    double ms = 0;
    std::size_t unreadable = 0, done = 0;
    std::string first_unreadable;
    set_compute_threads(1);  // one thread per worker, as the pipeline runs
    ordered_parallel<Result>(
        files.size(), jobs,
        [&] {
            return [&, detector = std::shared_ptr<Detector>(prototype->clone())](std::size_t i) {
                Result r;
                cv::Mat bgr;
                try {
                    bgr = load_image_file(dir / files[i]).bgr;
                } catch (const std::exception& e) {
                    r.unreadable = true;
                    r.error = e.what();
                    return r;
                }
                const auto t0 = std::chrono::steady_clock::now();
                r.found = detector->detect(bgr);
                r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
                return r;
            };
        },
        [&](std::size_t i, Result&& r) {
            found[i] = std::move(r.found);
            ms += r.ms;
            if (r.unreadable && unreadable++ == 0) first_unreadable = r.error;
            if (progress) progress({name, ++done, files.size()});
        });
    DetectionScore s = score_detections(truth, found);
    s.detector = name;
    s.unreadable = unreadable;
    s.first_unreadable = first_unreadable;
    s.ms_per_photo = files.size() > unreadable ? ms / static_cast<double>(files.size() - unreadable) : 0;
    return s;
}

}  // namespace faceq
