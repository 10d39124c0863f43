// faceq/training/datasets.hpp — training data: fetching and unpacking the UTKFace
// archive, its labels, and the "prepared" form training reads; folders of
// identities for recognition calibration.
//
// data/datasets.json lists the known archives (file name, sha256, size,
// licence). download_dataset() fetches one (from --from, else a mirror, else
// its upstream URL) into <home>/datasets/downloads, verifies it when it is the
// catalogued file, and unpacks its images into <home>/datasets/<name>/images
// (a temp directory renamed into place: the images appear all at once).
// `limit` keeps a deterministic pseudo-random subset of the archive's images
// (those with the smallest seeded hash of their name), so `--limit 500` is
// spread over ages and genders instead of being the first 500 names.
//
// Preparing runs the analysis pipeline once over every image (detect, align,
// descriptor + attribute features, CC0 gender CNN), keeps the largest face,
// and writes <out>/manifest.json (counts, models, seed), samples.jsonl (one
// labelled sample per line, with its split and feature row) and features.f32
// (rows x dim float32, little-endian). Re-running reuses rows of unchanged
// files computed with the same embedder: only new images are analysed.
// UTKFace splits are stratified by age band x gender with a fixed seed;
// identity splits are per person (gallery/probe) and across people
// (train/test). Images whose names do not parse, that do not decode, or where
// no face is found are reported (counts + examples in the manifest) and
// skipped.
//
// Errors: Error{not_found} (no dataset / prepared directory), Error{invalid_input}
// (an archive that does not unpack, an empty or unlabelled dataset, a prepared
// directory that is inconsistent), Error{checksum}, Error{network}, Error{io},
// Error{interrupted} when `cancelled` returns true.
// Thread-safety: functions are reentrant; prepare uses `jobs` threads inside.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/home.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/models/download.hpp"  // FetchOptions
#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

// ------------------------------------------------------------------ where

// <home>/datasets/utkface: `download dataset utkface` unpacks into images/,
// `prepare utkface` writes prepared/ beside them.
std::filesystem::path utkface_dir(const Home& home);
// <home>/datasets/identities/<name>: `prepare identities` writes a set there
// by default; `train recognition --data NAME` reads it.
std::filesystem::path identities_dir(const Home& home, const std::string& name);
// A prepared identities set as given on the command line: `folder_or_name`
// when it is a directory or a path (holds a '/'), else identities_dir().
std::filesystem::path find_identities(const Home& home, const std::string& folder_or_name);

// ------------------------------------------------------------------ labels

struct UtkLabel {
    int age = 0;         // years, 0..116 in UTKFace
    std::string gender;  // "male" | "female"
    int race = 0;        // 0 White, 1 Black, 2 Asian, 3 Indian, 4 Other
};

// Parses "age_gender_race_timestamp.jpg.chip.jpg" (gender 0 male, 1 female).
// std::nullopt for a malformed name; `why` (when given) says what is wrong.
std::optional<UtkLabel> parse_utkface_name(const std::string& file_name, std::string* why = nullptr);

// Age bands for stratified splits and per-band reports: "0-12", "13-19",
// "20-29", ..., "60-69", "70+". Children (< 13) are their own band.
const std::vector<std::string>& age_bands();
std::size_t age_band_index(double age);

// Deterministic split of `keys` stratified by `strata` (same length): within
// each stratum, items ordered by a seeded hash of their key; the first
// round(n*test) go to "test", the next round(n*val) to "val", the rest to
// "train". The same key, stratum and seed always land in the same split.
std::vector<std::string> stratified_split(const std::vector<std::string>& keys, const std::vector<std::string>& strata,
                                          double val_fraction, double test_fraction, std::uint64_t seed);

// A 64-bit hash of `text` mixed with `seed` (FNV-1a + splitmix64): stable
// across platforms and runs, used for splits and subsets.
std::uint64_t seeded_hash(const std::string& text, std::uint64_t seed);

// ------------------------------------------------------------------ catalogue

