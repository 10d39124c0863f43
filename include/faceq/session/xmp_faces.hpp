// faceq/session/xmp_faces.hpp — faceq's faces in and out of XMP face regions
// (photo/xmp_regions.hpp, docs/xmp.md): the one implementation behind
// `faceq analyze --xmp`, `faceq export xmp` and `faceq enroll --from-xmp`.
//
// Which faces are written: a face identified as a known person, under the
// person's name; with `strangers`, also a face attributed to an unknown
// person, under its public id (unknown_...). Ambiguous faces and strangers
// without a person are never written. A photo's frame (stored size,
// orientation) is read with exiv2 and must agree with the size faceq decoded
// (else Error{invalid_input} for that photo: a region must not land on
// another face).
//
// Errors: the functions that write throw what write_face_regions() throws
// (the sidecar is then untouched); the batch functions catch per photo,
// report and go on. Thread-safety: as photo/xmp_regions.hpp (any thread;
// XMP work is serialized).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "faceq/identity/gallery.hpp"
#include "faceq/photo/xmp_regions.hpp"

namespace faceq {

class AnalysisSession;

struct XmpWriteOptions {
    SidecarNaming naming = SidecarNaming::full_name;
    bool strangers = false;  // --persons all
};

// analyze --xmp: writes the named faces of one analysis record (records.hpp,
// after AnalysisSession::identify: faces with bbox, identity, person_id,
// decision; the image's width and height) into the sidecar of `photo`.
// Returns the record's "xmp" field: {sidecar, created, written, replaced,
// kept, overlapping}.
nlohmann::json write_record_xmp(const std::filesystem::path& photo, const nlohmann::json& record,
                                const XmpWriteOptions& options);

// Called with each record ("type", record) in order.
using XmpReport = std::function<void(std::string_view type, nlohmann::json record)>;
// Called with one line per failed photo, and per warning ("warning: ..." lines).
using XmpLog = std::function<void(const std::string&)>;

// export xmp: the gallery's recorded photos (Gallery::recorded_faces), each
// read back only when it is still the photo recorded (sha256): one "xmp"
// record per photo ({file, sidecar, created, written, replaced, kept,
// overlapping}, or {file, skipped: why} for a photo missing or changed, or
// {file, error}) and an "xmp_export" summary ({photos, regions (written), skipped,
// failed}). Returns the number of failed photos (a sidecar that cannot be
// read or written). `jobs` threads read the photos.
std::size_t export_gallery_xmp(Gallery& gallery, const XmpWriteOptions& options, int jobs, const XmpReport& report,
                               const XmpLog& on_error, const XmpLog& on_warning);

struct XmpEnrollOptions {
    bool recursive = false;
    int jobs = 1;
};

// enroll --from-xmp: every photo under `dir` with named Face regions (its
// sidecar, else its embedded XMP) is analysed; each region is matched to the
// detected face it overlaps most (IoU >= match_iou, one face per region) and
// that face made a sample of the region's name (Enroller). Persons are
// enrolled one transaction each once every photo is in, in order of first
// appearance: one "enrollment" record each (as enroll_persons), then an
// "xmp_enroll" summary ({photos, with_regions, without_regions, regions,
// matched, unmatched: [{file, name, reason}], failed: [{file, error}]}).
// A region without a face there, with a refused name or an unusable area is
// reported (on_warning, and in `unmatched`), never guessed. Returns the
// number of failures (photos whose XMP or image cannot be read, persons that
// cannot be enrolled). The session must have a gallery (create_gallery).
std::size_t enroll_from_xmp(const AnalysisSession& session, const std::filesystem::path& dir,
                            const XmpEnrollOptions& options, const XmpReport& report, const XmpLog& on_error,
                            const XmpLog& on_warning);

}  // namespace faceq
