// faceq/identity/gallery.hpp — who is who: the persons faceq knows, their face
// samples, the images it analysed and every face it saw, and identification
// against them. Gallery holds the rules; a GalleryStore (store.hpp) holds the
// rows: SQLite in $FACEQ_HOME/faceq.db by default (Gallery(path)), PostgreSQL
// for a database URL (Gallery::open), or any store given to
// Gallery(std::unique_ptr<GalleryStore>).
//
// Persons are `known` (enrolled under a name) or `unknown` (strangers met by
// `analyze --store`, named by a stable public id `unknown_<unix time>_<4
// digits>` and re-used whenever the same stranger is seen again; known
// persons get `person_<unix time>_<4 digits>`). A public id never changes:
// renaming a stranger makes it known under the same id. Names are unique
// ignoring case (fold_case, base/text.hpp), 1..128 characters of UTF-8
// without control characters, and may not look like a public id.
//
// Identification lives here, whatever the store (gallery.cpp; see
// calibration.hpp for the rule). Each person is represented by the mean of
// its samples' descriptors — on LFW this named 95% of known people against
// 70% for the nearest sample at the same 1% false-accept rate
// (docs/identification.md). Only samples computed by the same embedder as the
// query are used: descriptors of different embedders are never compared, and
// embedders() reports samples that cannot be used. The means live in an
// in-memory index, rebuilt lazily when another process changed samples or
// persons (the store's change probe and generation), so a long `analyze` sees
// a concurrent `enroll`. Strangers: record_analysis refreshes the index inside
// the store's write transaction, under its writer lock, before deciding that a
// face is new, so concurrent processes never create two persons for one new
// face (the contract is spelled out in store.hpp). Clustering
// (gallery_cluster.cpp) and the stats are computed here too; the store only
// reads and writes rows.
//
// Storage guarantees (every store): every change that writes several rows is
// one transaction, so a killed process leaves either all of an image's (or a
// person's) rows or none; writers of several processes queue instead of
// failing; descriptors are 128 little-endian float32 beside their embedder's
// version; times are unix seconds (UTC).
//
// Errors: Error{database} for store failures (naming the database), Error{usage}
// for a bad name, Error{not_found} for a person that does not exist (and for a
// missing file with Options::create off), Error{invalid_input} for a database
// written by a newer faceq. Thread-safety: every method locks an internal
// mutex, so one Gallery (one store connection) may be shared by threads
// (calls are serialized); several processes may open the same gallery at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/progress.hpp"
#include "faceq/base/text.hpp"  // fold_case, which callers compare names with
#include "faceq/identity/calibration.hpp"
#include "faceq/identity/face_index.hpp"
#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

inline constexpr std::size_t max_person_name_chars = 128;

// The name as stored (ASCII whitespace trimmed), or Error{usage} saying why it
// is refused: empty, too long, invalid UTF-8, control characters,
// bidirectional controls or zero-width characters (is_invisible_format: they
// let one name pass for another in every listing), or shaped like a public id.
std::string check_person_name(const std::string& name);

struct PersonRef {
    std::int64_t id = 0;              // row id, internal
    std::string public_id;            // what users see and pass back
    std::optional<std::string> name;  // set for known persons
    std::string kind;                 // "known" | "unknown"
};

struct PersonInfo {
    PersonRef person;
    std::int64_t samples = 0;  // all embedders
    std::int64_t detections = 0;
    std::optional<std::int64_t> last_seen;  // newest detection, unix seconds
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
};

// One face photo to enroll.
struct FaceSample {
    Descriptor descriptor{};
    std::string source_path;
    std::string source_sha256;  // of the image file
    Box box;
    double quality = 0;          // the detector's confidence (0..1)
    std::string thumbnail_jpeg;  // pipeline/thumbnail.hpp; empty = none
};

struct SampleOutcome {
    std::string source_path;
    bool added = false;
    std::string reason;  // why it was skipped
};

struct EnrollResult {
    std::optional<PersonRef> person;  // empty when nothing was added and the person did not exist
    bool created = false;
    std::vector<SampleOutcome> samples;
};

// A person near a query descriptor.
struct PersonDistance {
    PersonRef person;
    float distance = 0;
};

