// datasets.cpp — dataset catalogue, download + unpack (libarchive), label
// parsing, splits, and preparing feature caches (see faceq/datasets.hpp).
#include "faceq/training/datasets.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <unordered_map>

#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/fsutil.hpp"
#include "faceq/base/time.hpp"
#include "faceq/models/source.hpp"
#include "faceq/pipeline/image_io.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int prepared_schema = 1;
constexpr std::int64_t max_image_entry_bytes = 32ll << 20;  // a face photo is far smaller
constexpr std::size_t examples_kept = 20;                   // rejected files named in the manifest

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// ---------------------------------------------------------------- libarchive

struct ArchiveDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchiveReader = std::unique_ptr<struct archive, ArchiveDeleter>;

std::string archive_why(struct archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

ArchiveReader open_tar(const fs::path& path) {
    ArchiveReader a(archive_read_new());
    if (!a) throw Error(ErrorKind::internal, "libarchive: cannot create a reader");
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    archive_read_support_format_zip(a.get());
    if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot unpack '{}': {}", path.string(), archive_why(a.get())));
    return a;
}

// The image file name an archive entry contributes, or "" to skip it: only
// regular files with an image extension, flattened to their base name (an
// archive cannot write outside the images folder), no hidden files.
std::string image_entry_name(struct archive_entry* entry) {
    if (archive_entry_filetype(entry) != AE_IFREG) return {};
    const char* raw = archive_entry_pathname(entry);
    if (!raw) return {};
    const std::string name = fs::path(raw).filename().string();
    if (name.empty() || name.front() == '.' || name.find('\0') != std::string::npos) return {};
    const std::string l = lower(name);
    if (!ends_with(l, ".jpg") && !ends_with(l, ".jpeg") && !ends_with(l, ".png")) return {};
    return name;
}

// Walks the archive; `visit(name, archive)` is called for every image entry
// (the first of duplicate names only) and may read its data.
template <typename Visit>
void for_each_image(const fs::path& archive_path, Visit visit) {
    ArchiveReader a = open_tar(archive_path);
    std::set<std::string> seen;
    struct archive_entry* entry = nullptr;
    int rc;
    while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
        const std::string name = image_entry_name(entry);
        if (!name.empty() && seen.insert(name).second) {
            visit(name, a.get());
        } else if (archive_read_data_skip(a.get()) != ARCHIVE_OK) {
            throw Error(ErrorKind::invalid_input,
                        fmt::format("cannot unpack '{}': {}", archive_path.string(), archive_why(a.get())));
        }
    }
    if (rc != ARCHIVE_EOF)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot unpack '{}': {}", archive_path.string(), archive_why(a.get())));
}

void extract_to(struct archive* a, const fs::path& archive_path, const fs::path& out) {
    std::string data;
    std::vector<char> buf(1 << 16);
    for (;;) {
        const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
        if (n == 0) break;
        if (n < 0)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("cannot unpack '{}': {}", archive_path.string(), archive_why(a)));
        data.append(buf.data(), static_cast<std::size_t>(n));
        if (static_cast<std::int64_t>(data.size()) > max_image_entry_bytes)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("cannot unpack '{}': entry '{}' is larger than {} MB", archive_path.string(),
                                    out.filename().string(), max_image_entry_bytes >> 20));
    }
    std::ofstream f(out, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", out.string(), std::strerror(errno)));
}

std::optional<json> read_json_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input, fmt::format("'{}' is not valid JSON: {}", path.string(), e.what()));
    }
}

void remove_tree_quietly(const fs::path& p) {
    std::error_code ec;
    fs::remove_all(p, ec);
}

// ---------------------------------------------------------------- float rows

std::string encode_rows(const std::vector<float>& rows) {
    std::string out(rows.size() * 4, '\0');
    for (std::size_t i = 0; i < rows.size(); ++i) {
        std::uint32_t u;
        std::memcpy(&u, &rows[i], 4);
        for (int b = 0; b < 4; ++b) out[4 * i + static_cast<std::size_t>(b)] = static_cast<char>((u >> (8 * b)) & 0xff);
    }
    return out;
}

std::vector<float> decode_rows(const std::vector<std::uint8_t>& bytes) {
    std::vector<float> out(bytes.size() / 4);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const std::uint8_t* b = bytes.data() + 4 * i;
        const std::uint32_t u = static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
                                (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
        std::memcpy(&out[i], &u, 4);
    }
    return out;
}

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

