// xmp_faces.cpp — see faceq/session/xmp_faces.hpp.
#include "faceq/session/xmp_faces.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>

#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/session/analysis_session.hpp"
#include "faceq/session/enroller.hpp"
#include "faceq/session/records.hpp"
#include "session/recorded_photos.hpp"

namespace faceq {
namespace {

// The photo's frame, checked against the size faceq decoded it to.
PhotoFrame checked_frame(const std::filesystem::path& photo, int displayed_width, int displayed_height) {
    const PhotoFrame f = read_photo_frame(photo);
    if (f.displayed_width() != displayed_width || f.displayed_height() != displayed_height)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot place regions in '{}': exiv2 reads {}x{} pixels with orientation {}, "
                                "faceq decoded {}x{}",
                                photo.string(), f.stored_width, f.stored_height, f.orientation, displayed_width,
                                displayed_height));
    return f;
}

nlohmann::json write_json(const SidecarWrite& w) {
    return {{"sidecar", w.sidecar.string()}, {"created", w.created}, {"written", w.written},
            {"replaced", w.replaced},        {"kept", w.kept},       {"overlapping", w.overlapping}};
}

// The face's name in the sidecar, or nullopt when it is not written.
std::optional<std::string> region_name(const std::optional<PersonRef>& person, const XmpWriteOptions& options) {
    if (!person) return std::nullopt;
    if (person->kind == "known" && person->name) return *person->name;
    if (options.strangers) return person->public_id;
    return std::nullopt;
}

}  // namespace

nlohmann::json write_record_xmp(const std::filesystem::path& photo, const nlohmann::json& record,
                                const XmpWriteOptions& options) {
    std::vector<NamedFace> faces;
    for (const auto& f : record.value("faces", nlohmann::json::array())) {
        const auto id = f.find("person_id");
        if (id == f.end() || !id->is_string()) continue;
        const std::string decision = f.value("decision", "");
        std::optional<PersonRef> person;
        if (decision == "known")
            person = PersonRef{0, id->get<std::string>(), f.value("identity", ""), "known"};
        else if (decision == "unknown")
            person = PersonRef{0, id->get<std::string>(), std::nullopt, "unknown"};
        const auto name = region_name(person, options);
        if (!name) continue;
        const auto& b = f.at("bbox");
        faces.push_back({*name, Box{b.at("x"), b.at("y"), b.at("width"), b.at("height")}, id->get<std::string>()});
    }
    const PhotoFrame frame = checked_frame(photo, record.at("width"), record.at("height"));
    return write_json(write_face_regions(photo, options.naming, frame, faces));
}

std::size_t export_gallery_xmp(Gallery& gallery, const XmpWriteOptions& options, int jobs, const XmpReport& report,
                               const XmpLog& on_error, const XmpLog& on_warning) {
    const auto photos = detail::group_by_photo(gallery.recorded_faces());
    struct Outcome {
        nlohmann::json record;
        bool failed = false, skipped = false;
        std::size_t written = 0;
    };
    std::size_t failed = 0, skipped = 0, written = 0;
    ordered_parallel<Outcome>(
        photos.size(), jobs,
        [&] {
            return [&](std::size_t i) {
                const auto& photo = photos[i];
                Outcome out;
                out.record = {{"file", photo.path}};
                try {
                    auto loaded = detail::load_recorded_photo(photo.path, photo.sha256);
                    if (auto* why = std::get_if<std::string>(&loaded)) {
                        out.skipped = true;
                        out.record["skipped"] = *why;
                        return out;
                    }
                    const auto& image = std::get<DecodedImage>(loaded);
                    std::vector<NamedFace> faces;
                    for (const auto& f : photo.faces)
                        if (auto name =
                                f.decision == Decision::ambiguous ? std::nullopt : region_name(f.person, options))
                            faces.push_back({*name, f.box, f.person->public_id});
                    const auto frame = checked_frame(photo.path, image.bgr.cols, image.bgr.rows);
                    const auto w = write_face_regions(photo.path, options.naming, frame, faces);
                    out.written = w.written;
                    out.record.update(write_json(w));
                } catch (const std::exception& e) {
                    const auto* error = dynamic_cast<const Error*>(&e);
                    out.failed = true;
                    out.record["error"] =
                        error_json(error ? error->kind() : ErrorKind::internal,
                                   error ? e.what() : fmt::format("cannot export '{}': {}", photo.path, e.what()));
                }
                return out;
            };
        },
        [&](std::size_t, Outcome&& out) {
            if (out.failed) {
                ++failed;
                on_error(out.record["error"]["message"].get<std::string>());
            } else if (out.skipped) {
                ++skipped;
                on_warning(fmt::format("skipping '{}': {}", out.record["file"].get<std::string>(),
                                       out.record["skipped"].get<std::string>()));
            }
            written += out.written;
            report("xmp", std::move(out.record));
        });
    report("xmp_export", {{"photos", photos.size()}, {"regions", written}, {"skipped", skipped}, {"failed", failed}});
    return failed;
}

