// identification.cpp — see faceq/session/identification.hpp.
#include "faceq/session/identification.hpp"

#include <fmt/format.h>

#include <cmath>

#include "faceq/base/error.hpp"

namespace faceq {
namespace {

double round4(double v) { return std::round(v * 1e4) / 1e4; }

}  // namespace

nlohmann::json Identification::summary() const {
    const auto& c = context.calibration;
    return {{"calibration", c.source},
            {"threshold", round4(c.threshold)},
            {"margin", round4(c.margin)},
            {"stranger_threshold", round4(stranger_limit(c))}};
}

std::unique_ptr<Gallery> open_gallery(const Home& home, bool create, const LogFn& log) {
    Gallery::Options options;
    options.create = create;
    options.log = log;
    if (!home.database_url.empty()) {
        try {
            return Gallery::open(home.database_url, options);
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::not_found && !create) return nullptr;  // a database without a gallery yet
            throw;
        }
    }
    const auto path = home.gallery_path();
    std::error_code ec;
    if (!create && !std::filesystem::exists(path, ec)) return nullptr;
    return std::make_unique<Gallery>(path, options);
}

void report_foreign_samples(Gallery& gallery, const std::string& embedder_id, const LogFn& log) {
    if (!log) return;
    for (const auto& e : gallery.embedders()) {
        if (e.embedder == embedder_id) continue;
        log(
            fmt::format("warning: the gallery holds {} samples of {} persons computed by embedder '{}', not the "
                        "installed '{}': they are not used (descriptors of different embedders are not comparable); "
                        "enroll those persons again, or move them with: faceq gallery reindex",
                        e.samples, e.persons, e.embedder, embedder_id));
    }
}

Identification open_identification(const Home& home, const EmbedderIdentity& embedder, const CalibrationChoice& choice,
                                   bool create, const LogFn& log) {
    Identification out;
    out.gallery = open_gallery(home, create, log);
    if (!out.gallery) return out;
    report_foreign_samples(*out.gallery, embedder.id, log);
    const std::size_t persons = out.gallery->usable(embedder.id).first;
    out.context.embedder = embedder.id;
    out.context.calibration = resolve_calibration(home, embedder, choice, persons, log);
    if (log)
        log(fmt::format("debug: identification: calibration {}, threshold {:.4f}, margin {:.4f} ({} persons)",
                        out.context.calibration.source, out.context.calibration.threshold,
                        out.context.calibration.margin, persons));
    return out;
}

}  // namespace faceq