json pipeline_json(const ModelSet& models, const AnalyzeOptions& o, const std::string& kind) {
    return json{{"kind", kind},
                {"embedder", models.embedder.version()},
                {"embedder_sha256", models.embedder.sha256},
                {"landmarks", models.landmarks.version()},
                {"gender_cnn", models.gender ? json(models.gender->version()) : json(nullptr)},
                {"detector", o.detector},
                {"upsample", o.upsample},
                {"min_face", o.min_face},
                {"max_side", o.max_side}};
}

Cache load_cache(const fs::path& out_dir, const json& pipeline) {
    Cache cache;
    try {
        const auto manifest = read_json_file(out_dir / "manifest.json");
        if (!manifest || manifest->value("pipeline", json()) != pipeline) return cache;
        const PreparedDataset old = load_prepared(out_dir);
        for (std::size_t i = 0; i < old.samples.size(); ++i) {
            Analysed a;
            a.ok = true;
            a.row.assign(old.row(i), old.row(i) + old.dim);
            a.cnn_p_male = old.samples[i].cnn_p_male;
            a.faces = 1;
            const auto& rows = manifest->at("cache_sizes");
            cache.by_file[old.samples[i].file] = {rows.value(old.samples[i].file, std::uint64_t{0}), std::move(a)};
        }
        std::ifstream rejects(out_dir / "rejects.jsonl");
        std::string line;
        while (std::getline(rejects, line)) {
            const json r = json::parse(line, nullptr, false);
            if (r.is_discarded() || !r.contains("file") || !r.contains("bytes")) continue;
            Analysed a;
            a.reason = r.value("reason", "");
            cache.by_file[r["file"].get<std::string>()] = {r["bytes"].get<std::uint64_t>(), std::move(a)};
        }
    } catch (const std::exception&) {
        // An unreadable cache is only a slower prepare.
        cache.by_file.clear();
    }
    return cache;
}

// Analyses every item (or takes it from the cache), in input order.
std::vector<Analysed> analyse_all(const std::vector<WorkItem>& items, const ModelSet& models, AnalyzeOptions aopt,
                                  bool features, const Cache& cache, const PrepareOptions& options,
                                  std::size_t& reused) {
    aopt.features = features;
    aopt.descriptors = !features;
    aopt.gender = true;
    std::vector<Analysed> out(items.size());
    std::vector<std::size_t> todo;
    reused = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto it = cache.by_file.find(items[i].file);
        if (it != cache.by_file.end() && it->second.first == items[i].bytes) {
            out[i] = it->second.second;
            ++reused;
        } else {
            todo.push_back(i);
        }
    }
    if (options.log && reused > 0)
        options.log(fmt::format("{} images already prepared, {} to analyse", reused, todo.size()));
    if (todo.empty()) return out;

    const Analyzer prototype(models, aopt);
    std::atomic<bool> stop{false};
    std::size_t done = 0;
    ordered_parallel<Analysed>(
        todo.size(), options.jobs,
        [&] {
            return [&, analyzer = prototype](std::size_t k) mutable {
                Analysed a;
                if (stop.load() || (options.cancelled && options.cancelled())) {
                    stop = true;
                    a.cancelled = true;
                    return a;
                }
                try {
                    const auto image = load_image_file(items[todo[k]].path);
                    const auto result = analyzer.analyze(image.bgr);
                    a.faces = static_cast<int>(result.faces.size());
                    if (result.faces.empty()) {
                        a.reason = "no face found";
                        return a;
                    }
                    // The largest face: crops and portraits can show a second, partial face.
                    const Face* best = &result.faces[0];
                    for (const auto& f : result.faces)
                        if (f.bbox.width * f.bbox.height > best->bbox.width * best->bbox.height) best = &f;
                    if (features)
                        a.row = best->features;
                    else
                        a.row.assign(best->descriptor.begin(), best->descriptor.end());
                    if (best->gender && best->gender_confidence)
                        a.cnn_p_male =
                            *best->gender == "male" ? *best->gender_confidence : 1.0 - *best->gender_confidence;
                    a.ok = true;
                } catch (const std::exception& e) {
                    a.reason = e.what();
                }
                return a;
            };
        },
        [&](std::size_t k, Analysed a) {
            out[todo[k]] = std::move(a);
            ++done;
            if (options.progress) options.progress({"prepare", done, todo.size()});
        });
    if (stop.load()) throw Error(ErrorKind::interrupted, fmt::format("prepare interrupted after {} images", done));
    return out;
}

