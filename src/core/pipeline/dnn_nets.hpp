// dnn_nets.hpp (private) — the three dlib networks faceq runs, behind small
// pimpl classes so that only dnn_nets.cpp instantiates dlib's DNN templates
// (they take minutes and gigabytes to compile; every other file stays fast).
//
//  * EmbedderNet: dlib's 29-layer ResNet (dlib_face_recognition_resnet_model_v1
//    or its conversion from face-api.js); 150x150 aligned chips -> 128-D
//    descriptors. Optionally also the 256x5x5 output of the last residual block
//    (average-pooled over 2x2 cells), "richer features from the same forward
//    pass" for attribute heads.
//  * CnnDetectorNet: dlib's MMOD face detector (mmod_human_face_detector.dat).
//  * GenderNet: dlib-models' dnn_gender_classifier_v1 (32x32 chips, CC0).
//
// Loading throws Error{model} naming the file when it is missing or is not the
// expected network. Objects are copyable (deep copies of the weights); one
// object must not be used by two threads at once — give each worker a copy.
#pragma once

#include <dlib/geometry/rectangle.h>
#include <dlib/matrix.h>
#include <dlib/pixel.h>

#include <array>
#include <filesystem>
#include <memory>
#include <vector>

namespace faceq::detail {

using RgbImage = dlib::matrix<dlib::rgb_pixel>;
using Descriptor = std::array<float, 128>;

class EmbedderNet {
public:
    explicit EmbedderNet(const std::filesystem::path& dat);
    EmbedderNet(const EmbedderNet& other);
    EmbedderNet& operator=(const EmbedderNet& other);
    ~EmbedderNet();

    static constexpr long chip_size = 150;
    static constexpr double chip_padding = 0.25;

    // One descriptor per 150x150 chip, computed in batches of `batch_size`.
    // `jitter` > 0 averages the descriptors of that many randomly jittered
    // copies of each chip (deterministic: the random seed is fixed).
    std::vector<Descriptor> embed(const std::vector<RgbImage>& chips, int jitter = 0, int batch_size = 16);

    // Like embed(), and also returns for each chip the activations of the
    // last residual block, pooled to a fixed-length vector (see feature_size()).
    std::vector<Descriptor> embed_with_features(const std::vector<RgbImage>& chips,
                                                std::vector<std::vector<float>>& features, int batch_size = 16);
    static std::size_t feature_size();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct CnnDetection {
    dlib::rectangle rect;
    double score = 0;
};

class CnnDetectorNet {
public:
    explicit CnnDetectorNet(const std::filesystem::path& dat);
    CnnDetectorNet(const CnnDetectorNet& other);
    CnnDetectorNet& operator=(const CnnDetectorNet& other);
    ~CnnDetectorNet();

    std::vector<CnnDetection> detect(const RgbImage& image, int upsample);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

class GenderNet {
public:
    explicit GenderNet(const std::filesystem::path& dat);
    GenderNet(const GenderNet& other);
    GenderNet& operator=(const GenderNet& other);
    ~GenderNet();

    static constexpr long chip_size = 32;

    // Probability that each 32x32 chip shows a male face (softmax of the net's
    // two outputs; output 0 is female, 1 male, as dlib-models trained it).
    std::vector<float> p_male(const std::vector<RgbImage>& chips, int batch_size = 64);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceq::detail
