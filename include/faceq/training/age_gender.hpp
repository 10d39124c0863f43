// faceq/training/age_gender.hpp — training the age/gender head
// (faceq/pipeline/attributes.hpp) on a prepared UTKFace set (datasets.hpp).
//
// Kernel ridge regression with an RBF kernel over standardised attribute
// features, solved in closed form for every (gamma, lambda) candidate; age
// and gender each pick their candidate by validation error, the final head is
// refitted on train + val and reported on test. Gender comes from the head
// unless the CC0 gender CNN was more accurate on validation.
//
// Errors: Error{invalid_input} for a set that is not a prepared UTKFace set or
// has too few train/val samples; Error{usage} for empty or non-positive
// gammas/lambdas; Error{interrupted} when `cancelled` returns true.
// Thread-safety: reentrant; callbacks run on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "faceq/base/progress.hpp"
#include "faceq/pipeline/attributes.hpp"
#include "faceq/training/datasets.hpp"

namespace faceq {

struct AgeGenderTrainOptions {
    std::vector<double> gammas{0.5, 1.0, 2.0};    // RBF width, in units of 1 / (2 * dim)
    std::vector<double> lambdas{0.03, 0.1, 0.3};  // ridge regularisation
    std::size_t max_train = 0;                    // subsample the train split (0 = all), seeded
    std::uint64_t seed = 1;
    // Called once per candidate (gamma, lambda) with its step number and
    // metrics {train_age_mae, train_loss, val_age_mae, val_gender_acc}; the
    // registry logs them as step metrics.
    std::function<void(const nlohmann::json& metrics, std::int64_t step)> on_step;
    std::function<bool()> cancelled;
    LogFn log;
};

struct AgeGenderTrainResult {
    AgeGenderHead head;
    nlohmann::json params;   // chosen hyper-parameters, sizes
    nlohmann::json metrics;  // final: val_/test_ age MAE, gender accuracy (head and CNN), per band
    nlohmann::json report;   // per-band table for people (test split)
};

// Trains on data's "train" split, selects on "val", reports on "test"
// (when it has samples). The head records the embedder the features came
// from (the prepared manifest's pipeline: embedder, embedder_sha256).
AgeGenderTrainResult train_age_gender(const PreparedDataset& data, const AgeGenderTrainOptions& options);

}  // namespace faceq
