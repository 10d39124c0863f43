#include "context.hpp"

#include <fmt/format.h>

namespace faceq::cli {

void Context::error(const std::string& message, const std::string& hint) const {
    if (color)
        std::fprintf(stderr, "faceq: \033[1;31merror:\033[0m %s\n", message.c_str());
    else
        std::fprintf(stderr, "faceq: error: %s\n", message.c_str());
    if (!hint.empty()) std::fprintf(stderr, "hint: %s\n", hint.c_str());
}

void Context::warn(const std::string& message) const {
    if (verbosity < 0) return;
    if (color)
        std::fprintf(stderr, "faceq: \033[1;33mwarning:\033[0m %s\n", message.c_str());
    else
        std::fprintf(stderr, "faceq: warning: %s\n", message.c_str());
}

void Context::info(const std::string& message) const {
    if (verbosity >= 0) std::fprintf(stderr, "faceq: %s\n", message.c_str());
}

void Context::debug(const std::string& message) const {
    if (verbosity > 0) std::fprintf(stderr, "faceq: %s\n", message.c_str());
}

void draw_progress(const Context& ctx, const std::string& label, std::uint64_t done, std::uint64_t total) {
    if (!ctx.stderr_tty || ctx.verbosity < 0) return;
    constexpr int width = 30;
    if (total > 0) {
        const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
        const int filled = static_cast<int>(frac * width);
        std::fprintf(stderr, "\r%-32.32s [%s%s] %5.1f%% %8.1f MB", label.c_str(), std::string(filled, '#').c_str(),
                     std::string(width - filled, ' ').c_str(), frac * 100.0, done / 1e6);
    } else {
        std::fprintf(stderr, "\r%-32.32s %8.1f MB", label.c_str(), done / 1e6);
    }
    std::fflush(stderr);
}

void end_progress(const Context& ctx) {
    if (!ctx.stderr_tty || ctx.verbosity < 0) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
}

}  // namespace faceq::cli