// How one face was identified.
struct Identity {
    Decision decision = Decision::unknown;
    // Who the face is attributed to: the known person, or the stranger it
    // matched (or that was created for it when stored). Empty for ambiguous
    // faces and for strangers not seen before when nothing is stored.
    std::optional<PersonRef> person;
    std::optional<PersonDistance> nearest;  // the two nearest persons, whatever the decision
    std::optional<PersonDistance> runner_up;
    std::optional<float> distance;             // nearest->distance
    std::optional<float> margin;               // runner_up->distance - nearest->distance
    bool new_person = false;                   // a stranger seen for the first time (stored)
    std::optional<std::int64_t> detection_id;  // the detection stored for it (record_analysis)
};

// A stranger that is probably a known person: its mean descriptor lies
// within the calibration's candidate_limit() of that person's (the nearest
// known person to it).
struct MergeCandidate {
    PersonRef stranger;
    PersonRef known;
    float distance = 0;        // between the two means
    std::int64_t samples = 0;  // the stranger's, of this embedder
};

// A page of persons (Gallery::list_persons).
struct PersonQuery {
    std::string kind = "all";  // "known" | "unknown" | "all"
    std::string text;          // name or public id contains it, ignoring case (find_persons' rule)
    // "name": known persons by name key, then strangers by public id (find_persons' order);
    // "detections": most first; "last_seen": newest first (never seen last). Ties: the "name" order.
    std::string order = "name";
    std::int64_t offset = 0, limit = 50;  // offset >= 0, limit 1..500
};
struct PersonPage {
    std::int64_t total = 0;  // persons matching kind and text, all pages
    std::vector<PersonInfo> persons;
};

// One face of a person (Gallery::person_faces).
struct PersonFace {
    std::int64_t detection_id = 0;
    std::optional<std::int64_t> sample_id;  // the person's sample made from it, if any
    std::string image_path;                 // as recorded
    std::int64_t detected_at = 0;
    Box box;
    std::optional<float> age;
    std::optional<std::string> gender;
    std::optional<float> distance;  // to the person when it was identified
    std::string decision;           // "known" | "unknown" | "ambiguous"
    bool rejected = false;          // "not this person" (listed so it can be undone)
};
struct FacePage {
    std::int64_t total = 0;
    std::vector<PersonFace> faces;
};

// One sample of a person (Gallery::person_samples).
struct SampleInfo {
    std::int64_t id = 0;
    std::string source_path;
    Box box;
    std::int64_t created_at = 0;
    std::optional<std::int64_t> detection_id;  // set when it was made from a detection (listed in person_faces too)
    std::string embedder;
};

// "Looks like": the known person nearest to a stranger's mean (Gallery::suggestion).
struct Suggestion {
    PersonRef known;
    float distance = 0;           // between the two means
    std::optional<float> margin;  // the next known person's distance minus `distance`
};

// How near a face's descriptor must be to a rejected detection's descriptor
// to count as that same face again ("not this person", Gallery::reject).
// Measured on 48 LFW photos of 12 people (YuNet + faceapi ResNet): the same
// photo analysed again gives the same descriptor (distance 0); a JPEG
// re-encoded at quality 70 lies 0.03-0.09 away, a copy scaled to 7/8
// 0.06-0.19; two different photos of one person 0.33-0.56 (median 0.42).
// 0.22 covers copies of the photo and stays clear of the person's other photos.
inline constexpr float rejection_radius = 0.22f;

// What identification runs with: the embedder of the query descriptors and
// the decision numbers.
struct IdentifyContext {
    std::string embedder;  // InstalledModel::version()
    Calibration calibration;
};

// The image a set of detections came from.
struct ImageFacts {
    std::string path;
    std::string sha256;
    std::uint64_t size = 0;
    std::optional<std::int64_t> mtime;  // unix seconds
    std::string models;                 // the model set, canonical JSON (skip key with sha256)
};

struct StoredImage {
    std::int64_t image_id = 0;
    std::int64_t analyzed_at = 0;
};

struct EmbedderSamples {
    std::string embedder;
    std::int64_t samples = 0;
    std::int64_t persons = 0;
};

