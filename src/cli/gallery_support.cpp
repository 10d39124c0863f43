#include "gallery_support.hpp"

#include <fmt/format.h>

#include <ctime>
#include <fstream>

#include "faceq/base/error.hpp"
#include "faceq/models/registry.hpp"

namespace faceq::cli {
namespace {

// The deployed calibration, when there is one that fits this embedder.
std::optional<Calibration> deployed_calibration(const Context& ctx, const InstalledModel& embedder) {
    std::optional<DeployedModel> deployed;
    try {
        deployed = find_deployed(ctx.home, recognition_model_name);
    } catch (const Error& e) {
        ctx.warn(fmt::format("cannot read the registry: {}; using the default calibration", e.what()));
        return std::nullopt;
    }
    if (!deployed) return std::nullopt;
    const auto file = deployed->artifacts_dir / "calibration.json";
    const std::string what = fmt::format("{} v{}", deployed->name, deployed->version);
    Calibration c;
    try {
        std::ifstream in(file);
        if (!in) throw Error(ErrorKind::not_found, "missing");
        c = calibration_from_json(nlohmann::json::parse(in));
    } catch (const std::exception& e) {
        ctx.warn(fmt::format("deployed calibration '{}' ({}) cannot be used: {}; using the default calibration",
                             file.string(), what, e.what()));
        return std::nullopt;
    }
    const bool sha_differs = !c.embedder_sha256.empty() && c.embedder_sha256 != embedder.sha256;
    const bool version_differs = c.embedder_sha256.empty() && !c.embedder.empty() && c.embedder != embedder.version();
    if (sha_differs || version_differs) {
        ctx.warn(
            fmt::format("deployed calibration {} was measured with embedder '{}', not the installed '{}'; "
                        "using the default calibration (run `faceq train recognition` again)",
                        what, c.embedder, embedder.version()));
        return std::nullopt;
    }
    c.source = what;
    return c;
}

}  // namespace

void add_calibration_flags(CLI::App* sub, CalibrationFlags& flags) {
    auto* far = sub->add_option("--far", flags.far,
                                "Name a stranger as a known person in at most this fraction of cases (e.g. 0.01), "
                                "at the gallery's current size; sets the threshold")
                    ->check(CLI::Range(1e-6, 0.5));
    auto* threshold = sub->add_option("--threshold", flags.threshold,
                                      "Raw distance threshold instead of the calibration's (experts; see --far)")
                          ->check(CLI::Range(0.05, 1.5));
    far->excludes(threshold);
}

Calibration resolve_calibration(const Context& ctx, const InstalledModel& embedder, const CalibrationFlags& flags,
                                std::size_t gallery_persons) {
    Calibration c = deployed_calibration(ctx, embedder).value_or(default_calibration());
    if (c.impostor_tail.empty()) c.impostor_tail = default_calibration().impostor_tail;
    if (flags.far > 0) {
        const float t = threshold_for_far(c, flags.far, std::max<std::size_t>(gallery_persons, 1));
        ctx.debug(fmt::format("--far {} with {} persons: threshold {:.4f} (calibration {} had {:.4f})", flags.far,
                              gallery_persons, t, c.source, c.threshold));
        c.threshold = t;
        c.source += fmt::format(", --far {}", flags.far);
    } else if (flags.threshold > 0) {
        c.threshold = flags.threshold;
        c.source += fmt::format(", --threshold {}", flags.threshold);
    }
    ctx.debug(fmt::format("identification: calibration {}, threshold {:.4f}, margin {:.4f}", c.source, c.threshold,
                          c.margin));
    return c;
}

std::unique_ptr<Gallery> open_gallery(const Context& ctx, bool create) {
    const auto path = ctx.home.gallery_path();
    std::error_code ec;
    if (!create && !std::filesystem::exists(path, ec)) return nullptr;
    Gallery::Options options;
    options.create = create;
    return std::make_unique<Gallery>(path, options);
}

void warn_foreign_samples(const Context& ctx, Gallery& gallery, const std::string& embedder) {
    for (const auto& e : gallery.embedders()) {
        if (e.embedder == embedder) continue;
        ctx.warn(
            fmt::format("the gallery holds {} samples of {} persons computed by embedder '{}', not the installed "
                        "'{}': they are not used (descriptors of different embedders are not comparable); "
                        "enroll those persons again",
                        e.samples, e.persons, e.embedder, embedder));
    }
}

}  // namespace faceq::cli
