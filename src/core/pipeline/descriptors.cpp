// descriptors.cpp — the descriptor stage (see stages.hpp): descriptors and
// attribute features from aligned chips, through the Embedder seam.
#include <fmt/format.h>

#include <cmath>

#include "faceq/base/error.hpp"
#include "pipeline/stages.hpp"

namespace faceq::detail {

void check_descriptor(const Descriptor& d, std::size_t face) {
    double sum = 0;
    for (float x : d) sum += static_cast<double>(x) * x;
    const double norm = std::sqrt(sum);
    if (!std::isfinite(norm) || norm < min_descriptor_norm || norm > max_descriptor_norm)
        throw Error(ErrorKind::model,
                    fmt::format("face {}: descriptor norm {:.4g} is outside the plausible {}-{}; the embedder model "
                                "is damaged or not the one installed (run `faceq download models --force`)",
                                face, norm, min_descriptor_norm, max_descriptor_norm));
}

void describe_faces(Embedder& embedder, const std::vector<cv::Mat>& chips, const AnalyzeOptions& options, bool features,
                    std::vector<Face>& faces) {
    auto set_descriptors = [&](const std::vector<Descriptor>& descs) {
        for (std::size_t i = 0; i < descs.size(); ++i) {
            check_descriptor(descs[i], i);
            faces[i].descriptor = descs[i];
            faces[i].has_descriptor = true;
        }
    };
    if (features) {
        // The features' forward pass also gives the plain descriptors; only
        // jittered ones need a pass of their own.
        std::vector<Descriptor> descs;
        auto rows = embedder.features(chips, descs, options.batch_size);
        for (std::size_t i = 0; i < rows.size(); ++i) faces[i].features = std::move(rows[i]);
        if (options.jitter <= 0) set_descriptors(descs);
    }
    if (!features || options.jitter > 0) set_descriptors(embedder.embed(chips, options.jitter, options.batch_size));
}

}  // namespace faceq::detail