struct OutputRow {
    json sample;  // without "row"
    const std::vector<float>* row;
};

// Writes the prepared files; the manifest last, naming the row count and the
// feature file's checksum, so a reader can tell a complete set from a torn one.
void write_prepared(const fs::path& out_dir, json manifest, const std::vector<OutputRow>& rows, std::size_t dim,
                    const std::vector<json>& rejects, const json& cache_sizes) {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", out_dir.string(), ec.message()));
    std::string samples;
    std::vector<float> flat;
    flat.reserve(rows.size() * dim);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        json s = rows[i].sample;
        s["row"] = i;
        samples += s.dump() + "\n";
        if (rows[i].row->size() != dim) throw Error(ErrorKind::internal, "prepare: rows of different lengths");
        flat.insert(flat.end(), rows[i].row->begin(), rows[i].row->end());
    }
    std::string rejected;
    for (const auto& r : rejects) rejected += r.dump() + "\n";
    const std::string features = encode_rows(flat);
    write_file_atomic(out_dir / "samples.jsonl", samples);
    write_file_atomic(out_dir / "features.f32", features);
    write_file_atomic(out_dir / "rejects.jsonl", rejected);
    manifest["schema"] = prepared_schema;
    manifest["rows"] = rows.size();
    manifest["dim"] = dim;
    manifest["features_sha256"] = sha256_hex(features.data(), features.size());
    manifest["cache_sizes"] = cache_sizes;
    manifest["created_at"] = utc_now_iso8601();
    write_file_atomic(out_dir / "manifest.json", manifest.dump(2) + "\n");
}

std::vector<WorkItem> list_images(const fs::path& dir, bool recursive) {
    std::vector<WorkItem> items;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return items;
    auto add = [&](const fs::directory_entry& e) {
        std::error_code ec2;
        if (!e.is_regular_file(ec2) || !has_image_extension(e.path())) return;
        if (e.path().filename().string().front() == '.') return;
        items.push_back({e.path(), e.path().lexically_relative(dir).generic_string(), e.file_size(ec2)});
    };
    if (recursive)
        for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec))
            add(e);
    else
        for (const auto& e : fs::directory_iterator(dir, ec)) add(e);
    std::sort(items.begin(), items.end(), [](const WorkItem& a, const WorkItem& b) { return a.file < b.file; });
    return items;
}

void check_fractions(const PrepareOptions& o) {
    if (o.val_fraction < 0 || o.test_fraction < 0 || o.val_fraction + o.test_fraction >= 1.0)
        throw Error(ErrorKind::usage, fmt::format("split fractions val {} + test {} must be >= 0 and leave some for "
                                                  "training",
                                                  o.val_fraction, o.test_fraction));
}

}  // namespace

// ====================================================================== where

fs::path utkface_dir(const Home& home) { return home.datasets_dir() / "utkface"; }

fs::path identities_dir(const Home& home, const std::string& name) { return home.datasets_dir() / "identities" / name; }

fs::path find_identities(const Home& home, const std::string& folder_or_name) {
    std::error_code ec;
    if (fs::is_directory(folder_or_name, ec) || folder_or_name.find('/') != std::string::npos) return folder_or_name;
    return identities_dir(home, folder_or_name);
}

// ====================================================================== labels

std::optional<UtkLabel> parse_utkface_name(const std::string& file_name, std::string* why) {
    auto fail = [&](const std::string& reason) -> std::optional<UtkLabel> {
        if (why) *why = reason;
        return std::nullopt;
    };
    std::string stem = fs::path(file_name).filename().string();
    for (const char* suffix : {".jpg.chip.jpg", ".chip.jpg", ".jpg", ".jpeg", ".png"})
        if (ends_with(lower(stem), suffix)) {
            stem.resize(stem.size() - std::strlen(suffix));
            break;
        }
    std::vector<std::string> parts;
    std::stringstream ss(stem);
    for (std::string p; std::getline(ss, p, '_');) parts.push_back(p);
    if (parts.size() != 4)
        return fail(fmt::format("expected age_gender_race_timestamp, found {} field{}", parts.size(),
                                parts.size() == 1 ? "" : "s"));
    if (!all_digits(parts[0]) || parts[0].size() > 3) return fail(fmt::format("age '{}' is not a number", parts[0]));
    const int age = std::stoi(parts[0]);
    if (age > 120) return fail(fmt::format("age {} is out of range", age));
    if (parts[1] != "0" && parts[1] != "1") return fail(fmt::format("gender '{}' is not 0 or 1", parts[1]));
    if (parts[2].size() != 1 || parts[2][0] < '0' || parts[2][0] > '4')
        return fail(fmt::format("race '{}' is not 0..4", parts[2]));
    if (!all_digits(parts[3])) return fail(fmt::format("timestamp '{}' is not a number", parts[3]));
    return UtkLabel{age, parts[1] == "0" ? "male" : "female", parts[2][0] - '0'};
}

