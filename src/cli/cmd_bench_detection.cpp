// cmd_bench_detection.cpp — `faceq bench detection DIR --boxes boxes.csv`:
// recall, precision, false positives per photo, average precision, recall by
// face width and ms per photo of each detector on a boxed set (see
// faceq/session/detection_bench.hpp), one row per detector, in one run.
#include <fmt/format.h>

#include <iostream>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/detector.hpp"
#include "faceq/session/detection_bench.hpp"

namespace faceq::cli {
namespace {

struct BenchDetectionCommand {
    std::string dir;
    std::string boxes;
    std::vector<std::string> detectors{"hog", "cnn", "yunet"};
    DetectorOptions options;
    int jobs = 0;
    std::size_t limit = 0;
    std::string format = "table";
};

nlohmann::json to_json(const DetectionScore& s, int min_face) {
    return {{"detector", s.detector},
            {"min_face", detector_min_face(s.detector, min_face)},
            {"photos", s.photos},
            {"unreadable", s.unreadable},
            {"faces", s.faces},
            {"hits", s.hits},
            {"false_positives", s.false_positives},
            {"recall", s.recall},
            {"precision", s.precision},
            {"fp_per_photo", s.fp_per_photo},
            {"average_precision", s.average_precision},
            {"recall_by_width", {{"20-40", s.band_recall[0]}, {"40-80", s.band_recall[1]}, {">=80", s.band_recall[2]}}},
            {"ms_per_photo", s.ms_per_photo}};
}

int bench_detection_cmd(const BenchDetectionCommand& cmd, Context& ctx) {
    BoxTruth truth = read_boxes_csv(cmd.boxes);
    if (cmd.limit > 0)
        while (truth.size() > cmd.limit) truth.erase(std::prev(truth.end()));
    const Manifest manifest = load_manifest(ctx.manifest_path());
    const bool need_cnn = std::find(cmd.detectors.begin(), cmd.detectors.end(), "cnn") != cmd.detectors.end();
    const ModelSet models = installed_models(ctx.home.models_dir(), manifest, need_cnn);
    const int jobs = jobs_or_cores(cmd.jobs);
    if (cmd.format == "table")
        std::cout << fmt::format("{:<6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}\n", "det", "photos",
                                 "faces", "recall", "prec", "FP/img", "AP", "r20-40", "r40-80", "r>=80", "ms/img");
    for (const auto& name : cmd.detectors) {
        const auto progress = [&ctx, &name](const Progress& p) {
            draw_progress(ctx, fmt::format("bench detection {}", name), p.done, p.total);
        };
        const DetectionScore s = bench_detection(name, models, cmd.options, cmd.dir, truth, jobs, progress);
        end_progress(ctx);
        // The CSV's names are relative to the folder: a wrong folder makes every photo unreadable.
        if (s.unreadable == s.photos && s.photos > 0)
            throw Error(ErrorKind::not_found,
                        fmt::format("none of the {} photos named in '{}' could be read under '{}' (names in the CSV "
                                    "are relative to that folder); first: {}",
                                    s.photos, cmd.boxes, cmd.dir, s.first_unreadable));
        if (s.unreadable)
            ctx.warn(fmt::format("{} of {} photos could not be read; first: {}", s.unreadable, s.photos,
                                 s.first_unreadable));
        if (cmd.format == "table")
            std::cout << fmt::format(
                "{:<6} {:>6} {:>6} {:>7.4f} {:>7.4f} {:>7.3f} {:>7.4f} {:>8.4f} {:>8.4f} {:>8.4f} {:>8.1f}\n", name,
                s.photos, s.faces, s.recall, s.precision, s.fp_per_photo, s.average_precision, s.band_recall[0],
                s.band_recall[1], s.band_recall[2], s.ms_per_photo);
        else
            print_record("detection_bench", to_json(s, cmd.options.min_face));
        std::cout.flush();
    }
    if (cmd.format == "table")
        std::cout << fmt::format("IoU >= 0.5; min face {}; {} workers, one thread each\n",
                                 cmd.options.min_face > 0 ? fmt::format("{} px", cmd.options.min_face)
                                                          : std::string("each detector's default"),
                                 jobs);
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_bench_detection(CLI::App& bench, Context& ctx) {
    auto cmd = std::make_shared<BenchDetectionCommand>();
    auto* sub =
        bench.add_subcommand("detection", "Score detectors on photos whose faces are boxed (recall, AP, speed)");
    sub->add_option("dir", cmd->dir, "Folder of the photos")->required()->check(CLI::ExistingDirectory);
    sub->add_option("--boxes", cmd->boxes, "CSV of the boxed faces: file,x,y,w,h[,flag,...]")
        ->required()
        ->check(CLI::ExistingFile);
    sub->add_option("--detector", cmd->detectors, "Detectors to score")
        ->delimiter(',')
        ->check(CLI::IsMember({"hog", "cnn", "yunet"}))
        ->capture_default_str();
    add_min_face_option(sub, cmd->options.min_face);
    sub->add_option("--max-side", cmd->options.max_side, "Longest side (px) the detector sees")
        ->check(CLI::Range(64, 32768))
        ->capture_default_str();
    sub->add_option("-j,--jobs", cmd->jobs, "Worker threads (default: number of cores)")->check(CLI::Range(1, 256));
    sub->add_option("--limit", cmd->limit, "Score only the first N photos of the boxes file (by name)");
    sub->add_option("--format", cmd->format, "table or jsonl")->check(CLI::IsMember({"table", "jsonl"}));
    return {sub, [cmd, &ctx] { return bench_detection_cmd(*cmd, ctx); }};
}

}  // namespace faceq::cli
