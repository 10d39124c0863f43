// faceq/pipeline/attributes.hpp — the age/gender head: estimates age (years) and
// gender from a face's attribute features (Face::features: the descriptor and
// the last residual block's activations, averaged over the chip and its mirror
// image; see analyzer.hpp and embedder.hpp). Training a head is
// faceq/training/age_gender.hpp's; this module only loads, saves and runs one.
//
// A head is a kernel expansion over standardised features,
//   z = (x - mean) / scale,   k_j = exp(-gamma * |z - s_j|^2),
//   age = offset + sum_j a_j k_j        (clamped to 0..120)
//   male score = offset_g + sum_j g_j k_j,  P(male) = 1 / (1 + exp(-(A*score + B)))
// i.e. kernel ridge regression (RBF) fitted in closed form on the training
// split, with (gamma, lambda) chosen by validation error. A "linear" head
// (ridge, no support vectors) has the same file format with w instead.
// Whether the head or the CC0 gender CNN gives gender is decided at training
// time by validation accuracy and stored in the head ("gender_source").
//
// On disk (a registered version's artifacts): age_gender.json (kind, the
// embedder it was trained for, hyper-parameters, array offsets, sha256 of
// the weights) and age_gender.f32 (float32 little-endian arrays). A head is
// valid only for the embedder it was trained on: features of another network
// mean nothing to it, and AgeGenderHead::check_embedder() refuses them.
//
// Errors: load throws Error{model} for a missing, corrupt or foreign file.
// Thread-safety: a loaded head is immutable; copies share the weights and
// predict() may run on any number of threads.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "faceq/models/models.hpp"

namespace faceq {

struct AttributePrediction {
    double age = 0;
    std::optional<double> p_male;  // set when the head gives gender
};

class AgeGenderHead {
public:
    AgeGenderHead();  // empty; usable only as a target of assignment
    static AgeGenderHead load(const std::filesystem::path& dir);
    // Writes age_gender.json + age_gender.f32 into `dir` (atomically, each).
    void save(const std::filesystem::path& dir) const;

    const std::string& embedder() const;  // InstalledModel::version() it was trained on
    const std::string& embedder_sha256() const;
    std::size_t feature_dim() const;
    bool gives_gender() const;  // false: keep the CC0 gender CNN's answer
    // Throws Error{model} when the head was not trained for the `installed`
    // embedder (embedder_mismatch(), models.hpp), naming both and the command
    // that retrains.
    void check_embedder(const EmbedderIdentity& installed, const std::string& head_name) const;

    AttributePrediction predict(const std::vector<float>& features) const;
    nlohmann::json describe() const;  // age_gender.json minus the array table

    struct Impl;  // src/core/pipeline/attributes_impl.hpp; opaque to users

private:
    explicit AgeGenderHead(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
    friend struct AgeGenderHeadAccess;  // builds a head from an Impl (training)
};

}  // namespace faceq