struct GalleryStats {
    std::int64_t persons_known = 0, persons_unknown = 0, samples = 0, images = 0, detections = 0;
    std::int64_t detections_known = 0, detections_unknown = 0, detections_ambiguous = 0;
    // The last 30 days (UTC), oldest first, days without detections included.
    std::vector<std::pair<std::string, std::int64_t>> detections_per_day;
    std::uint64_t database_bytes = 0;  // its size on disk (SQLite: the file and its WAL)
    std::string database_location;     // the store's description(): a path, or a URL without password
    std::vector<EmbedderSamples> embedders;
    int schema_version = 0;
    std::optional<std::int64_t> last_detection;
};

struct PruneResult {
    std::int64_t detections = 0;  // deleted (or that would be, with dry_run)
    std::int64_t strangers = 0;   // unknown persons deleted
};

struct ClusterResult {
    std::int64_t detections = 0;    // unknown detections considered
    std::int64_t clusters = 0;      // groups found
    std::int64_t persons_kept = 0;  // clusters that kept an existing stranger's id
    std::int64_t persons_created = 0;
    std::int64_t persons_removed = 0;  // strangers left without detections or samples
    std::int64_t reassigned = 0;       // detections whose person changed
};

// A stored descriptor and the photo it was computed from, for re-describing
// it with another pipeline (faceq gallery reindex).
struct StoredDescriptor {
    bool sample = true;    // a person's sample, else a detection
    std::int64_t id = 0;   // the sample's or the detection's
    std::string path;      // the photo as recorded (sample: its source; detection: its image)
    std::string sha256;    // of the photo's bytes when it was recorded
    Box box;               // the face in it
    std::string embedder;  // what computed the descriptor
};

// A new descriptor for a StoredDescriptor.
struct Redescription {
    StoredDescriptor which;
    std::string embedder;
    Descriptor descriptor{};
    Box box;  // the face as the new pipeline found it
};

// A stored face without a thumbnail and the photo it was recorded from, for
// making one (faceq gallery thumbnails).
struct StoredFace {
    bool sample = true;   // a person's sample (one without a detection), else a detection
    std::int64_t id = 0;  // the sample's or the detection's
    std::string path;     // the photo as recorded (sample: its source; detection: its image)
    std::string sha256;   // of the photo's bytes when it was recorded
    Box box;              // the face in it
};

// A thumbnail made for a StoredFace.
struct FaceThumbnail {
    StoredFace face;
    std::string jpeg;
};

// A face `analyze --store` recorded, with the person it is attributed to now
// (Gallery::recorded_faces).
struct RecordedFace {
    std::string path;    // the photo as recorded
    std::string sha256;  // of its bytes then
    std::int64_t analyzed_at = 0;
    Box box;                          // in the photo as displayed (EXIF orientation applied)
    std::optional<PersonRef> person;  // none: an unattributed or ambiguous face
    Decision decision = Decision::unknown;
};

// What Gallery::copy_to copied.
struct CopyResult {
    std::int64_t persons = 0, samples = 0, images = 0, detections = 0, rejections = 0;
    std::int64_t thumbnails = 0;  // of detections and samples, in the digest too
    std::string digest;           // of every row's content, ids aside: the same on both sides
};

class GalleryStore;

class Gallery {
public:
    struct Options {
        int busy_timeout_ms = 30000;  // SQLite: how long a writer waits for another
        bool create = true;           // create the file (PostgreSQL: the schema) when missing, else Error{not_found}
        LogFn log;                    // says when a transaction is tried again
    };

    // The gallery at `location`: a PostgreSQL database when it is a
    // postgresql:// (postgres://) URL or a libpq key=value string, else the
    // SQLite file at that path.
    static std::unique_ptr<Gallery> open(const std::string& location, const Options& options);
    // True when `location` names a PostgreSQL database.
    static bool is_database_url(const std::string& location);
    // `location` for people: a database URL without its password, else as given.
    static std::string describe_location(const std::string& location);

    // The SQLite gallery in the file `path` (created with its folder unless
    // options.create is off).
    explicit Gallery(const std::filesystem::path& path);
    Gallery(const std::filesystem::path& path, const Options& options);
    // A gallery over any store (requires a non-null store, which it owns).
    explicit Gallery(std::unique_ptr<GalleryStore> store);
    ~Gallery();
    Gallery(const Gallery&) = delete;
    Gallery& operator=(const Gallery&) = delete;

