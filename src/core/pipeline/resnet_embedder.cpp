// resnet_embedder.cpp — dlib's 29-layer ResNet face descriptor network
// (dnn_nets.hpp's EmbedderNet) behind the Embedder interface, and
// make_embedder(): every embedder in the manifest today is this network
// (dlib's file or its conversion from face-api.js), so the choice is trivial;
// a second kind of embedder is chosen here by its manifest entry.
#include <dlib/image_transforms.h>
#include <dlib/opencv/cv_image.h>

#include "faceq/pipeline/embedder.hpp"
#include "pipeline/dnn_nets.hpp"

namespace faceq {
namespace {

std::vector<detail::RgbImage> to_rgb(const std::vector<cv::Mat>& chips) {
    std::vector<detail::RgbImage> out(chips.size());
    for (std::size_t i = 0; i < chips.size(); ++i)
        dlib::assign_image(out[i], dlib::cv_image<dlib::bgr_pixel>(chips[i]));
    return out;
}

// The chips followed by their mirror images.
std::vector<detail::RgbImage> with_mirrors(std::vector<detail::RgbImage> views) {
    const std::size_t n = views.size();
    views.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        detail::RgbImage flipped;
        dlib::flip_image_left_right(views[i], flipped);
        views.push_back(std::move(flipped));
    }
    return views;
}

class ResnetEmbedder final : public Embedder {
public:
    explicit ResnetEmbedder(const InstalledModel& model) : net_(model.path), id_(model.version()) {}

    ChipGeometry geometry() const override {
        return {detail::EmbedderNet::chip_size, detail::EmbedderNet::chip_padding};
    }
    std::size_t dimension() const override { return 128; }
    const std::string& id() const override { return id_; }
    std::size_t feature_size() const override { return 128 + detail::EmbedderNet::feature_size(); }

    std::vector<Descriptor> embed(const std::vector<cv::Mat>& chips, int jitter, int batch_size) override {
        if (jitter > 0) return net_.embed(to_rgb(chips), jitter, batch_size);
        // The mean of the chip's and its mirror image's descriptors (embedder.hpp).
        std::vector<detail::RgbImage> views = with_mirrors(to_rgb(chips));
        const auto descs = net_.embed(views, 0, batch_size);
        const std::size_t n = chips.size();
        std::vector<Descriptor> out(n);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t k = 0; k < out[i].size(); ++k) out[i][k] = 0.5f * (descs[i][k] + descs[n + i][k]);
        return out;
    }

    std::vector<std::vector<float>> features(const std::vector<cv::Mat>& chips, std::vector<Descriptor>& descriptors,
                                             int batch_size) override {
        // One forward pass over the chips and their mirror images gives the
        // descriptors and the block activations, both averaged over the two.
        std::vector<detail::RgbImage> views = with_mirrors(to_rgb(chips));
        const std::size_t n = chips.size();
        std::vector<std::vector<float>> block;
        const auto descs = net_.embed_with_features(views, block, batch_size);
        std::vector<std::vector<float>> out(n);
        for (std::size_t i = 0; i < n; ++i) {
            auto& feat = out[i];
            feat.resize(descs[i].size() + block[i].size());
            for (std::size_t k = 0; k < descs[i].size(); ++k) feat[k] = 0.5f * (descs[i][k] + descs[n + i][k]);
            for (std::size_t k = 0; k < block[i].size(); ++k)
                feat[descs[i].size() + k] = 0.5f * (block[i][k] + block[n + i][k]);
        }
        descriptors.resize(n);
        for (std::size_t i = 0; i < n; ++i)
            std::copy(out[i].begin(), out[i].begin() + static_cast<long>(descriptors[i].size()),
                      descriptors[i].begin());
        return out;
    }

    std::unique_ptr<Embedder> clone() const override { return std::make_unique<ResnetEmbedder>(*this); }

private:
    detail::EmbedderNet net_;
    std::string id_;
};

}  // namespace

std::unique_ptr<Embedder> make_embedder(const InstalledModel& model) { return std::make_unique<ResnetEmbedder>(model); }

}  // namespace faceq
