// faceq/session/identify_bench.hpp — `faceq bench identify DIR`: identification
// measured the way a user meets it, on a folder of identities (one subfolder
// per person, as `enroll --dir` reads it).
//
// The protocol (issue 11): a share of the identities, chosen by a seeded hash
// of their names, are strangers; each other identity is enrolled with its
// first `enroll` photos (by file name; the largest face of each); then every
// remaining photo — the known people's others and all of the strangers' — is
// analysed with --store semantics, in a seeded shuffled order (the order a
// photo stream would bring them in), so that strangers become unknown persons
// as they would in a user's gallery and can be met again. The largest face of
// each probe photo is scored:
//   known named right   a known person's photo named as that person
//   strangers named     a stranger's photo named as some known person
//   stranger consistency  over the strangers' photos with a face, the share
//                       that carry their stranger's most common person id
//   stranger purity     over the probes attributed to an unknown person id
//                       (strangers' and missed known people's), the share
//                       that are of that id's most common identity
//   cluster agreement   `faceq cluster` run at the end: the share of the
//                       unknown detections (any face not named) it left
//                       where the incremental matching put them
//   merge candidates    Gallery::merge_candidates at the end; those whose
//                       stranger id took probes (the others hold only faces
//                       that were not a probe's largest, whose identity is
//                       not known), and how many of them are right (the id's
//                       most common identity is the known person)
// Everything happens in a temporary home beside the user's models (and its
// registry, so a deployed calibration applies); the user's gallery is never
// opened.
//
// Errors: Error{usage} for options out of range or fewer than 2 identities;
// Error{not_found} when `dir` is not a folder; model and database errors as
// AnalysisSession's. Photos that cannot be read or show no face are counted,
// not fatal.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "faceq/base/home.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

struct IdentifyBenchOptions {
    int enroll = 3;              // photos enrolled per known identity
    double strangers = 0.2;      // share of identities kept out of the gallery
    unsigned seed = 1;           // stranger choice and probe order
    bool shuffle = true;         // probes in a seeded shuffled order (else by identity, then file)
    std::size_t identities = 0;  // use only the first N identities by name; 0 = all
    int jobs = 1;                // worker threads
    AnalyzeOptions analyze;      // detection options (gender and features are off)
    CalibrationChoice calibration;
};

struct IdentifyBenchResult {
    std::size_t known_identities = 0, stranger_identities = 0;
    std::size_t enrolled_photos = 0, enroll_failures = 0;
    // Probes of known people: right, named as someone else, unknown, ambiguous, no face / unreadable.
    std::size_t known_probes = 0, known_right = 0, known_wrong = 0, known_unknown = 0, known_ambiguous = 0,
                known_missed = 0;
    // Probes of strangers: named as a known person, no face / unreadable.
    std::size_t stranger_probes = 0, strangers_named = 0, stranger_missed = 0;
    std::size_t stranger_sightings = 0, stranger_consistent = 0;  // with a face; carrying the most common id
    std::size_t unknown_persons = 0;                              // stranger ids the run created
    std::size_t stranger_attributed = 0, stranger_pure = 0;       // probes on an unknown id; of its main identity
    std::size_t cluster_detections = 0, cluster_reassigned = 0;   // faceq cluster at the end
    std::size_t candidates = 0, candidates_judged = 0, candidates_right = 0;  // merge candidates at the end

    double known_named_right() const { return known_probes ? double(known_right) / known_probes : 0; }
    double strangers_named_share() const { return stranger_probes ? double(strangers_named) / stranger_probes : 0; }
    double stranger_consistency() const {
        return stranger_sightings ? double(stranger_consistent) / stranger_sightings : 0;
    }
    double stranger_purity() const { return stranger_attributed ? double(stranger_pure) / stranger_attributed : 0; }
    double cluster_agreement() const {
        return cluster_detections ? 1.0 - double(cluster_reassigned) / cluster_detections : 1.0;
    }
};

IdentifyBenchResult bench_identify(const Home& home, const Manifest& manifest, const std::filesystem::path& dir,
                                   const IdentifyBenchOptions& options, const LogFn& log, const ProgressFn& progress);

}  // namespace faceq
