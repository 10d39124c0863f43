// faceq/photo/xmp_regions.hpp — face regions in XMP, as digiKam, darktable,
// Lightroom, Picasa and exiftool read and write them: the Metadata Working
// Group's regions (mwg-rs:Regions, docs/xmp.md). Read from a sidecar
// (photo.jpg.xmp or photo.xmp) or from the XMP embedded in the photo; written
// to a sidecar only, never into the photo.
//
// Frames. faceq's boxes are in the photo as displayed (EXIF orientation
// applied, pipeline/image_io.hpp); an MWG Area is relative to the photo as
// stored, with AppliedToDimensions its stored width and height. read_photo_frame()
// gives the stored size and the orientation (exiv2); to_stored()/to_displayed()
// convert a normalized area between the frames for the 8 orientations.
//
// Marking. Every region faceq writes carries faceq:PersonId (namespace
// "urn:faceq:xmp:1/", prefix faceq) inside its struct. write_face_regions()
// removes the regions that carry it and adds the new ones; every other region
// and every other property of the sidecar stays as it was.
//
// Limits. A sidecar larger than max_sidecar_bytes is refused before parsing.
// exiv2's XMP toolkit parses with expat, whose amplification limit (expat
// 2.4+) stops entity expansion ("billion laughs"): that is a parse error.
// Numbers outside 0..1 (or not numbers) make a region unusable, reported in
// FaceRegion::problem, never a crash.
//
// Errors: Error{invalid_input} "cannot read XMP '<path>': <why>" for a
// sidecar or packet that does not parse, Error{too_large} for one over the
// cap, Error{io} for a file that cannot be read or written (with the path).
// A failed write leaves the sidecar as it was (written to a temp file beside
// it, fsynced, renamed).
//
// Thread-safety: exiv2's XMP toolkit is not thread-safe; every function here
// takes one process-wide mutex around its exiv2 calls, so callers may use them
// from any thread (they run one at a time).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

// The largest sidecar read (a digiKam sidecar with a hundred regions is ~50 KB).
inline constexpr std::uint64_t max_sidecar_bytes = 4ull << 20;

// A region's area, MWG style: centre x, y and width, height as fractions of
// the image's width and height.
struct NormalizedArea {
    double x = 0, y = 0, w = 0, h = 0;
};

// The photo as stored and how it is displayed.
struct PhotoFrame {
    int stored_width = 0, stored_height = 0;
    int orientation = 1;  // EXIF 1..8 (1 when none or out of range)
    bool swaps() const { return orientation >= 5; }
    int displayed_width() const { return swaps() ? stored_height : stored_width; }
    int displayed_height() const { return swaps() ? stored_width : stored_height; }
};

// Where the photo's sidecar is: "photo.jpg.xmp" (digiKam, darktable: the default) or "photo.xmp".
enum class SidecarNaming { full_name, stem };
std::filesystem::path sidecar_path(const std::filesystem::path& photo, SidecarNaming naming);

// Reads the photo's stored size and EXIF orientation (exiv2). Throws
// Error{invalid_input} when exiv2 cannot read it.
PhotoFrame read_photo_frame(const std::filesystem::path& photo);

NormalizedArea to_stored(const NormalizedArea& displayed, int orientation);
NormalizedArea to_displayed(const NormalizedArea& stored, int orientation);

// A box (pixels of an image `width` x `height`) as a normalized area, and back (rounded, clipped).
NormalizedArea box_to_area(const Box& box, int width, int height);
Box area_to_box(const NormalizedArea& area, int width, int height);

// One region of type Face.
struct FaceRegion {
    std::string name;     // mwg-rs:Name ("" when it has none)
    NormalizedArea area;  // as stored in the XMP (stored frame)
    bool by_faceq = false;
    std::string person_id;  // faceq:PersonId, for regions by faceq
    std::string problem;    // why the area cannot be used ("" when it can)
};

// The Face regions of one XMP packet, and where it came from.
struct XmpRegions {
    std::filesystem::path source;  // the sidecar, or the photo (embedded XMP)
    std::vector<FaceRegion> faces;
    std::size_t other_regions = 0;  // regions of other types (Pet, Focus, ...)
};

// The Face regions of the XMP packet in `xml`; `source` names it in errors.
XmpRegions parse_face_regions(const std::string& xml, const std::filesystem::path& source);

// The photo's Face regions: its sidecar photo.jpg.xmp, else photo.xmp, else
// the XMP embedded in the photo (a sidecar wins: it is where digiKam and
// darktable write when told to leave photos alone). nullopt when there is no
// XMP at all.
std::optional<XmpRegions> read_face_regions(const std::filesystem::path& photo);

// A face faceq writes: its name, its box in the photo as displayed and the
// public id of its person.
struct NamedFace {
    std::string name;
    Box box;
    std::string person_id;
};

struct SidecarWrite {
    std::filesystem::path sidecar;
    bool created = false;         // there was no sidecar before
    std::size_t written = 0;      // faceq's regions now
    std::size_t replaced = 0;     // faceq's regions removed (an earlier run's)
    std::size_t kept = 0;         // regions by others, kept
    std::size_t overlapping = 0;  // faces not written: a region by others already covers them
};

// Writes `faces` (boxes in the displayed frame of `frame`) as faceq's Face
// regions into the photo's sidecar: an existing one is read (refused, and left
// alone, when it does not parse), faceq's earlier regions removed, a face
// whose box a Face region by others already covers (IoU >= match_iou) left out
// (the user's region wins), the rest added, AppliedToDimensions set to the
// stored size; then written atomically. With no faces and no sidecar, nothing is written.
SidecarWrite write_face_regions(const std::filesystem::path& photo, SidecarNaming naming, const PhotoFrame& frame,
                                const std::vector<NamedFace>& faces);

// The IoU from which a region and a detected face are the same face
// (enroll --from-xmp, and the overlap rule above). docs/xmp.md says why 0.3.
inline constexpr double match_iou = 0.3;

}  // namespace faceq
