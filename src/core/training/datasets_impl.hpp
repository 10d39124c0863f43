// datasets_impl.hpp (private) — what the dataset files share (see
// faceq/training/datasets.hpp): small string and JSON-file helpers
// (datasets.cpp), and the prepare engine (prepare_engine.cpp) that
// prepare_utkface.cpp and prepare_identities.cpp both run: list the images,
// take what an earlier prepare with the same pipeline left, analyse the rest
// in parallel, sort the outcomes, write the prepared files.
//
// Errors: as the public functions that call them; analyse_all() throws
// Error{interrupted} when `cancelled` returns true.
// Thread-safety: reentrant; analyse_all() uses `jobs` threads inside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "faceq/training/datasets.hpp"

namespace faceq::datasets_impl {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline constexpr std::size_t examples_kept = 20;  // rejected files named in the manifest

bool ends_with(const std::string& s, const std::string& suffix);
std::string lower(std::string s);

// The parsed file, or std::nullopt when it cannot be opened. Throws
// Error{invalid_input} when it is not JSON.
std::optional<json> read_json_file(const fs::path& path);

// ---------------------------------------------------------------- prepare engine

struct WorkItem {
    fs::path path;     // absolute
    std::string file;  // relative name used as the key
    std::uint64_t bytes = 0;
};

struct Analysed {
    bool ok = false;
    bool cancelled = false;
    std::string reason;      // why it was rejected
    std::vector<float> row;  // features or descriptor
    double cnn_p_male = -1;
    int faces = 0;
};

// What a previous prepare left, reusable when the pipeline is the same.
struct Cache {
    std::unordered_map<std::string, std::pair<std::uint64_t, Analysed>> by_file;
};

// One sample of the prepared set: its samples.jsonl line and its feature row.
struct OutputRow {
    json sample;  // without "row"
    const std::vector<float>* row;
};

// What analyse_all() made of the items: the usable ones (indices, ascending)
// and the rejected ones, counted, listed for rejects.jsonl and named in a few
// examples for the manifest.
struct Outcomes {
    std::vector<std::size_t> usable;
    std::size_t no_face = 0, unreadable = 0;
    std::vector<json> rejects;             // rejects.jsonl lines
    json reject_examples = json::array();  // the first examples_kept
    json cache_sizes = json::object();     // file -> bytes of the usable ones
};

// The manifest's "pipeline": what must be unchanged for a cache to be reused.
json pipeline_json(const ModelSet& models, const AnalyzeOptions& o, const std::string& kind);

// What the prepared set in `out_dir` holds when it was made by `pipeline`;
// empty otherwise or when it is unreadable (only a slower prepare).
Cache load_cache(const fs::path& out_dir, const json& pipeline);

// Analyses every item (or takes it from the cache), in input order; `reused`
// counts the cached ones. `features` picks attribute features, else face
// descriptors.
std::vector<Analysed> analyse_all(const std::vector<WorkItem>& items, const ModelSet& models, AnalyzeOptions aopt,
                                  bool features, const Cache& cache, const PrepareOptions& options,
                                  std::size_t& reused);

Outcomes sort_outcomes(const std::vector<WorkItem>& items, const std::vector<Analysed>& analysed);

// Writes the prepared files; the manifest last, naming the row count and the
// feature file's checksum, so a reader can tell a complete set from a torn one.
void write_prepared(const fs::path& out_dir, json manifest, const std::vector<OutputRow>& rows, std::size_t dim,
                    const std::vector<json>& rejects, const json& cache_sizes);

// The image files in `dir` (and below it with `recursive`), by name; none
// when `dir` is not a directory. Hidden files are left out.
std::vector<WorkItem> list_images(const fs::path& dir, bool recursive);

}  // namespace faceq::datasets_impl
