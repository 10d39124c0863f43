// analysis_session.cpp — see faceq/session/analysis_session.hpp.
#include "faceq/session/analysis_session.hpp"

#include <sys/stat.h>

#include <chrono>

#include "faceq/base/time.hpp"
#include "faceq/pipeline/compute.hpp"
#include "faceq/pipeline/thumbnail.hpp"
#include "faceq/session/records.hpp"

namespace faceq {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::optional<std::int64_t> file_mtime(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return static_cast<std::int64_t>(st.st_mtime);
}

}  // namespace

struct AnalysisSession::Impl {
    SessionOptions options;
    ModelSet models;
    std::unique_ptr<Analyzer> prototype;
    ModelVersions versions;
    nlohmann::json models_json;
    std::string models_key;  // models_json.dump(): what a stored image is keyed by
    Identification identification;
    nlohmann::json identification_json;
};

AnalysisSession::AnalysisSession(const Home& home, const Manifest& manifest, const SessionOptions& options,
                                 const LogFn& log)
    : impl_(std::make_unique<Impl>()) {
    auto& m = *impl_;
    m.options = options;
    const bool need_cnn = options.analyze.detector == "cnn";
    m.models = options.deployed_head ? resolve_models(home, manifest, need_cnn)
                                     : installed_models(home.models_dir(), manifest, need_cnn);
    set_compute_threads(1);  // parallelism is across images: one BLAS thread per worker
    m.prototype = std::make_unique<Analyzer>(m.models, options.analyze);
    m.versions = m.prototype->versions();
    m.models_json = models_to_json(m.versions);
    m.models_key = m.models_json.dump();
    if (options.identify) {
        m.identification = open_identification(home, embedder_identity(m.models, options.analyze), options.calibration,
                                               options.store || options.create_gallery, log);
        m.identification_json = m.identification.summary();
    }
}

AnalysisSession::~AnalysisSession() = default;

const SessionOptions& AnalysisSession::options() const { return impl_->options; }
const ModelSet& AnalysisSession::models() const { return impl_->models; }
const Analyzer& AnalysisSession::prototype() const {
    if (!impl_->prototype) throw Error(ErrorKind::internal, "the session's prototype Analyzer was taken");
    return *impl_->prototype;
}
Analyzer AnalysisSession::take_prototype() {
    prototype();  // throws when already taken
    Analyzer taken(std::move(*impl_->prototype));
    impl_->prototype.reset();
    return taken;
}
const ModelVersions& AnalysisSession::versions() const { return impl_->versions; }
const nlohmann::json& AnalysisSession::models_json() const { return impl_->models_json; }
bool AnalysisSession::identifies() const { return impl_->identification.gallery != nullptr; }
const Identification& AnalysisSession::identification() const { return impl_->identification; }
Gallery* AnalysisSession::gallery() const { return impl_->identification.gallery.get(); }

ImageAnalysis AnalysisSession::analyze(Analyzer& worker, std::string name, DecodedImage image,
                                       std::optional<std::int64_t> mtime, double decode_ms) const {
    const auto start = Clock::now();
    const auto& o = impl_->options;
    ImageAnalysis a;
    a.name = std::move(name);
    a.mtime = mtime;
    if (gallery() && o.store && o.skip_unchanged && !o.force) {
        if (const auto stored = gallery()->find_image(image.sha256, impl_->models_key)) {
            a.skipped = nlohmann::json{
                {"file", a.name}, {"skipped", "unchanged"}, {"analyzed_at", iso_time(stored->analyzed_at)}};
            return a;
        }
    }
    a.result = worker.analyze(image.bgr);
    // Here, on the worker's thread, while the decoded image is at hand: the
    // thread that stores the analysis runs one image at a time.
    if (gallery() && o.store && o.thumbnails)
        for (auto& face : a.result.faces) face.thumbnail_jpeg = make_face_thumbnail(image.bgr, face.bbox);
    a.result.times.decode = decode_ms;
    a.image = std::move(image);
    a.elapsed_ms = decode_ms + ms_since(start);
    return a;
}

ImageAnalysis AnalysisSession::analyze_file(Analyzer& worker, const std::string& path,
                                            const ImageLimits& limits) const {
    const auto start = Clock::now();
    DecodedImage image = load_image_file(path, limits);
    return analyze(worker, path, std::move(image), file_mtime(path), ms_since(start));
}

nlohmann::json AnalysisSession::record(const ImageAnalysis& a, bool with_embeddings) const {
    if (a.skipped) return *a.skipped;
    return analysis_record(a.name, a.result, versions(), a.elapsed_ms, with_embeddings);
}

void AnalysisSession::identify(const ImageAnalysis& a, nlohmann::json& record) {
    Gallery* g = gallery();
    if (!g || a.skipped || !record.contains("faces")) return;
    const auto& context = impl_->identification.context;
    const auto& faces = a.result.faces;
    std::optional<std::vector<Identity>> ids;
    if (impl_->options.store) {
        ImageFacts facts;
        facts.path = a.name;
        facts.sha256 = a.image.sha256;
        facts.size = a.image.bytes;
        facts.mtime = a.mtime;
        facts.models = impl_->models_key;
        // Stored already (the same photo twice in a batch, an upload sent
        // again, or another process was faster): identify without writing.
        ids = g->record_analysis(facts, faces, context, impl_->options.force);
        record["stored"] = ids.has_value();
    }
    if (!ids) {
        std::vector<Descriptor> descriptors;
        for (const auto& f : faces)
            if (f.has_descriptor) descriptors.push_back(f.descriptor);
        const auto found = g->identify(descriptors, context);
        ids.emplace();
        std::size_t k = 0;
        for (const auto& f : faces) ids->push_back(f.has_descriptor ? found.at(k++) : Identity{});
    }
    auto& out = record["faces"];
    for (std::size_t i = 0; i < out.size() && i < ids->size(); ++i) add_identity(out[i], (*ids)[i]);
    record["identification"] = impl_->identification_json;
}

}  // namespace faceq