const std::vector<std::string>& age_bands() {
    static const std::vector<std::string> bands{"0-12", "13-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"};
    return bands;
}

std::size_t age_band_index(double age) {
    if (age < 13) return 0;
    if (age < 20) return 1;
    return std::min<std::size_t>(7, static_cast<std::size_t>(age / 10));
}

std::uint64_t seeded_hash(const std::string& text, std::uint64_t seed) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    std::uint64_t z = h ^ (seed * 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::vector<std::string> stratified_split(const std::vector<std::string>& keys, const std::vector<std::string>& strata,
                                          double val_fraction, double test_fraction, std::uint64_t seed) {
    if (keys.size() != strata.size()) throw Error(ErrorKind::internal, "stratified_split: keys and strata differ");
    std::map<std::string, std::vector<std::size_t>> groups;
    for (std::size_t i = 0; i < keys.size(); ++i) groups[strata[i]].push_back(i);
    std::vector<std::string> out(keys.size(), "train");
    for (auto& [stratum, members] : groups) {
        std::vector<std::pair<std::uint64_t, std::size_t>> order;
        for (std::size_t i : members) order.push_back({seeded_hash(keys[i], seed), i});
        std::sort(order.begin(), order.end());
        const double n = static_cast<double>(order.size());
        const auto n_test = static_cast<std::size_t>(std::lround(n * test_fraction));
        const auto n_val = static_cast<std::size_t>(std::lround(n * val_fraction));
        for (std::size_t k = 0; k < order.size(); ++k)
            out[order[k].second] = k < n_test ? "test" : (k < n_test + n_val ? "val" : "train");
    }
    return out;
}

// ====================================================================== catalogue

DatasetEntry find_dataset_entry(const fs::path& datasets_json, const std::string& name) {
    const auto doc = read_json_file(datasets_json);
    if (!doc)
        throw Error(ErrorKind::not_found, fmt::format("dataset catalogue '{}' not found", datasets_json.string()));
    try {
        std::vector<std::string> names;
        for (const auto& d : doc->at("datasets")) {
            names.push_back(d.at("name").get<std::string>());
            if (names.back() != name) continue;
            DatasetEntry e;
            e.name = name;
            e.source_file = d.at("source_file").get<std::string>();
            e.url = d.value("url", "");
            e.sha256 = d.value("sha256", "");
            e.size = d.value("size", std::uint64_t{0});
            e.license = d.value("license", "");
            e.description = d.value("description", "");
            if (e.source_file.empty() || e.source_file.find('/') != std::string::npos)
                throw Error(ErrorKind::invalid_input, fmt::format("dataset catalogue '{}': '{}' has a bad source_file",
                                                                  datasets_json.string(), name));
            return e;
        }
        std::string known;
        for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
        throw Error(ErrorKind::not_found, fmt::format("unknown dataset '{}' (known: {})", name, known));
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("dataset catalogue '{}' is malformed: {}", datasets_json.string(), e.what()));
    }
}

// ====================================================================== download