    // Where the gallery is: the store's description() (the SQLite file's path).
    const std::filesystem::path& path() const;
    // The SQLite schema version this faceq creates and understands.
    static int schema_version_supported();
    // The PostgreSQL schema version this faceq creates and understands.
    static int postgres_schema_version_supported();

    // ---- persons
    // Adds the samples to the known person `name` (created when missing), in
    // one transaction. A sample whose image (sha256) this person already has
    // for this embedder is skipped ("already enrolled"), as is a face another
    // known person has from that image (its box overlapping by IoU >= 0.5:
    // "already enrolled as '<name>'"); another face of the image may be
    // another person's (a group photo's named regions, enroll --from-xmp).
    EnrollResult enroll(const std::string& name, const std::vector<FaceSample>& samples, const std::string& embedder);

    // The known person that already has a sample of this image (sha256) for
    // this embedder, if any: lets enroll skip photos before analysing them.
    std::optional<PersonRef> enrolled_as(const std::string& sha256, const std::string& embedder);

    // Persons whose name (or public id) contains `text`, ignoring case; all when empty.
    std::vector<PersonInfo> find_persons(const std::string& text);
    // The person with this public id, or this exact name (ignoring case).
    std::optional<PersonInfo> person(const std::string& public_id_or_name);
    PersonInfo rename(const std::string& who, const std::string& new_name);
    // Moves every sample and detection of `from` to `into`, then deletes `from`.
    PersonInfo merge(const std::string& from, const std::string& into);
    // Deletes the person and its samples; its detections stay, without a person.
    PersonInfo remove(const std::string& who);

    // ---- the web page's views (paged in the store)
    // One page of persons (kind, text, order as PersonQuery says) and how many
    // match. Error{usage} for a bad kind, order, offset or limit.
    PersonPage list_persons(const PersonQuery& query);
    // The person's faces, newest first (detected_at, then id): its detections
    // and the detections rejected from it (rejected = true). Error{not_found}
    // for no such person, Error{usage} for offset < 0 or limit outside 1..500.
    FacePage person_faces(const std::string& public_id_or_name, std::int64_t offset, std::int64_t limit);
    // The person's samples, newest first (every embedder). Error{not_found}.
    std::vector<SampleInfo> person_samples(const std::string& public_id_or_name);
    // The known person nearest to the stranger's mean (its samples of
    // context.embedder) when within the calibration's candidate_limit() —
    // the rule of merge_candidates(). nullopt when none is, when the
    // stranger has no usable sample or is a known person. Error{not_found}.
    std::optional<Suggestion> suggestion(const std::string& stranger, const IdentifyContext& context);

    // ---- "not this person"
    // The detection leaves the person: it becomes unattributed (decision
    // unknown), the sample made from it (if any) is deleted and the person's
    // mean recomputed (every process sees it through the change log). A
    // rejection is stored with the detection's descriptor: identification
    // never gives that person a face within rejection_radius of it (the same
    // face analysed again, even after its detection was replaced), and
    // cluster() never gives the detection back to the person. Error{not_found}
    // for no such person or detection, Error{usage} when the detection is not
    // the person's (or already rejected from it).
    PersonInfo reject(const std::string& public_id_or_name, std::int64_t detection_id);
    // Undoes reject(): the detection is the person's again (decided as the
    // person's kind says, or ambiguous if it was), with its sample again if it
    // had one, and the rejection is gone. Error{not_found} for no such person
    // or detection, Error{usage} when the detection was not rejected from it.
    PersonInfo unreject(const std::string& public_id_or_name, std::int64_t detection_id);

    // ---- identification
    // Identifies each descriptor without writing anything: a stranger not seen
    // before is `unknown` without a person.
    std::vector<Identity> identify(const std::vector<Descriptor>& faces, const IdentifyContext& context);
    // The k nearest persons (known and unknown) to one descriptor.
    std::vector<PersonDistance> nearest(const Descriptor& face, const std::string& embedder, std::size_t k);
    // Strangers that are probably a known person (MergeCandidate), nearest
    // first: what `faceq persons candidates` lists and `cluster` reports.
    // Nothing is merged (merge() does that when asked).
    std::vector<MergeCandidate> merge_candidates(const IdentifyContext& context);
    // Number of persons and samples usable with this embedder.
    std::pair<std::size_t, std::size_t> usable(const std::string& embedder);
    // Samples per embedder (to report a gallery built with another one).
    std::vector<EmbedderSamples> embedders();

