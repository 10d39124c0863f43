// faceq/training/experiments.hpp — the experiments `faceq train` runs, each
// one registry run (runs.hpp). For each this module decides what the run
// records — params; tags naming the registered model it trains (model_name),
// the embedder its data came from (embedder, embedder_sha256), the metric
// deploy chooses by (primary_metric, primary_mode) and the headline metrics
// tables show — its step metrics, and the artifacts it leaves for
// register-model to copy:
//
//   age-gender   a head on a prepared UTKFace set; a step per (gamma, lambda)
//                candidate; artifacts age_gender.json + age_gender.f32 (the
//                head) and metrics.json (metrics, params, per-band report);
//                chosen by val_age_mae (min)
//   recognition  threshold and margin on prepared identities; artifacts
//                calibration.json and roc.json; chosen by test_tar_at_far (max)
//   smoke        prepares a few dozen UTKFace images, trains a tiny head as
//                age-gender does, and checks that the saved head loads back
//                and predicts what training had (reload_age_difference)
//
// A prepared set is only used with the embedder that computed its features
// (embedder_mismatch(), models.hpp): one prepared with another is refused
// before any run is created.
//
// Errors: Error{invalid_input} for a set prepared with another embedder;
// Error{not_found} for a smoke dataset without images; what preparing,
// training and the registry throw (the run then ends FAILED). An interruption
// (`cancelled` returned true) does not throw: the run ends FAILED and the
// outcome says interrupted.
// Thread-safety: runs on the calling thread; sets the process's compute
// threads (pipeline/compute.hpp) while it trains.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/progress.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/registry.hpp"
#include "faceq/training/age_gender.hpp"
#include "faceq/training/datasets.hpp"
#include "faceq/training/runs.hpp"
#include "faceq/training/training.hpp"

namespace faceq {

// What every experiment gets besides its data.
struct ExperimentContext {
    std::string source_version;       // source_version(data_dir), recorded on the run
    LogFn log;                        // progress of the run for people
    std::function<bool()> cancelled;  // polled between steps; true ends the run FAILED, interrupted
};

// Throws Error{invalid_input} "'<dir>' was prepared with embedder <id>, but
// <id> is installed; prepare it again" unless `data` was prepared with the
// `installed` embedder.
void check_prepared_embedder(const PreparedDataset& data, const EmbedderIdentity& installed);

struct AgeGenderRun {
    RunOutcome outcome;
    std::optional<AgeGenderTrainResult> trained;  // set when the run FINISHED
};

// `options` holds the candidates, max_train and seed; on_step, cancelled and
// log are the experiment's.
AgeGenderRun run_age_gender(Registry& registry, const PreparedDataset& data, const EmbedderIdentity& installed,
                            AgeGenderTrainOptions options, const ExperimentContext& context);

struct RecognitionRun {
    RunOutcome outcome;
    std::optional<RecognitionTrainResult> trained;  // set when the run FINISHED
};

RecognitionRun run_recognition(Registry& registry, const PreparedDataset& data, const EmbedderIdentity& installed,
                               RecognitionTrainOptions options, const ExperimentContext& context);
// The same on several prepared sets (train_recognition's second form); the run's
// params list their folders.
RecognitionRun run_recognition(Registry& registry, const std::vector<const PreparedDataset*>& sets,
                               const EmbedderIdentity& installed, RecognitionTrainOptions options,
                               const ExperimentContext& context);

struct SmokeOptions {
    std::filesystem::path dataset_dir;   // holds images/ with UTKFace names
    std::filesystem::path prepared_dir;  // where the smoke set is prepared (replaced each run)
    std::size_t images = 48;             // how many images to prepare (a seeded subset)
    std::uint64_t seed = 1;
    int jobs = 1;         // threads preparing
    ProgressFn progress;  // images prepared
};

// Throws Error{not_found} naming `faceq download dataset utkface` when
// dataset_dir has no images/, before any model is loaded or run created.
AgeGenderRun run_smoke(Registry& registry, const std::filesystem::path& models_dir, const Manifest& manifest,
                       const SmokeOptions& options, const ExperimentContext& context);

}  // namespace faceq