DatasetDownloadResult download_dataset(const Home& home, const DatasetEntry& entry,
                                       const DatasetDownloadOptions& options) {
    const LogFn& log = options.log;
    DatasetDownloadResult result;
    result.dir = home.datasets_dir() / entry.name;

    // Where the archive comes from: --from, else the mirror, else upstream.
    // Only the first is tried: unlike a model, a dataset does not fall back to
    // upstream when the mirror's copy fails.
    std::string source = options.from;
    if (source.empty()) {
        const auto sources = sources_for(entry.name, entry.source_file, entry.url, options.mirror, log);
        if (!sources.empty()) source = sources.front().location;
    }
    if (source.empty())
        throw Error(ErrorKind::not_found,
                    fmt::format("no source for dataset '{}': it has no public URL; give --from URL|FILE, or a mirror "
                                "holding '{}' (--mirror or FACEQ_MIRROR)",
                                entry.name, entry.source_file));
    if (const auto kind = location_kind(source); kind != LocationKind::http && kind != LocationKind::file_url) {
        std::error_code ec;
        if (!fs::is_regular_file(source, ec))
            throw Error(ErrorKind::not_found, fmt::format("dataset archive '{}' not found", source));
        source = fs::absolute(source).lexically_normal().string();
    }
    result.source = source;

    const fs::path images = result.dir / "images";
    const fs::path info_path = result.dir / "dataset.json";
    if (!options.force) {
        if (const auto info = read_json_file(info_path)) {
            std::error_code ec;
            if (info->value("source", "") == source && info->value("limit", std::size_t{0}) == options.limit &&
                info->value("seed", std::uint64_t{0}) == options.seed && fs::is_directory(images, ec)) {
                result.status = "already installed";
                result.sha256 = info->value("sha256", "");
                result.verified = info->value("verified", false);
                result.images = info->value("images", std::size_t{0});
                result.images_in_archive = info->value("images_in_archive", std::size_t{0});
                return result;
            }
        }
    }

    // Fetch (or copy) into datasets/downloads, keeping the archive so another
    // --limit does not fetch it again.
    std::string name = fs::path(source).filename().string();
    if (name.empty() || name == "." || name == "..") name = entry.source_file;
    const fs::path downloads = home.datasets_dir() / "downloads";
    std::error_code ec;
    fs::create_directories(downloads, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", downloads.string(), ec.message()));
    const fs::path archive = downloads / name;
    const bool catalogued = name == entry.source_file && !entry.sha256.empty();
    bool have = false;
    if (fs::is_regular_file(archive, ec) && catalogued && !options.force) {
        have = sha256_file(archive) == entry.sha256;
        if (have && log) log(fmt::format("{}: using the archive already in '{}'", entry.name, archive.string()));
    }
    if (!have) {
        fs::remove(archive, ec);
        if (log) log(fmt::format("{}: fetching {}", entry.name, source));
        fetch_file(source, archive, options.fetch);
    }
    result.sha256 = sha256_file(archive);
    if (catalogued) {
        if (entry.size > 0 && fs::file_size(archive, ec) != entry.size) {
            fs::remove(archive, ec);
            throw Error(ErrorKind::checksum, fmt::format("size mismatch for '{}' from '{}': expected {} bytes",
                                                         entry.source_file, source, entry.size));
        }
        if (result.sha256 != entry.sha256) {
            fs::remove(archive, ec);
            throw Error(ErrorKind::checksum,
                        fmt::format("checksum mismatch for '{}' from '{}': expected sha256 {}, got {}",
                                    entry.source_file, source, entry.sha256, result.sha256));
        }
        result.verified = true;
    } else if (log) {
        log(fmt::format("warning: '{}' is not the catalogued '{}'; its sha256 {} is recorded but not verified", name,
                        entry.source_file, result.sha256));
    }

    // Pass 1: the image names; choose the subset.
    std::vector<std::string> names;
    for_each_image(archive, [&](const std::string& n, struct archive* a) {
        names.push_back(n);
        archive_read_data_skip(a);
    });
    if (names.empty())
        throw Error(ErrorKind::invalid_input, fmt::format("archive '{}' holds no images", archive.string()));
    result.images_in_archive = names.size();
    std::set<std::string> keep;
    if (options.limit > 0 && options.limit < names.size()) {
        std::vector<std::pair<std::uint64_t, std::string>> order;
        for (const auto& n : names) order.push_back({seeded_hash(n, options.seed), n});
        std::sort(order.begin(), order.end());
        for (std::size_t i = 0; i < options.limit; ++i) keep.insert(order[i].second);
    } else {
        keep.insert(names.begin(), names.end());
    }

    // Pass 2: unpack into a fresh folder beside images/, then swap it in.
    fs::create_directories(result.dir, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", result.dir.string(), ec.message()));
    const fs::path staging = temp_path_beside(images);
    struct Cleanup {
        fs::path p;
        ~Cleanup() { remove_tree_quietly(p); }
    } cleanup{staging};
    fs::create_directories(staging, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", staging.string(), ec.message()));
    std::uint64_t done = 0;
    for_each_image(archive, [&](const std::string& n, struct archive* a) {
        if (!keep.count(n)) {
            archive_read_data_skip(a);
            return;
        }
        extract_to(a, archive, staging / n);
        if (options.fetch.progress) options.fetch.progress({"unpack " + entry.name, ++done, keep.size()});
    });
    result.images = keep.size();
    const fs::path old = temp_path_beside(images);
    if (fs::exists(images, ec)) fs::rename(images, old, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot replace '{}': {}", images.string(), ec.message()));
    rename_durable(staging, images);
    remove_tree_quietly(old);

    json info{{"name", entry.name},
              {"source", source},
              {"archive", archive.string()},
              {"sha256", result.sha256},
              {"verified", result.verified},
              {"limit", options.limit},
              {"seed", options.seed},
              {"images", result.images},
              {"images_in_archive", result.images_in_archive},
              {"license", entry.license},
              {"installed_at", utc_now_iso8601()}};
    write_file_atomic(info_path, info.dump(2) + "\n");
    result.status = "installed";
    return result;
}

// ====================================================================== prepare

json prepare_utkface(const fs::path& dataset_dir, const fs::path& out_dir, const ModelSet& models,
                     const PrepareOptions& options) {
    check_fractions(options);
    const fs::path images = dataset_dir / "images";
    std::error_code ec;
    if (!fs::is_directory(images, ec))
        throw Error(ErrorKind::not_found,
                    fmt::format("no images in '{}'; run: faceq download dataset utkface", images.string()));
    const std::vector<WorkItem> all = list_images(images, false);
    if (all.empty())
        throw Error(ErrorKind::invalid_input, fmt::format("dataset '{}' holds no images", images.string()));

    // Labels first: a malformed name is reported and never analysed.
    std::vector<WorkItem> items;
    std::vector<UtkLabel> labels;
    std::vector<json> rejects;
    std::size_t malformed = 0;
    json malformed_examples = json::array();
    for (const auto& item : all) {
        std::string why;
        const auto label = parse_utkface_name(item.file, &why);
        if (!label) {
            ++malformed;
            if (malformed_examples.size() < examples_kept)
                malformed_examples.push_back({{"file", item.file}, {"why", why}});
            if (options.log) options.log(fmt::format("warning: skipping '{}': malformed label: {}", item.file, why));
            continue;
        }
        items.push_back(item);
        labels.push_back(*label);
    }
    if (items.empty())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("dataset '{}' has no labelled images: none of its {} file names is "
                                "age_gender_race_timestamp.jpg",
                                images.string(), all.size()));
    if (options.limit > 0 && options.limit < items.size()) {
        // A seeded subset (smoke runs): the images with the smallest hashes.
        std::vector<std::pair<std::uint64_t, std::size_t>> order;
        for (std::size_t i = 0; i < items.size(); ++i) order.push_back({seeded_hash(items[i].file, options.seed), i});
        std::sort(order.begin(), order.end());
        order.resize(options.limit);
        std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
        std::vector<WorkItem> sub_items;
        std::vector<UtkLabel> sub_labels;
        for (const auto& [h, i] : order) {
            sub_items.push_back(items[i]);
            sub_labels.push_back(labels[i]);
        }
        items = std::move(sub_items);
        labels = std::move(sub_labels);
    }

    AnalyzeOptions aopt = options.analyze;
    const json pipeline = pipeline_json(models, aopt, "utkface");
    const Cache cache = load_cache(out_dir, pipeline);
    std::size_t reused = 0;
    const auto analysed = analyse_all(items, models, aopt, true, cache, options, reused);

    // Usable samples, then the split over them.
    std::vector<std::size_t> usable;
    std::size_t no_face = 0, unreadable = 0;
    json reject_examples = json::array();
    json cache_sizes = json::object();
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto& a = analysed[i];
        if (a.ok) {
            usable.push_back(i);
            cache_sizes[items[i].file] = items[i].bytes;
            continue;
        }
        (a.reason == "no face found" ? no_face : unreadable)++;
        rejects.push_back({{"file", items[i].file}, {"bytes", items[i].bytes}, {"reason", a.reason}});
        if (reject_examples.size() < examples_kept)
            reject_examples.push_back({{"file", items[i].file}, {"why", a.reason}});
    }
    if (usable.empty())
        throw Error(ErrorKind::invalid_input, fmt::format("no face found in any of the {} labelled images of '{}'",
                                                          items.size(), images.string()));

    std::vector<std::string> keys, strata;
    for (std::size_t i : usable) {
        keys.push_back(items[i].file);
        strata.push_back(age_bands()[age_band_index(labels[i].age)] + "/" + labels[i].gender);
    }
    const auto splits = stratified_split(keys, strata, options.val_fraction, options.test_fraction, options.seed);

    std::vector<OutputRow> rows;
    json counts = json::object();
    for (const char* s : {"train", "val", "test"})
        counts[s] = {{"total", 0}, {"male", 0}, {"female", 0}, {"bands", json::object()}};
    for (std::size_t k = 0; k < usable.size(); ++k) {
        const std::size_t i = usable[k];
        const auto& l = labels[i];
        json s{{"file", items[i].file},
               {"age", l.age},
               {"gender", l.gender},
               {"race", l.race},
               {"band", age_bands()[age_band_index(l.age)]},
               {"split", splits[k]},
               {"cnn_p_male", analysed[i].cnn_p_male}};
        rows.push_back({std::move(s), &analysed[i].row});
        auto& c = counts[splits[k]];
        c["total"] = c["total"].get<int>() + 1;
        c[l.gender] = c[l.gender].get<int>() + 1;
        const std::string band = age_bands()[age_band_index(l.age)];
        c["bands"][band] = c["bands"].value(band, 0) + 1;
    }

    json manifest{{"dataset", "utkface"},
                  {"source", dataset_dir.string()},
                  {"pipeline", pipeline},
                  {"seed", options.seed},
                  {"limit", options.limit},
                  {"fractions", {{"val", options.val_fraction}, {"test", options.test_fraction}}},
                  {"stratified_by", "age band x gender"},
                  {"images", all.size()},
                  {"malformed", malformed},
                  {"malformed_examples", malformed_examples},
                  {"no_face", no_face},
                  {"unreadable", unreadable},
                  {"rejected_examples", reject_examples},
                  {"usable", usable.size()},
                  {"reused_from_cache", reused},
                  {"counts", counts}};
    write_prepared(out_dir, manifest, rows, attribute_feature_size(), rejects, cache_sizes);
    return read_json_file(out_dir / "manifest.json").value();
}

json prepare_identities(const fs::path& source_dir, const fs::path& out_dir, const ModelSet& models,
                        const PrepareOptions& options) {
    if (options.test_fraction < 0 || options.test_fraction >= 1.0)
        throw Error(ErrorKind::usage, fmt::format("--test-fraction {} must be in [0, 1)", options.test_fraction));
    if (options.min_images < 2)
        throw Error(ErrorKind::usage, "--min-images must be at least 2 (one gallery and one probe image)");
    std::error_code ec;
    if (!fs::is_directory(source_dir, ec))
        throw Error(ErrorKind::not_found, fmt::format("identities folder '{}' not found", source_dir.string()));

    // One folder per person; images anywhere below it.
    std::vector<WorkItem> items;
    std::vector<std::string> people_of;
    std::vector<std::string> people;
    for (const auto& e : fs::directory_iterator(source_dir, ec)) {
        std::error_code ec2;
        if (!e.is_directory(ec2) || e.path().filename().string().front() == '.') continue;
        people.push_back(e.path().filename().string());
    }
    std::sort(people.begin(), people.end());
    for (const auto& person : people) {
        for (auto item : list_images(source_dir / person, true)) {
            item.file = person + "/" + item.file;
            items.push_back(std::move(item));
            people_of.push_back(person);
        }
    }
    if (items.empty())
        throw Error(
            ErrorKind::invalid_input,
            fmt::format("no images in '{}': expected a folder per person (DIR/<person>/<image>)", source_dir.string()));

    const json pipeline = pipeline_json(models, options.analyze, "identities");
    const Cache cache = load_cache(out_dir, pipeline);
    std::size_t reused = 0;
    const auto analysed = analyse_all(items, models, options.analyze, false, cache, options, reused);

    std::map<std::string, std::vector<std::size_t>> usable_by_person;
    std::vector<json> rejects;
    json reject_examples = json::array();
    json cache_sizes = json::object();
    std::size_t no_face = 0, unreadable = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (analysed[i].ok) {
            usable_by_person[people_of[i]].push_back(i);
            cache_sizes[items[i].file] = items[i].bytes;
            continue;
        }
        (analysed[i].reason == "no face found" ? no_face : unreadable)++;
        rejects.push_back({{"file", items[i].file}, {"bytes", items[i].bytes}, {"reason", analysed[i].reason}});
        if (reject_examples.size() < examples_kept)
            reject_examples.push_back({{"file", items[i].file}, {"why", analysed[i].reason}});
    }

    std::vector<OutputRow> rows;
    std::size_t too_few = 0;
    json counts{{"train", {{"people", 0}, {"gallery", 0}, {"probe", 0}}},
                {"test", {{"people", 0}, {"gallery", 0}, {"probe", 0}}}};
    for (auto& [person, idx] : usable_by_person) {
        if (static_cast<int>(idx.size()) < options.min_images) {
            ++too_few;
            continue;
        }
        const double u = static_cast<double>(seeded_hash(person, options.seed) >> 11) * 0x1.0p-53;
        const std::string split = u < options.test_fraction ? "test" : "train";
        std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
            return seeded_hash(items[a].file, options.seed) < seeded_hash(items[b].file, options.seed);
        });
        const std::size_t gallery = std::max<std::size_t>(1, idx.size() / 2);
        counts[split]["people"] = counts[split]["people"].get<int>() + 1;
        for (std::size_t k = 0; k < idx.size(); ++k) {
            const std::string role = k < gallery ? "gallery" : "probe";
            counts[split][role] = counts[split][role].get<int>() + 1;
            rows.push_back({json{{"file", items[idx[k]].file}, {"person", person}, {"role", role}, {"split", split}},
                            &analysed[idx[k]].row});
        }
    }
    if (rows.empty())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("no person in '{}' has {} or more images with a face ({} people, {} images)",
                                source_dir.string(), options.min_images, people.size(), items.size()));

    json manifest{{"dataset", "identities"},
                  {"source", fs::absolute(source_dir).lexically_normal().string()},
                  {"pipeline", pipeline},
                  {"seed", options.seed},
                  {"min_images", options.min_images},
                  {"test_fraction", options.test_fraction},
                  {"people", people.size()},
                  {"people_with_too_few_images", too_few},
                  {"images", items.size()},
                  {"no_face", no_face},
                  {"unreadable", unreadable},
                  {"rejected_examples", reject_examples},
                  {"usable", rows.size()},
                  {"reused_from_cache", reused},
                  {"counts", counts}};
    write_prepared(out_dir, manifest, rows, 128, rejects, cache_sizes);
    return read_json_file(out_dir / "manifest.json").value();
}

