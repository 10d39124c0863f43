// faceq/session/enroller.hpp — enrolling known persons from photos: the one
// implementation behind `faceq enroll` and the HTTP server's /register.
//
// For each photo: already_enrolled() first (a photo whose image, by sha256,
// a known person already has is not analysed again: it is "already enrolled"
// when that person is the one being enrolled, a conflict otherwise); then the
// photo is analysed (AnalysisSession::analyze) and choose_face() takes its only
// face — or the largest, when asked; sample() makes the FaceSample (with the
// face's thumbnail, pipeline/thumbnail.hpp);
// enroll() adds a person's samples in one transaction (Gallery::enroll: the
// person is created when missing; samples of images it has already are skipped).
//
// Errors: choose_face() throws Error{invalid_input} "no face found in '<name>'"
// or "<n> faces in '<name>': a photo to enroll must show one person (or
// <pick hint>)"; enroll() throws Error{usage} for a refused name and
// Error{database}. Thread-safety: already_enrolled(), choose_face() and sample()
// may run on worker threads; the Gallery serializes its own calls.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/batch.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"

namespace faceq {

struct EnrollerOptions {
    // How a user asks for the largest face, for the error message ("use --pick largest").
    std::string pick_hint = "use --pick largest";
};

// A photo some known person already has.
struct AlreadyEnrolled {
    PersonRef owner;
    bool same_person = false;  // the owner is the person being enrolled (name, ignoring case)
    // "already enrolled" or "already enrolled as '<owner>'", as enroll records say it.
    std::string reason() const;
};

// One person to enroll and the photos given for them.
struct PersonPhotos {
    std::string name;        // as given (checked when enrolling)
    std::string name_error;  // why the name or the folder is refused; the photos are then not listed
    std::vector<InputItem> photos;
};

// `faceq enroll --dir DIR`: one person per subfolder of `dir`, the folder's
// name the person's name, its image files (recursively) the photos; sorted by
// folder name. An entry that cannot be followed (a dangling or looping
// symbolic link) is a person with a name_error saying so, and the others go
// on; an unreadable folder's photos are one error item (expand_inputs).
// Throws Error{not_found} when `dir` is not a directory and Error{usage}
// when it has no subfolders.
std::vector<PersonPhotos> plan_person_folders(const std::filesystem::path& dir);

class Enroller {
public:
    // `embedder`: the id the samples' descriptors are stored under.
    Enroller(Gallery& gallery, std::string embedder, EnrollerOptions options);

    std::optional<AlreadyEnrolled> already_enrolled(const std::string& sha256, const std::string& person_name) const;
    // `pick_largest`: several faces in a photo give the largest instead of an error.
    const Face& choose_face(const AnalysisResult& result, const std::string& name, bool pick_largest) const;
    FaceSample sample(const Face& face, const std::string& source_path, const DecodedImage& image) const;
    EnrollResult enroll(const std::string& person_name, const std::vector<FaceSample>& samples);
    // enroll() (nothing written without samples), as the "enrollment" record
    // enroll_persons() describes: person (as the gallery spells it),
    // person_id (null without such a person), created, added, skipped
    // (`skipped` and the samples the gallery skipped) and failed.
    nlohmann::json enroll_record(const std::string& person_name, const std::vector<FaceSample>& samples,
                                 nlohmann::json skipped, nlohmann::json failed);

    const std::string& embedder() const { return embedder_; }

private:
    Gallery& gallery_;
    std::string embedder_;
    EnrollerOptions options_;
};

class AnalysisSession;

struct EnrollPersonsOptions {
    bool pick_largest = false;  // several faces in a photo: take the largest (else the photo fails)
    int jobs = 1;               // worker threads analysing photos
};

// `faceq enroll`: enrolls `persons` in order with the session's gallery (which
// must exist: SessionOptions::create_gallery). Photos are analysed on
// `options.jobs` workers across persons; each person's samples are added in
// one transaction once all of its photos are analysed, so an interruption
// leaves whole persons. Calls `report` once per person, in order, with its
// "enrollment" record ({person, person_id, created, added, skipped: [{file,
// reason}], failed: [{file, error: {kind, message}}]}, or {person, error} for a
// refused folder name or a person without photos), and `on_error` with one
// line per failed photo or person. Returns the number of failures (photos and
// persons). Throws Error{database} when the gallery cannot be written.
std::size_t enroll_persons(const AnalysisSession& session, const std::vector<PersonPhotos>& persons,
                           const EnrollPersonsOptions& options, const std::function<void(nlohmann::json)>& report,
                           const std::function<void(const std::string&)>& on_error);

}  // namespace faceq
