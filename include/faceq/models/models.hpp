// faceq/models/models.hpp — the model manifest and the models installed in a home.
//
// data/models.json lists every model faceq can use: its name, role, the file it
// installs, where that file comes from (an upstream URL, an npm package, or a
// file another Debian package installs), the sha256 and size of the file as
// fetched, its licence and how it is unpacked. Several entries may fill one
// role; `priority` orders them (1 = preferred). `faceq download models` tries
// a role's entries in priority order and keeps the first it can get.
//
// Installed models live in <home>/models/: the unpacked file plus a sidecar
// `<file>.json` (the manifest entry, the installed file's sha256 and when it was
// installed). The sidecar is written last, after an atomic rename of the model
// file, so a model counts as installed only when both are in place.
//
// A model is used only when its file's bytes are the sha256 its sidecar
// records (find_installed verifies, see Verify): a damaged or edited model
// would otherwise run and give wrong descriptors without a word.
//
// Errors: load_manifest and parse_manifest throw Error{invalid_input} for a
// malformed manifest, load_manifest Error{not_found} for a missing one.
// find_installed returns std::nullopt when a role has no installed model;
// require_installed throws Error{model} with the command that installs it.
//
// Thread-safety: Manifest, ModelEntry and InstalledModel are plain values;
// the functions read files and keep no state, so any thread may call them.
// Installing (download.hpp) is not coordinated with readers in other
// processes beyond the sidecar-last rule above.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace faceq {

// Roles a model can fill in the pipeline.
namespace role {
inline constexpr const char* detector_cnn = "detector_cnn";
inline constexpr const char* detector_yunet = "detector_yunet";
inline constexpr const char* landmarks = "landmarks";
inline constexpr const char* embedder = "embedder";
inline constexpr const char* gender = "gender";
}  // namespace role

struct ModelEntry {
    std::string name;         // unique, e.g. "mmod_human_face_detector"
    std::string role;         // one of faceq::role
    int priority = 1;         // lower is preferred within a role
    std::string file;         // installed file name in <home>/models
    std::string source_file;  // the fetched file's name ("x.dat.bz2"); looked up under a mirror
    std::string url;          // upstream: http(s)://..., "npm:<spec>", or "file:/abs/path"
    std::string sha256;       // of the fetched file; empty = not known upstream (warned)
    std::uint64_t size = 0;   // bytes of the fetched file; 0 = unknown
    std::string license;
    std::string unpack;  // "none" | "bz2" | "tgz-faceapi-resnet" (see download.hpp)
    std::string description;
};

struct Manifest {
    std::vector<ModelEntry> models;

    const ModelEntry* find(const std::string& name) const;
    // Entries of one role, best priority first.
    std::vector<const ModelEntry*> by_role(const std::string& role) const;
};

Manifest load_manifest(const std::filesystem::path& models_json);
// The same checks on a manifest's text; `source` names it in messages
// (load_manifest passes the path). Throws Error{invalid_input}.
Manifest parse_manifest(std::string_view text, const std::string& source);

struct InstalledModel {
    ModelEntry entry;
    std::filesystem::path path;  // the installed file
    std::string sha256;          // of the installed file
    std::string installed_at;    // ISO 8601 UTC
    // "name@sha256[:12]": what outputs name as the model version.
    std::string version() const;
};

// How an installed file is checked against the sha256 its sidecar records.
// stamp: hash it once, then trust a stamp beside it (".<file>.verified": the
// sha256 and the file's size, mtime, ctime, inode and device) until any of
// those change; a few stat() calls at start-up. rehash: hash it now.
enum class Verify { stamp, rehash };

// Whether the installed file's bytes are the recorded sha256. Throws
// Error{model} when the file cannot be read, Error{io} on a read error.
bool installed_intact(const InstalledModel& model, Verify how);
// Throws Error{model} "model file '<path>' does not match its recorded sha256
// ...; run `faceq download models --force`" unless installed_intact().
void verify_installed(const InstalledModel& model, Verify how = Verify::stamp);

// The installed model for `role` with the best priority, if any. A model
// whose file fails verify_installed() is never returned: Error{model}.
std::optional<InstalledModel> find_installed(const std::filesystem::path& models_dir, const Manifest& manifest,
                                             const std::string& role, Verify how = Verify::stamp);
// Same, but throws Error{model} "no <role> model installed in '<dir>'" with a
// hint naming `faceq download models`.
InstalledModel require_installed(const std::filesystem::path& models_dir, const Manifest& manifest,
                                 const std::string& role, Verify how = Verify::stamp);
// Reads one sidecar; std::nullopt when the model or its sidecar is missing.
// Does not verify the file (see verify_installed).
std::optional<InstalledModel> read_installed(const std::filesystem::path& models_dir, const ModelEntry& entry);
// Writes the sidecar for an installed file (atomic: temp + rename).
void write_installed(const std::filesystem::path& models_dir, const InstalledModel& model);

// ------------------------------------------------------------------ the embedder rule

// Which embedder computed a set of descriptors: what a model trained on them
// (an age/gender head, a calibration, a prepared dataset) records, and what
// is installed.
struct EmbedderIdentity {
    std::string id;      // the embedder's version as records name it ("name@sha256[:12]")
    std::string sha256;  // the full sha256 of its file; "" when not recorded
};

// The one rule for every model trained on descriptors: it is only valid for
// the embedder that computed them. Returns "" when a model trained for
// `trained` may run with `installed`: the ids are equal and, when both know
// it, so is the full sha256. A model that names no embedder (empty id and
// sha256) depends on none and is always valid. Otherwise returns a reason
// for people: "trained for embedder <id>, but <id> is installed".
std::string embedder_mismatch(const EmbedderIdentity& trained, const EmbedderIdentity& installed);

// A descriptor depends on how faceq computes it as well as on the network:
// the identity of the descriptors the pipeline gives with chips aligned by
// `alignment` is the network's id, + "+5pt" for a detector's 5 points ("68",
// dlib's 68-point shape, adds nothing), + "+flip" since descriptors are the
// mean over the chip and its mirror image (issue 11; embedder.hpp). Galleries,
// heads and calibrations made before either change recorded the shorter ids;
// two identities never compare (faceq gallery reindex re-describes).
EmbedderIdentity descriptor_identity(EmbedderIdentity embedder, const std::string& alignment);

}  // namespace faceq
