// models.cpp — reading data/models.json and the sidecars of installed models.
//
// The manifest is validated field by field when it is loaded, so every later
// step can trust it: a typo in models.json is reported once, naming the file,
// the entry and the field, instead of surfacing as a confusing download error.
#include "faceq/models/models.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int manifest_schema = 1;

const std::set<std::string>& known_roles() {
    static const std::set<std::string> roles{role::detector_cnn, role::detector_yunet, role::landmarks, role::embedder,
                                             role::gender};
    return roles;
}

const std::set<std::string>& known_unpack() {
    static const std::set<std::string> kinds{"none", "bz2", "tgz-faceapi-resnet"};
    return kinds;
}

bool is_sha256_hex(const std::string& s) {
    return s.size() == 64 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A bare file name: the manifest must not be able to write outside the models
// directory, nor look outside a mirror.
bool is_plain_file_name(const std::string& s) {
    return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
           s.find('\0') == std::string::npos && s.front() != '.';
}

bool has_supported_scheme(const std::string& url) {
    auto starts = [&](const char* p) { return url.rfind(p, 0) == 0; };
    return starts("http://") || starts("https://") || (starts("npm:") && url.size() > 4) ||
           (starts("file:/") && url.size() > 6);
}

json entry_to_json(const ModelEntry& e) {
    return json{{"name", e.name},
                {"role", e.role},
                {"priority", e.priority},
                {"file", e.file},
                {"source_file", e.source_file},
                {"url", e.url},
                {"sha256", e.sha256},
                {"size", e.size},
                {"license", e.license},
                {"unpack", e.unpack},
                {"description", e.description}};
}

// Parses one manifest entry; `where` names the manifest and the entry for messages.
ModelEntry entry_from_json(const json& j, const std::string& where) {
    if (!j.is_object()) throw Error(ErrorKind::invalid_input, fmt::format("{}: not a JSON object", where));
    static const std::set<std::string> fields{"name",   "role", "priority", "file",   "source_file", "url",
                                              "sha256", "size", "license",  "unpack", "description"};
    for (const auto& [key, value] : j.items())
        if (!fields.count(key))
            throw Error(ErrorKind::invalid_input, fmt::format("{}: unknown field '{}'", where, key));

    auto str = [&](const char* key, bool required) -> std::string {
        const auto it = j.find(key);
        if (it == j.end()) {
            if (required) throw Error(ErrorKind::invalid_input, fmt::format("{}: missing field '{}'", where, key));
            return {};
        }
        if (!it->is_string())
            throw Error(ErrorKind::invalid_input, fmt::format("{}: field '{}' must be a string", where, key));
        return it->get<std::string>();
    };

    ModelEntry e;
    e.name = str("name", true);
    e.role = str("role", true);
    e.file = str("file", true);
    e.source_file = str("source_file", true);
    e.url = str("url", true);
    e.sha256 = str("sha256", true);
    e.license = str("license", true);
    e.unpack = str("unpack", true);
    e.description = str("description", false);

    if (const auto it = j.find("priority"); it != j.end()) {
        if (!it->is_number_integer() || it->get<long long>() < 1 || it->get<long long>() > 1000)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("{}: field 'priority' must be an integer from 1 to 1000", where));
        e.priority = it->get<int>();
    }
    if (const auto it = j.find("size"); it != j.end()) {
        if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<long long>() == 0))
            throw Error(ErrorKind::invalid_input,
                        fmt::format("{}: field 'size' must be a non-negative integer (0 = unknown)", where));
        e.size = it->get<std::uint64_t>();
    }

    if (e.name.empty() || !is_plain_file_name(e.name))
        throw Error(ErrorKind::invalid_input, fmt::format("{}: field 'name' must be a non-empty plain name", where));
    if (!known_roles().count(e.role))
        throw Error(
            ErrorKind::invalid_input,
            fmt::format("{}: unknown role '{}' (expected detector_cnn, detector_yunet, landmarks, embedder or gender)",
                        where, e.role));
    if (!is_plain_file_name(e.file))
        throw Error(ErrorKind::invalid_input,
                    fmt::format("{}: field 'file' must be a plain file name, got '{}'", where, e.file));
    if (!is_plain_file_name(e.source_file))
        throw Error(ErrorKind::invalid_input,
                    fmt::format("{}: field 'source_file' must be a plain file name, got '{}'", where, e.source_file));
    if (!has_supported_scheme(e.url))
        throw Error(
            ErrorKind::invalid_input,
            fmt::format("{}: field 'url' must start with http://, https://, npm: or file:/, got '{}'", where, e.url));
    if (!e.sha256.empty() && !is_sha256_hex(e.sha256))
        throw Error(
            ErrorKind::invalid_input,
            fmt::format("{}: field 'sha256' must be 64 lowercase hex digits or empty, got '{}'", where, e.sha256));
    if (!known_unpack().count(e.unpack))
        throw Error(ErrorKind::invalid_input,
                    fmt::format("{}: unknown unpack '{}' (expected none, bz2 or tgz-faceapi-resnet)", where, e.unpack));
    return e;
}

