// faceq/training/training.hpp — calibrating identification for the installed
// embedder (`faceq train recognition`), and the verification statistics it
// reports: ROC, equal error rate, true-accept rate at a false-accept rate.
// (The age/gender head is in pipeline/attributes.hpp, its training in
// age_gender.hpp.)
//
// From a prepared identities set (datasets.hpp: descriptors, people split
// into train/test), every pair of photos of one person is a genuine pair and
// every pair of photos of two people an impostor pair. The threshold and
// margin come from calibrate() (calibration.hpp) on the train people's pairs;
// ROC, EER and TAR@FAR are reported for the train and the held-out test
// people. Pair counts grow with the square of the photos: impostor pairs are
// subsampled (seeded) beyond `max_impostor_pairs`.
//
// Errors: Error{invalid_input} for a prepared set that is not identities or
// has no genuine / impostor pairs, or too few to resolve the FAR target;
// Error{interrupted} when `cancelled` returns true.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "faceq/training/datasets.hpp"

namespace faceq {

struct VerificationStats {
    double eer = 0;  // equal error rate
    double eer_threshold = 0;
    double tar_at_far = 0;  // true-accept rate at `far`
    double far = 0;
    double threshold_at_far = 0;
    double auc = 0;  // area under the ROC
    std::size_t genuine = 0, impostor = 0;
    // ROC points (far, tar, threshold), ascending threshold, ~50 of them.
    std::vector<std::array<double, 3>> roc;
};

// Distances: lower means "same person". `far` is the impostor acceptance rate
// at which TAR is read. Requires both vectors non-empty.
VerificationStats verification_stats(std::vector<float> genuine, std::vector<float> impostor, double far);

struct RecognitionTrainOptions {
    double far_target = 0.01;             // fraction of strangers named (see calibration.hpp)
    std::size_t reference_persons = 100;  // gallery size far_target refers to
    double report_far = 1e-3;             // TAR is reported at this pair FAR
    std::size_t max_impostor_pairs = 4'000'000;
    std::uint64_t seed = 1;
    std::function<bool()> cancelled;
};

struct RecognitionTrainResult {
    nlohmann::json calibration;  // calibration.json (calibration_to_json + metrics)
    nlohmann::json metrics;      // train_/test_ eer, tar_at_far, auc, threshold, margin
    nlohmann::json params;
    nlohmann::json roc;  // {"train": [[far, tar, threshold], ...], "test": ...}
};

RecognitionTrainResult train_recognition(const PreparedDataset& data, const RecognitionTrainOptions& options);

// Calibrated on several prepared sets at once (say, portraits and everyday
// photos; they must share an embedder and have distinct folder names): each
// set is calibrated on its own, the strictest wins (strictest_calibration()),
// and every set is checked against the chosen threshold. metrics holds, for
// each figure, the worst set's value under its plain name (train_eer,
// test_tar_at_threshold, ...) and each set's as "<set>.<figure>", including
// "<set>.threshold_at_far" (the set's own threshold) and "<set>.far_at_threshold"
// / "<set>.test_far_at_threshold" (the share of strangers named at
// reference_persons, from the train and the test people); calibration.json
// lists the sets' figures under "sets"; roc is keyed by set. One set gives
// what the overload above gives (plus "sets").
RecognitionTrainResult train_recognition(const std::vector<const PreparedDataset*>& sets,
                                         const RecognitionTrainOptions& options);

// Throws Error{usage} when two of the sets have the same name (their folders'
// names): their figures would be reported under one name.
void check_distinct_sets(const std::vector<const PreparedDataset*>& sets);

}  // namespace faceq
