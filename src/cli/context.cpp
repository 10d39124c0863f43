#include "context.hpp"

#include <fmt/format.h>

#include <iostream>
#include <thread>

#include "faceq/base/text.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/detector.hpp"
#include "faceq/session/records.hpp"

namespace faceq::cli {

void add_detection_options(CLI::App* sub, AnalyzeOptions& options) {
    sub->add_option("--detector", options.detector, "Face detector")
        ->check(CLI::IsMember({"hog", "cnn", "yunet"}))
        ->capture_default_str();
    sub->add_option("--landmarks", options.landmarks,
                    "Points the chips are aligned by and the records carry: 68 (dlib's model), 5 (the detector's, "
                    "yunet), auto (the detector's when it gives them)")
        ->check(CLI::IsMember({"auto", "68", "5"}))
        ->capture_default_str();
    sub->add_option("--upsample", options.upsample,
                    "Upsample the image 2^N times before detecting (default: derived from --min-face)")
        ->check(CLI::Range(0, 3));
    sub->add_option("--max-side", options.max_side, "Longest side (px) the detector sees; larger photos are downscaled")
        ->check(CLI::Range(64, 32768))
        ->capture_default_str();
    add_min_face_option(sub, options.min_face);
}

void add_min_face_option(CLI::App* sub, int& min_face) {
    sub->add_option("--min-face", min_face,
                    fmt::format("Smallest face (px) to find and report (default: the detector's, {} for yunet, {} for "
                                "hog and cnn)",
                                detector_default_min_face("yunet"), detector_default_min_face("hog")))
        ->check(CLI::Range(8, 10000));
}

int jobs_or_cores(int jobs) {
    return jobs > 0 ? jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Every line for people goes through printable(): messages carry file and
// person names, and a control character in one must neither split the line
// nor reach the terminal as an escape sequence.
void Context::error(const std::string& message, const std::string& hint) const {
    if (color)
        std::fprintf(stderr, "faceq: \033[1;31merror:\033[0m %s\n", printable(message).c_str());
    else
        std::fprintf(stderr, "faceq: error: %s\n", printable(message).c_str());
    if (!hint.empty()) std::fprintf(stderr, "hint: %s\n", printable(hint).c_str());
}

void Context::warn(const std::string& message) const {
    if (verbosity < 0) return;
    if (color)
        std::fprintf(stderr, "faceq: \033[1;33mwarning:\033[0m %s\n", printable(message).c_str());
    else
        std::fprintf(stderr, "faceq: warning: %s\n", printable(message).c_str());
}

void Context::info(const std::string& message) const {
    if (verbosity >= 0) std::fprintf(stderr, "faceq: %s\n", printable(message).c_str());
}

void Context::debug(const std::string& message) const {
    if (verbosity > 0) std::fprintf(stderr, "faceq: %s\n", printable(message).c_str());
}

void print_record(std::string_view type, nlohmann::json record) {
    RecordWriter(std::cout, RecordFormat::jsonl).write(type, std::move(record));
    std::cout.flush();
}

void draw_progress(const Context& ctx, const std::string& label, std::uint64_t done, std::uint64_t total) {
    if (!ctx.stderr_tty || ctx.verbosity < 0) return;
    constexpr int width = 30;
    const std::string shown = printable(label);
    if (total > 0) {
        const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
        const int filled = static_cast<int>(frac * width);
        std::fprintf(stderr, "\r%-32.32s [%s%s] %5.1f%% %8.1f MB", shown.c_str(), std::string(filled, '#').c_str(),
                     std::string(width - filled, ' ').c_str(), frac * 100.0, done / 1e6);
    } else {
        std::fprintf(stderr, "\r%-32.32s %8.1f MB", shown.c_str(), done / 1e6);
    }
    std::fflush(stderr);
}

void end_progress(const Context& ctx) {
    if (!ctx.stderr_tty || ctx.verbosity < 0) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
}

std::function<void(const std::string&)> log_to(const Context& ctx, bool warnings_as_debug) {
    return [&ctx, warnings_as_debug](const std::string& line) {
        end_progress(ctx);
        static const std::string warning = "warning: ", debug = "debug: ";
        if (line.rfind(debug, 0) == 0)
            ctx.debug(line.substr(debug.size()));
        else if (line.rfind(warning, 0) != 0)
            ctx.info(line);
        else if (warnings_as_debug)
            ctx.debug(line.substr(warning.size()));
        else
            ctx.warn(line.substr(warning.size()));
    };
}

}  // namespace faceq::cli