fs::path sidecar_path(const fs::path& models_dir, const ModelEntry& entry) {
    return models_dir / (entry.file + ".json");
}

// ------------------------------------------------------------- verification
// Hashing every model at every start would cost ~0.5 s (145 MB), so a file
// whose hash matched is stamped: ".<file>.verified" beside it records the
// sha256 and the file's identity as stat() saw it before hashing. The stamp
// is trusted while size, mtime, ctime, inode and device are unchanged. ctime
// is the one a user cannot set: rewriting bytes in place and restoring the
// mtime (touch -d, utimensat) moves it, so such a file is hashed again.
struct FileIdentity {
    std::uint64_t size = 0, inode = 0, device = 0;
    std::int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileIdentity& o) const {
        return size == o.size && inode == o.inode && device == o.device && mtime_ns == o.mtime_ns &&
               ctime_ns == o.ctime_ns;
    }
};

std::optional<FileIdentity> identity_of(const fs::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return std::nullopt;
    const auto ns = [](const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
    return FileIdentity{static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino),
                        static_cast<std::uint64_t>(st.st_dev), ns(st.st_mtim), ns(st.st_ctim)};
}

fs::path stamp_path(const fs::path& file) {
    return file.parent_path() / ("." + file.filename().string() + ".verified");
}

json stamp_json(const FileIdentity& id, const std::string& sha256) {
    return json{{"size", id.size},         {"inode", id.inode},       {"device", id.device},
                {"mtime_ns", id.mtime_ns}, {"ctime_ns", id.ctime_ns}, {"sha256", sha256}};
}

// True when the stamp vouches for `sha256` and the file is still the one stamped.
bool stamp_vouches(const fs::path& file, const FileIdentity& now, const std::string& sha256) {
    std::error_code ec;
    if (!fs::is_regular_file(stamp_path(file), ec)) return false;
    try {
        const auto bytes = read_file(stamp_path(file));
        const json j = json::parse(bytes.begin(), bytes.end());
        return j == stamp_json(now, sha256);
    } catch (const std::exception&) {
        return false;  // unreadable or malformed: hash again
    }
}

}  // namespace

bool installed_intact(const InstalledModel& model, Verify how) {
    const auto before = identity_of(model.path);
    if (!before) throw Error(ErrorKind::model, fmt::format("model file '{}' cannot be read", model.path.string()));
    if (how == Verify::stamp && stamp_vouches(model.path, *before, model.sha256)) return true;
    std::error_code ec;
    fs::remove(stamp_path(model.path), ec);
    if (sha256_file(model.path) != model.sha256) return false;
    // Stamp only a file that did not change while it was hashed; a read-only
    // models directory keeps no stamp (the file is hashed at every start).
    if (identity_of(model.path) == before) {
        try {
            write_file_atomic(stamp_path(model.path), stamp_json(*before, model.sha256).dump() + "\n");
        } catch (const Error&) {
        }
    }
    return true;
}

void verify_installed(const InstalledModel& model, Verify how) {
    if (!installed_intact(model, how))
        throw Error(ErrorKind::model,
                    fmt::format("model file '{}' does not match its recorded sha256 (damaged or modified); "
                                "run `faceq download models --force`",
                                model.path.string()));
}

const ModelEntry* Manifest::find(const std::string& name) const {
    for (const auto& m : models)
        if (m.name == name) return &m;
    return nullptr;
}

std::vector<const ModelEntry*> Manifest::by_role(const std::string& wanted) const {
    std::vector<const ModelEntry*> out;
    for (const auto& m : models)
        if (m.role == wanted) out.push_back(&m);
    std::stable_sort(out.begin(), out.end(),
                     [](const ModelEntry* a, const ModelEntry* b) { return a->priority < b->priority; });
    return out;
}

Manifest load_manifest(const fs::path& models_json) {
    std::error_code ec;
    if (!fs::exists(models_json, ec))
        throw Error(ErrorKind::not_found, fmt::format("model manifest '{}': no such file", models_json.string()));
    const auto bytes = read_file(models_json);
    return parse_manifest(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                          models_json.string());
}