    // ---- analysed images
    // When this image content was analysed with these models, if it was.
    std::optional<StoredImage> find_image(const std::string& sha256, const std::string& models);
    // Identifies the faces and stores the image and its detections in one
    // transaction: strangers seen for the first time become unknown persons.
    // When the image was stored already (same sha256 and models), its old
    // detections are replaced if `replace`, else nothing is written and
    // std::nullopt returned (another process got there first).
    std::optional<std::vector<Identity>> record_analysis(const ImageFacts& image, const std::vector<Face>& faces,
                                                         const IdentifyContext& context, bool replace);

    // ---- care
    // Deletes detections older than `before` (unix seconds); with `strangers`,
    // also unknown persons with no detection left that were last updated before it.
    PruneResult prune(std::int64_t before, bool strangers, bool dry_run);
    // Groups the detections of unknown persons (this embedder) with dlib's
    // chinese_whispers (edges between descriptors nearer than `threshold`) and
    // makes each group one unknown person, keeping the public id most of its
    // detections had.
    ClusterResult cluster(const std::string& embedder, float threshold);
    GalleryStats stats(std::int64_t now);

    // ---- face thumbnails (pipeline/thumbnail.hpp)
    // Stored with their detection or sample, in the same transaction
    // (record_analysis: Face::thumbnail_jpeg; enroll: FaceSample::thumbnail_jpeg),
    // each in a table of its own keyed by the row (deleted with it), so that
    // identification and clustering, which read whole rows of samples and
    // detections, never read thumbnails. A sample taken from a detection
    // shows that detection's thumbnail (stored once); when the detection is
    // deleted (prune, analyze --force) the sample keeps a copy.
    // The JPEG bytes of a detection's or sample's face; nullopt when none is
    // stored (or there is no such row).
    std::optional<std::string> detection_thumbnail(std::int64_t detection_id);
    std::optional<std::string> sample_thumbnail(std::int64_t sample_id);
    // The face to show for a person (public id or name): its newest sample's
    // thumbnail (by creation time), else its newest detection's; nullopt when
    // it has none. Error{not_found} for no such person. (A rejected detection
    // has left the person, so it is never the one shown.)
    std::optional<std::string> person_thumbnail(const std::string& who);
    // Detections, and samples without a detection, that have no thumbnail,
    // grouped by photo (path, then id).
    std::vector<StoredFace> missing_thumbnails();
    // Stores each thumbnail, in one transaction; one whose row was deleted
    // meanwhile, or that has a thumbnail by now, is skipped. Returns how many
    // were stored.
    std::size_t add_thumbnails(const std::vector<FaceThumbnail>& batch);

    // ---- what the gallery holds of each photo (faceq export xmp)
    // The faces of each recorded photo path's newest analysis (an image
    // analysed again under other models, or a changed file under the same
    // path, counts once: the newest), ordered by path, then by detection id.
    // Read in one snapshot.
    std::vector<RecordedFace> recorded_faces();

    // ---- moving a gallery (faceq gallery copy / export / import)
    // Copies every person, sample, image, detection and rejection into `dest`, which
    // must hold no person, sample or image (else Error{usage}), in one
    // transaction of `dest`: interrupted, it leaves `dest` as it was. Before
    // committing, reads `dest` back and compares the counts and a digest of
    // every row's content (public ids, names, paths, boxes, decisions,
    // descriptors' and thumbnails' bytes, times; not the row ids, which `dest` chooses) with
    // this gallery's: when they differ, Error{database} and nothing is
    // committed. This gallery is read in one snapshot; its writers may go on.
    CopyResult copy_to(Gallery& dest);

    // ---- re-describing (faceq gallery reindex)
    // Samples and detections with a descriptor computed by another embedder
    // than `embedder`, grouped by photo (path, then id).
    std::vector<StoredDescriptor> stale_descriptors(const std::string& embedder);
    // Gives each its new descriptor, embedder and box, in one transaction. A
    // sample whose new form its person already has (enrolled again with the
    // new pipeline) is deleted instead: nothing a person had is lost.
    void redescribe(const std::vector<Redescription>& batch);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceq
