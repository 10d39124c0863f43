// attributes_impl.hpp (private) — the age/gender head's representation, shared
// by its inference (pipeline/attributes.cpp: file format, load, save,
// predict) and its training (training/age_gender.cpp), which fills an Impl and
// wraps it in an AgeGenderHead. See faceq/pipeline/attributes.hpp for the
// model and the file format.
#pragma once

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "faceq/pipeline/attributes.hpp"

namespace faceq {

struct AgeGenderHead::Impl {
    nlohmann::json meta;  // age_gender.json without "arrays"
    std::string embedder, embedder_sha256;
    std::size_t dim = 0;
    std::size_t support = 0;         // number of support vectors
    std::vector<float> mean, scale;  // dim each
    std::vector<float> sv;           // support x dim, standardised
    std::vector<float> sv_sq;        // |s_j|^2
    std::vector<float> age_alpha, gender_alpha;
    double age_gamma = 0, age_offset = 0;
    bool gender_head = false;
    double gender_gamma = 0, gender_offset = 0, platt_a = 1, platt_b = 0;
};

// age_gender.json's "format" and "schema".
inline constexpr const char* age_gender_head_format = "faceq-age-gender-head";
inline constexpr int age_gender_head_schema = 1;

// The head over a filled Impl (AgeGenderHead's constructor from one is private).
struct AgeGenderHeadAccess {
    static AgeGenderHead make(std::shared_ptr<const AgeGenderHead::Impl> impl) {
        return AgeGenderHead(std::move(impl));
    }
};

namespace detail {

// |s_j|^2 of every support vector, which predict() reads.
void compute_support_norms(AgeGenderHead::Impl& m);

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace detail
}  // namespace faceq