namespace {

// One photo of enroll --from-xmp, from a worker.
struct XmpPhoto {
    bool has_regions = false;
    std::size_t regions = 0;                                  // named Face regions
    std::vector<std::pair<std::string, FaceSample>> samples;  // name, sample
    nlohmann::json unmatched = nlohmann::json::array();
    std::optional<Error> error;
};

// Each region's face: pairs by IoU, highest first, each region and face used once.
std::vector<std::optional<std::size_t>> match_regions(const std::vector<Box>& regions, const std::vector<Face>& faces,
                                                      std::vector<double>& best_iou) {
    struct Pair {
        double iou;
        std::size_t region, face;
    };
    std::vector<Pair> pairs;
    best_iou.assign(regions.size(), 0.0);
    for (std::size_t r = 0; r < regions.size(); ++r)
        for (std::size_t f = 0; f < faces.size(); ++f) {
            const double o = iou(regions[r], faces[f].bbox);
            best_iou[r] = std::max(best_iou[r], o);
            if (o >= match_iou) pairs.push_back({o, r, f});
        }
    std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.iou > b.iou; });
    std::vector<std::optional<std::size_t>> out(regions.size());
    std::vector<bool> taken(faces.size(), false);
    for (const auto& p : pairs) {
        if (out[p.region] || taken[p.face]) continue;
        out[p.region] = p.face;
        taken[p.face] = true;
    }
    return out;
}

XmpPhoto enroll_photo(const AnalysisSession& session, Analyzer& analyzer, const Enroller& enroller,
                      const InputItem& item) {
    static const ImageLimits limits;
    XmpPhoto out;
    try {
        if (item.error) throw Error(ErrorKind::invalid_input, *item.error);
        const auto xmp = read_face_regions(item.path);
        if (!xmp) return out;
        std::vector<const FaceRegion*> named;
        for (const auto& r : xmp->faces)
            if (!r.name.empty()) named.push_back(&r);
        if (named.empty()) return out;
        out.has_regions = true;
        out.regions = named.size();
        auto image = load_image_file(item.path, limits);
        const PhotoFrame frame = checked_frame(item.path, image.bgr.cols, image.bgr.rows);
        const auto a = session.analyze(analyzer, item.path, std::move(image), std::nullopt);

        std::vector<Box> boxes;
        std::vector<const FaceRegion*> usable;
        for (const auto* r : named) {
            std::string why = r->problem;
            if (why.empty()) {
                try {
                    check_person_name(r->name);
                } catch (const Error& e) {
                    why = e.what();
                }
            }
            if (!why.empty()) {
                out.unmatched.push_back({{"file", item.path}, {"name", r->name}, {"reason", why}});
                continue;
            }
            usable.push_back(r);
            boxes.push_back(area_to_box(to_displayed(r->area, frame.orientation), frame.displayed_width(),
                                        frame.displayed_height()));
        }
        std::vector<double> best;
        const auto matches = match_regions(boxes, a.result.faces, best);
        for (std::size_t i = 0; i < usable.size(); ++i) {
            if (!matches[i]) {
                out.unmatched.push_back(
                    {{"file", item.path},
                     {"name", usable[i]->name},
                     {"reason", a.result.faces.empty()
                                    ? std::string("no face detected in the photo")
                                    : fmt::format("no detected face there (best IoU {:.2f}, {:.2f} needed)", best[i],
                                                  match_iou)}});
                continue;
            }
            const Face& face = a.result.faces[*matches[i]];
            if (!face.has_descriptor) {
                out.unmatched.push_back(
                    {{"file", item.path}, {"name", usable[i]->name}, {"reason", "the face there has no descriptor"}});
                continue;
            }
            out.samples.emplace_back(usable[i]->name, enroller.sample(face, item.path, a.image));
        }
    } catch (const Error& e) {
        out.error = e;
    } catch (const std::exception& e) {
        out.error = Error(ErrorKind::internal, fmt::format("cannot enroll from '{}': {}", item.path, e.what()));
    }
    return out;
}

}  // namespace