PreparedDataset load_prepared(const fs::path& dir) {
    PreparedDataset d;
    d.dir = dir;
    const auto manifest = read_json_file(dir / "manifest.json");
    if (!manifest)
        throw Error(ErrorKind::not_found,
                    fmt::format("no prepared dataset in '{}' (manifest.json missing); run: faceq prepare utkface "
                                "(or: faceq prepare identities DIR)",
                                dir.string()));
    d.manifest = *manifest;
    try {
        d.dim = manifest->at("dim").get<std::size_t>();
        const auto rows = manifest->at("rows").get<std::size_t>();
        const auto bytes = read_file(dir / "features.f32");
        if (sha256_hex(bytes.data(), bytes.size()) != manifest->at("features_sha256").get<std::string>() ||
            bytes.size() != rows * d.dim * 4)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("prepared dataset '{}' is inconsistent (features.f32 does not match the "
                                    "manifest); run prepare again",
                                    dir.string()));
        d.rows = decode_rows(bytes);
        std::ifstream in(dir / "samples.jsonl");
        if (!in) throw Error(ErrorKind::io, fmt::format("cannot read '{}'", (dir / "samples.jsonl").string()));
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            const json s = json::parse(line);
            PreparedSample p;
            p.file = s.at("file").get<std::string>();
            p.split = s.at("split").get<std::string>();
            p.age = s.value("age", 0.0);
            p.gender = s.value("gender", "");
            p.race = s.value("race", 0);
            p.cnn_p_male = s.value("cnn_p_male", -1.0);
            p.person = s.value("person", "");
            p.role = s.value("role", "");
            if (s.at("row").get<std::size_t>() != d.samples.size())
                throw Error(ErrorKind::invalid_input,
                            fmt::format("prepared dataset '{}': samples.jsonl rows out of order", dir.string()));
            d.samples.push_back(std::move(p));
        }
        if (d.samples.size() != rows)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("prepared dataset '{}' is inconsistent ({} samples, manifest says {}); run "
                                    "prepare again",
                                    dir.string(), d.samples.size(), rows));
    } catch (const json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("prepared dataset '{}' is malformed: {}", dir.string(), e.what()));
    }
    if (d.samples.empty())
        throw Error(ErrorKind::invalid_input, fmt::format("prepared dataset '{}' holds no samples", dir.string()));
    return d;
}

}  // namespace faceq
