// faceq/identity/calibration.hpp — when is a face someone we know? The decision rule,
// its two numbers (threshold, margin), how they are computed from measured
// distances for a false-accept target, and the defaults faceq ships.
//
// Decision for a face, from the two nearest distinct persons of the gallery
// (distance = Euclidean distance of the face's 128-D descriptor to a person's
// mean descriptor — the mean of all of that person's samples, as
// faceq/identity/gallery.hpp keeps it; d1 <= d2):
//   known      d1 < threshold and no other person within `margin` of it
//              (no runner-up, or d2 - d1 >= margin);
//   ambiguous  d1 < threshold and d2 < threshold and d2 - d1 < margin: two
//              persons fit about equally well, naming either would be a guess;
//   unknown    everything else (including d1 < threshold with a runner-up
//              just above the threshold but within the margin).
// decide() applies this to the nearest persons, whatever their kind. The
// gallery adds two rules for strangers (unknown persons), which need the
// persons' kinds and means (identity/gallery.cpp; measured in
// docs/identification.md, "Strangers"):
//   no cascade   a known person K with d_K < threshold is named when every
//                person within the margin of d_K (or nearer) is a stranger
//                whose mean lies within candidate_limit() of K's mean — a
//                stranger that is probably K itself (say, made from an earlier
//                photo of K that was missed) does not make K's faces ambiguous;
//   stranger tier  a face left unknown with no person, and no known person
//                within the threshold, joins the nearest stranger when it is
//                within stranger_limit(): in-the-wild photos of one stranger
//                lie further apart than the threshold for naming (a stranger
//                taking a face names nobody, so it may be looser).
// Strangers whose mean is within candidate_limit() of a known person's are
// "probably that person": merge candidates (Gallery::merge_candidates), never
// merged without being asked.
//
// False-accept rate (FAR) here means what users care about: the fraction of
// strangers — people not in the gallery — that are named as somebody. It
// grows with the gallery: a stranger has one chance per person to fall under
// the threshold. With p(t) the fraction of impostor pairs closer than t
// (measured one photo against one photo, kept in `impostor_tail`), a gallery
// of n persons names a stranger with probability ~ 1 - (1 - p(t))^n.
// threshold_for_far() inverts this, so `--far 0.01` means "1% of strangers
// named" at the gallery's current number of persons. The pair statistics
// are exact for one sample per person; a mean of several samples sits nearer
// to everyone, strangers included, so with more samples per person the real
// FAR is higher than this estimate (the defaults are set for up to three
// samples per person; measured figures: docs/identification.md).
//
// Defaults (default_calibration()) were measured on LFW View 1 (lfw-dev,
// 4,959 photos with a face, 3,095 people) with the installed embedder; how,
// and the curves: docs/identification.md.
//
// Errors: calibration_from_json throws Error{invalid_input} for a document
// that lacks threshold or margin or has them out of range; calibrate throws
// Error{invalid_input} when there are too few impostor distances to resolve the
// target. Thread-safety: plain values and pure functions.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "faceq/identity/face_index.hpp"

