// prepare_engine.cpp — what preparing UTKFace and preparing identities share
// (datasets_impl.hpp): listing images, the cache of an earlier prepare,
// analysing in parallel, sorting the outcomes, and the prepared files, both
// written (write_prepared) and read back (load_prepared, see
// faceq/training/datasets.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>

#include "base/fsutil.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/detector.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/training/datasets.hpp"
#include "training/datasets_impl.hpp"

namespace faceq {
namespace {

constexpr int prepared_schema = 1;

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

}  // namespace

namespace datasets_impl {

json pipeline_json(const ModelSet& models, const AnalyzeOptions& o, const std::string& kind) {
    // The descriptors' identity: the embedder and the chips' alignment (a head
    // trained on 5-point chips is not valid for 68-point ones).
    const EmbedderIdentity embedder = embedder_identity(models, o);
    const std::string alignment = chip_alignment(o);
    const auto& points = alignment == "5" ? models.detector_yunet : models.landmarks;
    return json{{"kind", kind},
                {"embedder", embedder.id},
                {"embedder_sha256", embedder.sha256},
                {"alignment", alignment},
                {"landmarks", points ? json(points->version()) : json(nullptr)},
                {"gender_cnn", models.gender ? json(models.gender->version()) : json(nullptr)},
                {"detector", o.detector},
                {"upsample", o.upsample},
                {"min_face", detector_min_face(o.detector, o.min_face)},
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

Outcomes sort_outcomes(const std::vector<WorkItem>& items, const std::vector<Analysed>& analysed) {
    Outcomes o;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto& a = analysed[i];
        if (a.ok) {
            o.usable.push_back(i);
            o.cache_sizes[items[i].file] = items[i].bytes;
            continue;
        }
        (a.reason == "no face found" ? o.no_face : o.unreadable)++;
        o.rejects.push_back({{"file", items[i].file}, {"bytes", items[i].bytes}, {"reason", a.reason}});
        if (o.reject_examples.size() < examples_kept)
            o.reject_examples.push_back({{"file", items[i].file}, {"why", a.reason}});
    }
    return o;
}

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

}  // namespace datasets_impl

using namespace datasets_impl;

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
