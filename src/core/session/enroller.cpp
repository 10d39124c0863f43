// enroller.cpp — see faceq/session/enroller.hpp.
#include "faceq/session/enroller.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "faceq/base/error.hpp"
#include "faceq/pipeline/thumbnail.hpp"

namespace faceq {

std::vector<PersonPhotos> plan_person_folders(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw Error(ErrorKind::not_found, fmt::format("no such directory '{}'", dir.string()));
    // Each entry that is a folder, or a symbolic link that cannot be
    // followed (dangling, looping): that one is reported and the rest go on.
    std::vector<std::pair<std::filesystem::path, std::string>> folders;  // path, why it cannot be read
    std::filesystem::directory_iterator it(dir, ec);
    for (const std::filesystem::directory_iterator end; !ec && it != end; it.increment(ec)) {
        std::error_code ec2;
        const auto st = it->status(ec2);
        if (!ec2 && std::filesystem::is_directory(st))
            folders.emplace_back(it->path(), "");
        else if (it->is_symlink() && (ec2 || !std::filesystem::exists(st)))
            folders.emplace_back(it->path(), fmt::format("cannot read '{}': {}", it->path().string(),
                                                         ec2 ? ec2.message() : "a symbolic link to nothing"));
    }
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot list '{}': {}", dir.string(), ec.message()));
    std::sort(folders.begin(), folders.end());
    if (folders.empty())
        throw Error(ErrorKind::usage, fmt::format("'{}' has no subfolders (one folder per person)", dir.string()));
    std::vector<PersonPhotos> out;
    for (const auto& [f, unreadable] : folders) {
        PersonPhotos job;
        job.name = f.filename().string();
        job.name_error = unreadable;
        if (job.name_error.empty()) {
            try {
                check_person_name(job.name);
            } catch (const Error& e) {
                job.name_error = e.what();
            }
        }
        if (job.name_error.empty()) job.photos = expand_inputs({f.string()}, true, nullptr);
        out.push_back(std::move(job));
    }
    return out;
}

std::string AlreadyEnrolled::reason() const {
    return same_person ? std::string("already enrolled")
                       : fmt::format("already enrolled as '{}'", owner.name.value_or("?"));
}

Enroller::Enroller(Gallery& gallery, std::string embedder, EnrollerOptions options)
    : gallery_(gallery), embedder_(std::move(embedder)), options_(std::move(options)) {}

std::optional<AlreadyEnrolled> Enroller::already_enrolled(const std::string& sha256,
                                                          const std::string& person_name) const {
    auto owner = gallery_.enrolled_as(sha256, embedder_);
    if (!owner) return std::nullopt;
    AlreadyEnrolled out;
    out.same_person = owner->name && fold_case(*owner->name) == fold_case(check_person_name(person_name));
    out.owner = std::move(*owner);
    return out;
}

const Face& Enroller::choose_face(const AnalysisResult& r, const std::string& name, bool pick_largest) const {
    if (r.faces.empty()) throw Error(ErrorKind::invalid_input, fmt::format("no face found in '{}'", name));
    if (r.faces.size() > 1 && !pick_largest)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("{} faces in '{}': a photo to enroll must show one person (or {})", r.faces.size(),
                                name, options_.pick_hint));
    return *std::max_element(r.faces.begin(), r.faces.end(), [](const Face& a, const Face& b) {
        return static_cast<long>(a.bbox.width) * a.bbox.height < static_cast<long>(b.bbox.width) * b.bbox.height;
    });
}

FaceSample Enroller::sample(const Face& face, const std::string& source_path, const DecodedImage& image) const {
    FaceSample s;
    s.descriptor = face.descriptor;
    s.source_path = source_path;
    s.source_sha256 = image.sha256;
    s.box = face.bbox;
    s.quality = face.confidence;
    // Made by the analysis already when it is to be stored (serve's /register).
    s.thumbnail_jpeg = face.thumbnail_jpeg.empty() ? make_face_thumbnail(image.bgr, face.bbox) : face.thumbnail_jpeg;
    return s;
}

EnrollResult Enroller::enroll(const std::string& person_name, const std::vector<FaceSample>& samples) {
    return gallery_.enroll(person_name, samples, embedder_);
}

nlohmann::json Enroller::enroll_record(const std::string& person_name, const std::vector<FaceSample>& samples,
                                       nlohmann::json skipped, nlohmann::json failed) {
    std::size_t added = 0;
    bool created = false;
    std::optional<PersonRef> person;
    if (!samples.empty()) {
        const auto result = enroll(person_name, samples);
        for (const auto& s : result.samples) {
            if (s.added)
                ++added;
            else
                skipped.push_back({{"file", s.source_path}, {"reason", s.reason}});
        }
        created = result.created;
        person = result.person;
    }
    if (!person) {
        if (auto existing = gallery_.person(person_name)) person = existing->person;
    }
    return {{"person", person && person->name ? *person->name : check_person_name(person_name)},
            {"person_id", person ? nlohmann::json(person->public_id) : nlohmann::json(nullptr)},
            {"created", created},
            {"added", added},
            {"skipped", std::move(skipped)},
            {"failed", std::move(failed)}};
}

}  // namespace faceq
