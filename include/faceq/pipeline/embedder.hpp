// faceq/pipeline/embedder.hpp — the face descriptor seam: one interface for the
// network that turns aligned face chips into descriptors (today dlib's
// 29-layer ResNet, from dlib's file or converted from face-api.js's copy).
//
// An embedder states the chip geometry it was trained on (ChipGeometry: side
// length and padding around the landmarks, as dlib's get_face_chip_details
// takes them), so the Analyzer cuts chips of that shape; the dimension of its
// descriptors; and its id, the version string that every stored descriptor,
// age/gender head and calibration records (InstalledModel::version() of its
// file): descriptors of two ids are never compared.
//
// Chips are CV_8UC3 BGR images of geometry().size pixels square, cut from
// the original image (see src/core/pipeline/landmarks.hpp).
//
// features() is what the age/gender head reads (attributes.hpp): per chip the
// descriptor followed by the network's richer intermediate activations (for
// the ResNet the last residual block, pooled), each averaged over the chip
// and its mirror image so that a head sees no left/right bias.
//
// Adding an embedder: one file under src/core/pipeline/ implementing this
// interface, chosen in make_embedder() (resnet_embedder.cpp today) by its
// manifest entry, and that entry (data/models.json).
//
// Errors: make_embedder() throws Error{model} when the model file is missing
// or is not the expected network.
// Thread-safety: an Embedder is NOT safe for concurrent calls; each worker
// thread uses its own clone().
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "faceq/models/models.hpp"

namespace faceq {

using Descriptor = std::array<float, 128>;  // Face::descriptor

struct ChipGeometry {
    long size = 150;       // pixels per side
    double padding = 0.2;  // dlib's get_face_chip_details padding
};

class Embedder {
public:
    virtual ~Embedder() = default;

    virtual ChipGeometry geometry() const = 0;
    virtual std::size_t dimension() const = 0;  // floats per descriptor (128: Face::descriptor)
    virtual const std::string& id() const = 0;
    // Length of one features() row: dimension() + the intermediate activations.
    virtual std::size_t feature_size() const = 0;

    // One descriptor per chip, computed in batches of `batch_size` chips: the
    // mean of the descriptors of the chip and of its mirror image (on LFW
    // DevTest 99.1% against 98.7% for the chip alone, and in-the-wild photos
    // of one person sit nearer: docs/identification.md; hence "+flip" in the
    // descriptor identity, models.hpp). `jitter` > 0 instead averages the
    // descriptors of that many randomly jittered copies of each chip
    // (deterministic: fixed seeds).
    virtual std::vector<Descriptor> embed(const std::vector<cv::Mat>& chips, int jitter, int batch_size) = 0;

    // Attribute features of each chip (see the header comment), and in
    // `descriptors` the chips' descriptors as embed() gives them without
    // jitter, from the same forward pass.
    virtual std::vector<std::vector<float>> features(const std::vector<cv::Mat>& chips,
                                                     std::vector<Descriptor>& descriptors, int batch_size) = 0;

    // A deep copy for another worker thread.
    virtual std::unique_ptr<Embedder> clone() const = 0;
};

// The embedder that runs this installed model.
std::unique_ptr<Embedder> make_embedder(const InstalledModel& model);

}  // namespace faceq