namespace faceq {

enum class Decision { known, unknown, ambiguous };
const char* to_string(Decision decision) noexcept;  // "known" | "unknown" | "ambiguous"
// The decision to_string() names; nullopt for any other text.
std::optional<Decision> parse_decision(const std::string& text) noexcept;

struct Calibration {
    float threshold = 0;  // a person is a candidate when nearer than this
    float margin = 0;     // ... and clearly nearer than any other person
    // Strangers (see the rules above): a face no known person is within
    // `threshold` of joins the nearest stranger up to this distance. Used as
    // max(stranger_threshold, threshold) (stranger_limit()).
    float stranger_threshold = 0;
    double far_target = 0;                // the FAR it was chosen for (at reference_persons)
    std::size_t reference_persons = 100;  // gallery size far_target refers to
    // How a person's samples combine; faceq's gallery uses the mean descriptor
    // (informational: pair distances calibrate one sample against one sample).
    std::string aggregation = "mean_descriptor";
    std::string embedder;         // InstalledModel::version() measured with; empty = the built-in default
    std::string embedder_sha256;  // full sha256 of that model file, when known
    std::string source;           // for people: "default", "face-recognition v3", "--far 0.001"...
    // Lower tail of the impostor distance distribution: (distance d, fraction of
    // impostor pairs with distance < d), ascending in both. Empty = unknown
    // (then --far cannot be used with this calibration).
    std::vector<std::pair<float, double>> impostor_tail;
};

struct IdentityDecision {
    Decision decision = Decision::unknown;
    std::optional<PersonMatch> nearest;    // the nearest person, whatever the decision
    std::optional<PersonMatch> runner_up;  // the second nearest distinct person
    std::optional<float> margin;           // runner_up - nearest, when both exist
};

// Applies the rule above to the nearest persons (best first; only the first two are read).
IdentityDecision decide(const std::vector<PersonMatch>& nearest, const Calibration& calibration);

// max(stranger_threshold, threshold): how near a stranger must be to take a
// face that no known person is within the threshold of.
float stranger_limit(const Calibration& calibration);
// Halfway between the threshold and stranger_limit(): a stranger whose mean is
// this near a known person's is probably that person (no cascade, merge
// candidates). On celeba-dev 79% of such strangers are (62% at
// stranger_limit(); docs/identification.md).
float candidate_limit(const Calibration& calibration);

// The calibration faceq uses when none is deployed (see the header comment).
Calibration default_calibration();

// Threshold and margin for `far_target` (fraction of strangers named as
// somebody in a gallery of `reference_persons` persons with one sample each),
// from distances between photos of the same person (`genuine`) and of
// different persons (`impostor`); the inputs need not be sorted. The
// threshold is the impostor-distance quantile at the per-comparison rate
// 1 - (1 - far_target)^(1/reference_persons); the margin is the measured
// default margin scaled by threshold / default threshold (it was measured as
// the gap that stops most wrong-person answers; see docs/identification.md),
// and so is the stranger threshold. Fills `impostor_tail` (~60 points), far_target and reference_persons; the
// caller fills embedder, embedder_sha256 and source. `genuine` is used only to
// check the result makes sense: it throws Error{invalid_input} when fewer
// than 10 / (per-comparison rate) impostor distances are given, or when no
// genuine distance is under the threshold.
Calibration calibrate(std::vector<float> genuine, std::vector<float> impostor, double far_target,
                      std::size_t reference_persons = 100);

// One calibration for several sets of people (say, portraits and everyday
// photos), each calibrated by calibrate() for the same target: the strictest —
// the lowest threshold, so the false-accept target holds on every set — with
// the margin and stranger threshold scaled from it as calibrate() does, and an
// impostor tail that at each distance takes the highest rate any set has (so
// `--far` stays conservative on every set). Requires a non-empty list; one
// calibration comes back unchanged.
Calibration strictest_calibration(const std::vector<Calibration>& per_set);

// Fraction of impostor pairs nearer than `distance`, from impostor_tail
// (linear interpolation; 0 below the table, the last value above it).
double impostor_pair_rate(const Calibration& calibration, float distance);

// Expected fraction of strangers named as somebody at `threshold` in a gallery
// of `samples` persons (one mean descriptor each). Requires impostor_tail.
double expected_far(const Calibration& calibration, float threshold, std::size_t samples);

// The threshold whose expected FAR in a gallery of `samples` persons is `far`
// (clamped to the table). Throws Error{usage} when far is not in (0, 1) and
// Error{invalid_input} when the calibration has no impostor_tail.
float threshold_for_far(const Calibration& calibration, double far, std::size_t samples);

// calibration.json as the registry stores it:
// {"embedder", "embedder_sha256", "threshold", "margin", "stranger_threshold" (optional: scaled
//  from the default like the margin when absent), "far_target",
//  "reference_persons", "aggregation", "impostor_tail": [[d, rate], ...]}.
nlohmann::json calibration_to_json(const Calibration& calibration);
Calibration calibration_from_json(const nlohmann::json& json);

}  // namespace faceq
