// tests/lfw_descriptors.hpp — the descriptors of every lfw-dev photo, computed
// once with the real pipeline (Analyzer, installed models, 2 threads) and
// cached in the build tree beside the test home, keyed by the default
// detector and the descriptors' identity (embedder + alignment), so the
// gallery measurements re-run in seconds.
//
// Each photo contributes the face nearest its centre (the LFW subject); photos
// where the detector finds no face (YuNet: 0 of 4,992; HOG: 33) have no descriptor. Everything lives
// in faceq::test.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/batch.hpp"
#include "faceq/identity/face_index.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "test_models.hpp"

namespace faceq::test {

struct LfwPhoto {
    std::string person;  // folder name
    std::string file;    // <person>/<file>.jpg under lfw-deepfunneled
    std::optional<Descriptor> descriptor;
};

inline std::filesystem::path lfw_dir() { return data_dir() / "lfw-dev" / "lfw-deepfunneled"; }

namespace detail {

inline const Face* central_face_of(const AnalysisResult& r) {
    const Face* best = nullptr;
    double best_d = 1e18;
    for (const auto& f : r.faces) {
        const double cx = f.bbox.x + f.bbox.width / 2.0 - r.width / 2.0;
        const double cy = f.bbox.y + f.bbox.height / 2.0 - r.height / 2.0;
        if (cx * cx + cy * cy < best_d) best_d = cx * cx + cy * cy, best = &f;
    }
    return best;
}

inline std::vector<LfwPhoto> list_lfw_photos() {
    std::vector<LfwPhoto> photos;
    std::vector<std::filesystem::path> people;
    for (const auto& e : std::filesystem::directory_iterator(lfw_dir()))
        if (e.is_directory()) people.push_back(e.path());
    std::sort(people.begin(), people.end());
    for (const auto& dir : people) {
        std::vector<std::string> files;
        for (const auto& e : std::filesystem::directory_iterator(dir))
            if (e.path().extension() == ".jpg") files.push_back(e.path().filename().string());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) photos.push_back({dir.filename().string(), dir.filename().string() + "/" + f, {}});
    }
    return photos;
}

}  // namespace detail

// All lfw-dev photos sorted by person and file, with descriptors.
inline const std::vector<LfwPhoto>& lfw_descriptors() {
    static std::once_flag once;
    static std::vector<LfwPhoto> photos;
    std::call_once(once, [] {
        const ModelSet models = test_model_set();
        photos = detail::list_lfw_photos();
        AnalyzeOptions options;  // the default pipeline (detector, alignment), without gender
        options.gender = false;
        const auto cache =
            std::filesystem::path(FACEQ_TEST_HOME).parent_path() /
            ("lfw-dev-descriptors-" + options.detector + "-" + embedder_identity(models, options).id + ".bin");
        // Format: u32 count, then per photo: u32 name length, name, u8 has, 128 x f32 (host order).
        if (std::ifstream in{cache, std::ios::binary}) {
            std::uint32_t n = 0;
            in.read(reinterpret_cast<char*>(&n), 4);
            std::map<std::string, std::optional<Descriptor>> cached;
            for (std::uint32_t i = 0; in && i < n; ++i) {
                std::uint32_t len = 0;
                in.read(reinterpret_cast<char*>(&len), 4);
                std::string name(len, '\0');
                in.read(name.data(), len);
                char has = 0;
                in.read(&has, 1);
                Descriptor d{};
                in.read(reinterpret_cast<char*>(d.data()), sizeof d);
                if (in) cached[name] = has ? std::optional<Descriptor>(d) : std::nullopt;
            }
            if (cached.size() == photos.size()) {
                for (auto& p : photos) p.descriptor = cached.at(p.file);
                return;
            }
        }
        const Analyzer prototype(models, options);
        ordered_parallel<std::optional<Descriptor>>(
            photos.size(), 2,
            [&] {
                return [&, analyzer = Analyzer(prototype)](std::size_t i) mutable {
                    const auto r = analyzer.analyze(load_image_file(lfw_dir() / photos[i].file).bgr);
                    const Face* f = detail::central_face_of(r);
                    return f ? std::optional<Descriptor>(f->descriptor) : std::nullopt;
                };
            },
            [&](std::size_t i, std::optional<Descriptor>&& d) { photos[i].descriptor = d; });
        const auto tmp = cache.string() + ".tmp";
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            const auto n = static_cast<std::uint32_t>(photos.size());
            out.write(reinterpret_cast<const char*>(&n), 4);
            for (const auto& p : photos) {
                const auto len = static_cast<std::uint32_t>(p.file.size());
                out.write(reinterpret_cast<const char*>(&len), 4);
                out.write(p.file.data(), len);
                const char has = p.descriptor ? 1 : 0;
                out.write(&has, 1);
                const Descriptor d = p.descriptor.value_or(Descriptor{});
                out.write(reinterpret_cast<const char*>(d.data()), sizeof d);
            }
        }
        std::filesystem::rename(tmp, cache);
    });
    return photos;
}

}  // namespace faceq::test
