// tests/test_faces.hpp — synthetic faces for the gallery tests, without the
// pipeline: random unit-ish descriptors (persons ~1.4 apart), jitter() for
// another photo of the same person (~0.2 away), and the FaceSample, Face,
// ImageFacts and IdentifyContext the gallery takes, all for one test embedder.
#pragma once

#include <cmath>
#include <random>
#include <string>

#include "faceq/identity/calibration.hpp"
#include "faceq/identity/gallery.hpp"

namespace faceq::test {

inline const std::string emb = "test_embedder@000000000001";

inline Descriptor random_descriptor(std::mt19937& rng) {
    std::normal_distribution<float> n(0.0f, 1.0f);
    Descriptor d;
    float norm = 0;
    for (auto& v : d) v = n(rng), norm += v * v;
    for (auto& v : d) v /= std::sqrt(norm);
    return d;
}

inline Descriptor jitter(const Descriptor& d, std::mt19937& rng, float amount = 0.2f) {
    const Descriptor r = random_descriptor(rng);
    Descriptor out;
    for (std::size_t i = 0; i < 128; ++i) out[i] = d[i] + amount * r[i];
    return out;
}

inline FaceSample sample(const Descriptor& d, const std::string& sha) {
    FaceSample s;
    s.descriptor = d;
    s.source_path = "/photos/" + sha + ".jpg";
    s.source_sha256 = sha;
    s.box = {10, 20, 100, 100};
    s.quality = 0.9;
    return s;
}

inline Face face_with(const Descriptor& d, int x = 10) {
    Face f;
    f.bbox = {x, 20, 100, 100};
    f.confidence = 0.95;
    f.gender = "female";
    f.descriptor = d;
    f.has_descriptor = true;
    return f;
}

inline ImageFacts image(const std::string& sha) {
    ImageFacts i;
    i.path = "/photos/" + sha + ".jpg";
    i.sha256 = sha;
    i.size = 1234;
    i.models = R"({"embedder":"test"})";
    return i;
}

inline IdentifyContext context() { return {emb, default_calibration()}; }

}  // namespace faceq::test