struct DatasetEntry {
    std::string name;         // "utkface"
    std::string source_file;  // "utkface-part1-dev.tar.gz", looked up under a mirror
    std::string url;          // upstream http(s) URL; empty = mirror or --from only
    std::string sha256;
    std::uint64_t size = 0;
    std::string license;
    std::string description;
};

// Reads data/datasets.json and returns the entry named `name`.
// Throws Error{not_found} for an unknown name, Error{invalid_input} for a
// malformed catalogue.
DatasetEntry find_dataset_entry(const std::filesystem::path& datasets_json, const std::string& name);

// ------------------------------------------------------------------ download

struct DatasetDownloadOptions {
    std::string from;        // URL or local file; empty = the mirror, else entry.url
    std::string mirror;      // directory or base URL (as for models)
    std::size_t limit = 0;   // keep at most this many images; 0 = all
    std::uint64_t seed = 1;  // for the --limit subset
    bool force = false;      // unpack again even when the same subset is there
    FetchOptions fetch;
    LogFn log;
};

struct DatasetDownloadResult {
    std::string status;                 // "installed" | "already installed"
    std::filesystem::path dir;          // <home>/datasets/<name>
    std::string source;                 // where the archive came from
    std::string sha256;                 // of the archive
    bool verified = false;              // sha256 matched the catalogue
    std::size_t images = 0;             // images unpacked
    std::size_t images_in_archive = 0;  // images the archive holds
};

DatasetDownloadResult download_dataset(const Home& home, const DatasetEntry& entry,
                                       const DatasetDownloadOptions& options);

// ------------------------------------------------------------------ prepare

struct PrepareOptions {
    int jobs = 1;
    std::uint64_t seed = 1;
    double val_fraction = 0.15;
    double test_fraction = 0.15;
    int min_images = 2;      // identities: people with fewer usable images are skipped
    std::size_t limit = 0;   // utkface: use only this many labelled images (seeded subset; 0 = all)
    AnalyzeOptions analyze;  // detector settings; features/descriptors are forced on
    ProgressFn progress;     // images analysed so far (label "prepare")
    LogFn log;
    std::function<bool()> cancelled;  // polled between images; true -> Error{interrupted}
};

// Prepares <dataset_dir>/images (UTKFace names) into `out_dir`; returns the
// manifest it wrote. Throws Error{invalid_input} when no image has a valid
// label or no face is found in any.
nlohmann::json prepare_utkface(const std::filesystem::path& dataset_dir, const std::filesystem::path& out_dir,
                               const ModelSet& models, const PrepareOptions& options);

// Prepares a folder of identities (DIR/<person>/**/<image>) into `out_dir`:
// descriptors of the largest face of every image; per person a seeded half
// of the images (at least one) is the "gallery", the rest "probe"; people
// are split into "train" (calibration) and "test" (report) by `test_fraction`.
nlohmann::json prepare_identities(const std::filesystem::path& source_dir, const std::filesystem::path& out_dir,
                                  const ModelSet& models, const PrepareOptions& options);

struct PreparedSample {
    std::string file;   // relative to the dataset's image folder
    std::string split;  // "train" | "val" | "test"
    // UTKFace
    double age = 0;
    std::string gender;  // "male" | "female"
    int race = 0;
    double cnn_p_male = -1;  // the CC0 gender CNN's P(male); -1 when not installed
    // identities
    std::string person;
    std::string role;  // "gallery" | "probe"
};

struct PreparedDataset {
    std::filesystem::path dir;
    nlohmann::json manifest;
    std::vector<PreparedSample> samples;
    std::size_t dim = 0;      // floats per row
    std::vector<float> rows;  // samples.size() x dim, row i belongs to samples[i]

    const float* row(std::size_t i) const { return rows.data() + i * dim; }
};

// Loads what prepare_* wrote. Throws Error{not_found} naming the prepare
// command when `dir` holds no manifest, Error{invalid_input} when the files
// disagree (a prepare interrupted between writes) or hold no samples.
PreparedDataset load_prepared(const std::filesystem::path& dir);

}  // namespace faceq