Manifest parse_manifest(std::string_view text, const std::string& source) {
    const std::string where = fmt::format("model manifest '{}'", source);
    json doc;
    try {
        doc = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number such as 1e400
        throw Error(ErrorKind::invalid_input, fmt::format("{}: not valid JSON: {}", where, e.what()));
    }
    if (!doc.is_object() || !doc.contains("models") || !doc["models"].is_array())
        throw Error(ErrorKind::invalid_input, fmt::format("{}: expected an object with a 'models' array", where));
    if (doc.contains("schema") && doc["schema"] != manifest_schema)
        throw Error(ErrorKind::invalid_input, fmt::format("{}: schema {} is not supported (this faceq reads schema {})",
                                                          where, doc["schema"].dump(), manifest_schema));

    Manifest manifest;
    std::set<std::string> names, files;
    std::set<std::pair<std::string, int>> role_priorities;
    const auto& models = doc["models"];
    for (std::size_t i = 0; i < models.size(); ++i) {
        const std::string entry_where =
            models[i].is_object() && models[i].contains("name") && models[i]["name"].is_string()
                ? fmt::format("{}: model '{}'", where, models[i]["name"].get<std::string>())
                : fmt::format("{}: models[{}]", where, i);
        ModelEntry e = entry_from_json(models[i], entry_where);
        if (!names.insert(e.name).second)
            throw Error(ErrorKind::invalid_input, fmt::format("{}: duplicate name", entry_where));
        // Two entries installing the same file would overwrite each other's sidecar.
        if (!files.insert(e.file).second)
            throw Error(ErrorKind::invalid_input, fmt::format("{}: file '{}' is used twice", entry_where, e.file));
        if (!role_priorities.insert({e.role, e.priority}).second)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("{}: another '{}' model has priority {}", entry_where, e.role, e.priority));
        manifest.models.push_back(std::move(e));
    }
    return manifest;
}

std::string InstalledModel::version() const { return entry.name + "@" + sha256.substr(0, 12); }

EmbedderIdentity descriptor_identity(EmbedderIdentity embedder, const std::string& alignment) {
    if (alignment != "68") embedder.id += "+" + alignment + "pt";
    embedder.id += "+flip";
    return embedder;
}

std::string embedder_mismatch(const EmbedderIdentity& trained, const EmbedderIdentity& installed) {
    if (trained.id.empty() && trained.sha256.empty()) return "";
    const bool same_id = trained.id.empty() || trained.id == installed.id;
    const bool same_file = trained.sha256.empty() || installed.sha256.empty() || trained.sha256 == installed.sha256;
    if (same_id && same_file) return "";
    return fmt::format("trained for embedder {}, but {} is installed", trained.id.empty() ? trained.sha256 : trained.id,
                       installed.id);
}

std::optional<InstalledModel> read_installed(const fs::path& models_dir, const ModelEntry& entry) {
    const fs::path file = models_dir / entry.file;
    const fs::path sidecar = sidecar_path(models_dir, entry);
    std::error_code ec;
    if (!fs::is_regular_file(file, ec) || !fs::is_regular_file(sidecar, ec)) return std::nullopt;

    // A sidecar that does not parse, or belongs to another model, means "not
    // installed": `faceq download models` then repairs it instead of failing.
    try {
        const auto bytes = read_file(sidecar);
        const json j = json::parse(bytes.begin(), bytes.end());
        InstalledModel m;
        m.entry = entry_from_json(j.at("entry"), fmt::format("sidecar '{}'", sidecar.string()));
        if (m.entry.name != entry.name) return std::nullopt;
        m.path = file;
        m.sha256 = j.at("sha256").get<std::string>();
        m.installed_at = j.at("installed_at").get<std::string>();
        if (!is_sha256_hex(m.sha256)) return std::nullopt;
        return m;
    } catch (const json::exception&) {
        return std::nullopt;
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::invalid_input) return std::nullopt;
        throw;
    }
}

void write_installed(const fs::path& models_dir, const InstalledModel& model) {
    const json j{{"entry", entry_to_json(model.entry)},
                 {"file", model.path.filename().string()},
                 {"sha256", model.sha256},
                 {"installed_at", model.installed_at},
                 {"version", model.version()}};
    write_file_atomic(sidecar_path(models_dir, model.entry), j.dump(2) + "\n");
}

std::optional<InstalledModel> find_installed(const fs::path& models_dir, const Manifest& manifest,
                                             const std::string& wanted_role, Verify how) {
    for (const ModelEntry* e : manifest.by_role(wanted_role))
        if (auto m = read_installed(models_dir, *e)) {
            verify_installed(*m, how);
            return m;
        }
    return std::nullopt;
}

InstalledModel require_installed(const fs::path& models_dir, const Manifest& manifest, const std::string& wanted_role,
                                 Verify how) {
    if (auto m = find_installed(models_dir, manifest, wanted_role, how)) return *m;
    throw Error(ErrorKind::model, fmt::format("no {} model installed in '{}' (run `faceq download models`)",
                                              wanted_role, models_dir.string()));
}

}  // namespace faceq