std::size_t enroll_from_xmp(const AnalysisSession& session, const std::filesystem::path& dir,
                            const XmpEnrollOptions& options, const XmpReport& report, const XmpLog& on_error,
                            const XmpLog& on_warning) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw Error(ErrorKind::not_found, fmt::format("no such directory '{}'", dir.string()));
    const auto items = expand_inputs({dir.string()}, options.recursive, nullptr);
    Gallery& gallery = *session.gallery();
    Enroller enroller(gallery, session.identification().context.embedder, {});

    std::size_t failures = 0, with_regions = 0, without_regions = 0, regions = 0, matched = 0;
    nlohmann::json unmatched = nlohmann::json::array(), failed = nlohmann::json::array();
    std::vector<std::string> order;                          // names by first appearance (as first written)
    std::map<std::string, std::vector<FaceSample>> samples;  // by fold_case(name)
    std::map<std::string, std::string> spelled;              // fold_case(name) -> name as first seen
    ordered_parallel<XmpPhoto>(
        items.size(), options.jobs,
        [&] {
            return [&, analyzer = Analyzer(session.prototype())](std::size_t i) mutable {
                return enroll_photo(session, analyzer, enroller, items[i]);
            };
        },
        [&](std::size_t i, XmpPhoto&& out) {
            if (out.error) {
                ++failures;
                on_error(out.error->what());
                failed.push_back(error_record(items[i].path, out.error->kind(), out.error->what()));
                return;
            }
            if (!out.has_regions) {
                ++without_regions;
                return;
            }
            ++with_regions;
            regions += out.regions;
            for (auto& u : out.unmatched) {
                on_warning(fmt::format("warning: region '{}' in '{}' not enrolled: {}", u["name"].get<std::string>(),
                                       items[i].path, u["reason"].get<std::string>()));
                unmatched.push_back(std::move(u));
            }
            for (auto& [name, sample] : out.samples) {
                ++matched;
                const std::string checked = check_person_name(name);
                const std::string key = fold_case(checked);
                if (spelled.emplace(key, checked).second) order.push_back(key);
                samples[key].push_back(std::move(sample));
            }
        });

    for (const auto& key : order) {
        const std::string& name = spelled[key];
        nlohmann::json record{{"person", name}};
        try {
            record = enroller.enroll_record(name, samples[key], nlohmann::json::array(), nlohmann::json::array());
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::database) throw;
            ++failures;
            on_error(e.what());
            record["error"] = error_json(e.kind(), e.what());
        }
        report("enrollment", std::move(record));
    }
    report("xmp_enroll", {{"photos", items.size()},
                          {"with_regions", with_regions},
                          {"without_regions", without_regions},
                          {"regions", regions},
                          {"matched", matched},
                          {"unmatched", unmatched},
                          {"failed", failed}});
    return failures;
}

}  // namespace faceq
