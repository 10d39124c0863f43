// faceq/models/resolve.hpp — which models a command runs with: the installed
// model files of each pipeline role, plus what the registry has deployed for
// them (the `age-gender` head, the `face-recognition` calibration).
//
// One rule ties them together, and it is applied here (and in
// AgeGenderHead::check_embedder, through embedder_mismatch() in models.hpp):
// a model trained on descriptors — a head, a calibration, a prepared
// dataset — is only valid for the embedder that computed those descriptors.
//
//   resolve_models()       the installed files + the deployed age/gender head
//                          (the Analyzer refuses a head for another embedder)
//   resolve_calibration()  the deployed calibration when it was measured with
//                          the installed embedder, else the built-in default;
//                          then --far or --threshold
//
// This module sits above pipeline (ModelSet), identity (Calibration) and the
// registry; nothing below it includes it.
//
// Errors: resolve_models throws Error{model} naming `faceq download models`
// when a needed model is not installed. resolve_calibration never fails
// because of the registry: a deployed calibration that cannot be read or was
// measured with another embedder is reported through `log` ("warning: ...")
// and the default is used.
// Thread-safety: free functions over files; safe to call from any thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

#include "faceq/base/home.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/identity/calibration.hpp"
#include "faceq/models/models.hpp"
#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

// The registered model whose production version is the age/gender head.
inline constexpr const char* age_gender_model_name = "age-gender";
// The registered model whose production version calibrates identification.
inline constexpr const char* recognition_model_name = "face-recognition";

// The installed models of every role the pipeline needs (the CNN detector
// only when `need_cnn`), without any deployed head: preparing training data
// must not depend on a head.
ModelSet installed_models(const std::filesystem::path& models_dir, const Manifest& manifest, bool need_cnn);

// installed_models() plus the `production` version of "age-gender" in the
// home's registry, when one is deployed. Its version string is
// "age-gender@<version>:<sha256[:12] of its weights>".
ModelSet resolve_models(const Home& home, const Manifest& manifest, bool need_cnn);

// The identity of the descriptors a ModelSet computes with `options` (its
// embedder and the options' chip alignment, descriptor_identity()).
EmbedderIdentity embedder_identity(const ModelSet& models, const AnalyzeOptions& options = {});
// The identity of an installed embedder model's descriptors in the default
// pipeline (AnalyzeOptions{}'s alignment).
EmbedderIdentity embedder_identity(const InstalledModel& embedder);

// What the user asked for on the command line (or the HTTP server's options).
struct CalibrationChoice {
    double far = 0;                 // --far: fraction of strangers named; 0 = not given
    float threshold = 0;            // --threshold: raw distance; 0 = not given
    float stranger_threshold = -1;  // --stranger-threshold (calibration.hpp); < 0 = not given
};

// The calibration identification runs with: the deployed "face-recognition"
// calibration when it fits `embedder`, else default_calibration(); then
// `choice` (--far turns into a threshold for a gallery of `gallery_persons`
// persons, see calibration.hpp). `source` says where it came from
// ("default", "face-recognition v3", "..., --far 0.001").
Calibration resolve_calibration(const Home& home, const EmbedderIdentity& embedder, const CalibrationChoice& choice,
                                std::size_t gallery_persons, const LogFn& log);

}  // namespace faceq
