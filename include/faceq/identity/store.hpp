// faceq/identity/store.hpp — what the gallery needs from a database, said in
// the gallery's terms: the seam between identification and an SQL engine.
// Gallery (gallery.hpp) keeps everything that decides: the in-memory index of
// per-person mean descriptors, the decision rule, when a face becomes a new
// stranger, clustering, stats assembly and the JSON shapes. A GalleryStore
// only keeps rows. SQLite implements it today (src/core/identity/
// sqlite_store.hpp) and PostgreSQL does, for many processes on many machines
// writing one gallery (src/core/identity/pg_store.hpp).
//
// Data. Persons are `known` (a name, and a name key = fold_case(name) that is
// unique) or `unknown` (strangers, no name); a public id is unique and never
// changes. Samples are descriptors of a person's face, each tagged with the
// embedder that computed it and unique per (person, embedder, image sha256,
// box). Images are unique per (sha256, model set); detections are the faces
// found in them, with the decision taken when they were stored. Ids are int64
// chosen by the store; times are unix seconds (UTC); descriptors travel as
// Descriptor and are kept as 128 little-endian float32 (512 bytes,
// base/float_blob.hpp) beside the embedder id. Deleting a person deletes its
// samples; its detections stay, without a person. Deleting an image deletes
// its detections.
//
// Transactions. Every operation runs inside read() or write(), on the
// StoreReader / StoreWriter handed to the body (valid only while it runs).
// - read(body): the body sees one consistent snapshot of committed data.
// - write(body): one transaction; it commits whole when the body returns, or
//   leaves nothing behind when the body (or the commit) throws. Before the
//   body runs (Lock::at_start), or from the moment the body calls
//   lock_gallery() (Lock::on_demand), the store holds the gallery's writer
//   lock: those transactions of every process and machine sharing the
//   gallery run one at a time, and the body's reads after taking it see
//   everything committed before (SQLite: BEGIN IMMEDIATE, waiting up to the
//   busy timeout, for every write whatever the Lock; PostgreSQL: READ
//   COMMITTED, and pg_advisory_xact_lock(<gallery key>), so every later
//   statement's snapshot is taken under the lock). Without the lock, a
//   PostgreSQL write runs beside others: row locks order what two of them
//   change; of two adding one image at once, the second waits for the first
//   and finds it stored (add_image says nullopt); a row referring to a person
//   another transaction deleted meanwhile fails as TransientError (the retry
//   sees the deletion).
// - The stranger contract rests on that lock. Gallery::record_analysis, inside
//   one write, (a) refreshes its index from what the body reads — every
//   committed sample and person, (b) decides which faces nobody is near, (c)
//   inserts those as new strangers. It takes the lock (on demand) before (a)
//   whenever a face might be new, so no other writer creates a stranger in
//   between: two processes meeting the same new face cannot both create a
//   person for it: the second one finds the first one's stranger in step (a).
//   Every other Gallery write runs with Lock::at_start.
// - Retries. When an attempt fails with TransientError (PostgreSQL: a
//   serialization failure or deadlock, a lost connection; for SQLite a busy
//   database is already waited for by BEGIN IMMEDIATE and the busy timeout),
//   the store rolls back and runs the body again, up to RetryPolicy::attempts
//   times, pausing longer each time and saying so through its log callback.
//   A body may therefore run more than once: it must have no effect outside
//   the transaction that the next attempt does not redo from scratch (Gallery
//   drops its index cache whenever a body is run again or fails). Other
//   exceptions roll back and propagate unchanged. A body never catches a
//   store operation's exception to carry on: after an error the transaction
//   is done for (PostgreSQL refuses every later statement in it).
// - Finish::roll_back runs a write body and rolls it back: dry runs count
//   what a change would do with the very statements that would do it.
//
// Change detection, for the in-memory index. generation() increases with
// every committed change that affects identification (a sample inserted,
// deleted or moved; a person renamed, made known or deleted) and never goes
// back; change_probe() is a cheaper number that changes whenever another
// connection may have committed anything (SQLite: PRAGMA data_version;
// PostgreSQL: e.g. a counter of LISTEN/NOTIFY messages, or the generation
// itself). Gallery asks change_probe() before every identification and
// generation() only when the probe moved. Each change that moves the
// generation also logs the person it concerns under the new generation, so
// changed_persons(G) lists the persons to re-read after generation G and the
// index is refreshed person by person instead of whole. The log keeps the
// last log_generations generations (older ones are dropped as writes go on);
// asked about an older G, changed_persons() says nullopt: reload whole.
//
// Search is portable: find_persons() gets a query folded by the caller
// (fold_case) and matches it as a plain substring of the stored name key or
// of the public id (which is ASCII and lower case) — no engine-side case
// folding, no wildcards (SQLite: LIKE with an ESCAPE; PostgreSQL: strpos).
// Results are ordered by kind, then name key, then public id, comparing bytes
// (PostgreSQL: COLLATE "C").
//
// Schema. A store brings its database up to date when it opens, with its own
// engine's migrations (appended, never edited), and refuses a database of a
// newer schema with Error{invalid_input}. Thumbnails (a JPEG per detection
// and per sample, pipeline/thumbnail.hpp) live in a table per kind keyed by
// the row's id, deleted with it (sqlite_store.cpp says why not columns): the
// operations that read samples or detections for identification and
// clustering never read them. A sample taken from a detection has no
// thumbnail of its own and shows the detection's; deleting that detection
// gives the sample a copy first (a trigger, on both engines). The rejections
// table ("not this person") came with the migration after; its rows move the
// generation and log their person like samples do, so an index refreshes a
// person whose rejections changed.
//
// Errors: Error{database} for engine failures, naming the store (its
// description()); TransientError (an Error{database}) as above, seen by
// callers only when the retries ran out. Thread-safety: none. One store is
// one connection; Gallery serializes every call with its mutex. A body must
// not call read() or write() again (no nesting), and a scan's visitor must not
// call the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/error.hpp"
#include "faceq/base/progress.hpp"
#include "faceq/identity/gallery.hpp"

namespace faceq {

// A failure that running the whole transaction again may cure.
class TransientError : public Error {
public:
    explicit TransientError(const std::string& message) : Error(ErrorKind::database, message) {}
};

// How many generations of changes a store keeps in its log (changed_persons).
inline constexpr std::int64_t log_generations = 100000;

struct RetryPolicy {
    int attempts = 5;  // in all, the first one included
    std::chrono::milliseconds first_pause{20};
    std::chrono::milliseconds max_pause{1000};  // pauses double up to this
};

// Runs `attempt` until it returns without TransientError, at most
// policy.attempts times; before each retry says why through `log` (when set)
// and pauses. Rethrows the last TransientError when attempts run out; any
// other exception propagates at once. For stores' write() (and read()).
void run_with_retries(const std::function<void()>& attempt, const RetryPolicy& policy, const LogFn& log);

// A new person; the public id and name key are chosen by the caller.
struct NewPerson {
    std::string public_id;
    std::optional<std::string> name;                        // set for known persons
    std::optional<std::string> name_key;                    // fold_case(*name), set with name
    std::string kind;                                       // "known" | "unknown"
    std::int64_t now = 0;                                   // created_at, and updated_at unless set
    std::optional<std::int64_t> updated_at = std::nullopt;  // a copied person's
};

struct NewSample {
    std::int64_t person = 0;
    std::string embedder;
    Descriptor descriptor{};
    std::string source_path;
    std::string source_sha256;
    Box box;
    double quality = 0;
    std::optional<std::int64_t> detection;  // the detection it was taken from
    std::int64_t created_at = 0;
    std::string thumbnail_jpeg;  // its own thumbnail, stored with it when not empty
};

struct NewDetection {
    std::int64_t image = 0;
    Box box;
    double confidence = 0;
    std::optional<std::int64_t> person;
    Decision decision = Decision::unknown;
    std::optional<double> distance, margin, age;
    std::optional<std::string> gender;
    // The descriptor and the embedder that computed it, when the face has one.
    std::optional<Descriptor> descriptor;
    std::string embedder;
    std::int64_t detected_at = 0;
    std::string thumbnail_jpeg;  // stored with it when not empty
};

// A rejection ("not this person", Gallery::reject): the detection that left
// the person and what undoing it needs. The descriptor is the detection's,
// kept here so the rejection outlives the detection row (an image analysed
// again with replace, or a copy of the gallery).
struct NewRejection {
    std::int64_t person = 0;
    std::optional<std::int64_t> detection;  // null once its detection row is gone
    std::string embedder;                   // with descriptor
    std::optional<Descriptor> descriptor;
    Decision decision = Decision::unknown;  // the detection's before it was rejected
    bool had_sample = false;                // the person had a sample made from it
    std::int64_t created_at = 0;
};

// A stored rejection, for identification and clustering.
struct RejectionRow {
    std::int64_t id = 0;
    std::int64_t person = 0;
    std::optional<std::int64_t> detection;
    Descriptor descriptor{};
};

// One detection, for reject/unreject.
struct DetectionFacts {
    std::int64_t id = 0;
    std::optional<std::int64_t> person;
    Decision decision = Decision::unknown;
    std::optional<Descriptor> descriptor;
    std::string embedder;
};

// A detection clustering may move, with the person it has now.
struct ClusterDetection {
    std::int64_t detection = 0;
    std::optional<std::int64_t> person;
    Descriptor descriptor{};
};

class StoreReader {
public:
    virtual ~StoreReader() = default;

    // ---- change detection (see the header comment)
    virtual std::int64_t change_probe() = 0;
    virtual std::int64_t generation() = 0;

    // ---- persons
    // The person whose public id is `public_id` or whose name key is `name_key`.
    virtual std::optional<PersonInfo> find_person(const std::string& public_id, const std::string& name_key) = 0;
    virtual std::optional<PersonRef> person_by_name_key(const std::string& name_key) = 0;
    virtual bool public_id_taken(const std::string& public_id) = 0;
    // Persons whose name key or public id contains `folded` (all when empty),
    // ordered by kind, name key, public id.
    virtual std::vector<PersonInfo> find_persons(const std::string& folded) = 0;
    // A known person holding a sample of this image (sha256) for this
    // embedder: `preferred` when it is one, else the one with the lowest id.
    virtual std::optional<PersonRef> known_owner(const std::string& sha256, const std::string& embedder,
                                                 std::optional<std::int64_t> preferred) = 0;
    // The known persons' samples of this image (sha256) for this embedder:
    // whose, and the face's box (Gallery::enroll: two faces of one photo may
    // be two persons, one face may not).
    virtual std::vector<std::pair<PersonRef, Box>> known_samples_of(const std::string& sha256,
                                                                    const std::string& embedder) = 0;

    // ---- identification data
    virtual void scan_persons(const std::function<void(const PersonRef&)>& visit) = 0;
    // Every sample computed by `embedder`: its person and descriptor.
    virtual void scan_samples(const std::string& embedder,
                              const std::function<void(std::int64_t person, const Descriptor&)>& visit) = 0;
    // Samples per embedder, most first.
    virtual std::vector<EmbedderSamples> embedders() = 0;
    // The persons whose identification data (samples, name, kind, existence)
    // changed after generation `since`, each once; nullopt when the log no
    // longer reaches back to `since`.
    virtual std::optional<std::vector<std::int64_t>> changed_persons(std::int64_t since) = 0;
    // scan_persons and scan_samples for the persons in `ids` only (those that exist).
    virtual void scan_persons_in(const std::vector<std::int64_t>& ids,
                                 const std::function<void(const PersonRef&)>& visit) = 0;
    virtual void scan_samples_of(const std::string& embedder, const std::vector<std::int64_t>& ids,
                                 const std::function<void(std::int64_t person, const Descriptor&)>& visit) = 0;

    // ---- pages (Gallery::list_persons, person_faces, person_samples): `query.text` comes folded
    virtual PersonPage list_persons(const PersonQuery& query) = 0;
    virtual FacePage person_faces(std::int64_t person, std::int64_t offset, std::int64_t limit) = 0;
    virtual std::vector<SampleInfo> person_samples(std::int64_t person) = 0;

    // ---- rejections
    virtual std::optional<DetectionFacts> detection(std::int64_t id) = 0;
    // The rejection of this detection from this person, and its id.
    virtual std::optional<std::pair<std::int64_t, NewRejection>> find_rejection(std::int64_t person,
                                                                                std::int64_t detection) = 0;
    // Rejections with a descriptor of `embedder` (of the persons `ids` only, for the second).
    virtual void scan_rejections(const std::string& embedder,
                                 const std::function<void(const RejectionRow&)>& visit) = 0;
    virtual void scan_rejections_of(const std::string& embedder, const std::vector<std::int64_t>& ids,
                                    const std::function<void(const RejectionRow&)>& visit) = 0;

    // ---- images and detections
    virtual std::optional<StoredImage> find_image(const std::string& sha256, const std::string& models) = 0;
    // Detections with a descriptor from `embedder` that belong to a stranger,
    // or that have no person and were decided unknown; by detection id.
    virtual std::vector<ClusterDetection> cluster_detections(const std::string& embedder) = 0;
    // Samples, then detections, whose descriptor another embedder computed;
    // each group ordered by path, then id.
    virtual std::vector<StoredDescriptor> stale_descriptors(const std::string& embedder) = 0;

    // ---- thumbnails (see the header comment); nullopt when none is stored
    virtual std::optional<std::string> detection_thumbnail(std::int64_t detection) = 0;
    // The sample's own thumbnail, else its detection's.
    virtual std::optional<std::string> sample_thumbnail(std::int64_t sample) = 0;
    // The person's newest sample's (created_at, then id) that has one, else
    // its newest detection's (detected_at, then id) that has one.
    virtual std::optional<std::string> person_thumbnail(std::int64_t person) = 0;
    // Detections without a thumbnail, then samples without a detection and
    // without a thumbnail; each group ordered by path, then id.
    virtual std::vector<StoredFace> missing_thumbnails() = 0;

    // ---- whole rows, in id order, for copying a gallery (Gallery::copy_to).
    // The ids are this store's; a row's references (a detection's image and
    // person, a sample's person and detection) are ids of rows visited before.
    // Detections and samples come with their own thumbnail (thumbnail_jpeg).
    virtual void scan_person_rows(const std::function<void(std::int64_t id, const NewPerson&)>& visit) = 0;
    virtual void scan_image_rows(
        const std::function<void(std::int64_t id, const ImageFacts&, std::int64_t analyzed_at)>& visit) = 0;
    virtual void scan_detection_rows(const std::function<void(std::int64_t id, const NewDetection&)>& visit) = 0;
    virtual void scan_sample_rows(const std::function<void(const NewSample&)>& visit) = 0;
    virtual void scan_rejection_rows(const std::function<void(const NewRejection&)>& visit) = 0;

    // ---- stats
    // GalleryStats with the counts and last_detection set, the rest left as is.
    virtual GalleryStats counts() = 0;
    // Detections per UTC day (unix time of the day's start) from `since` on.
    virtual std::map<std::int64_t, std::int64_t> detections_per_day(std::int64_t since) = 0;
};

class StoreWriter : public StoreReader {
public:
    // Takes the gallery's writer lock for the rest of the transaction (a
    // no-op when the transaction holds it already).
    virtual void lock_gallery() = 0;

    // ---- persons
    // Returns the new id. A taken public id or name key is an Error{database}.
    virtual std::int64_t add_person(const NewPerson& person) = 0;
    virtual void touch_person(std::int64_t person, std::int64_t now) = 0;  // updated_at
    // touch_person for each of `persons` (in one statement where the engine can).
    virtual void touch_persons(const std::vector<std::int64_t>& persons, std::int64_t now) = 0;
    // Names the person (it becomes known if it was a stranger). A name key
    // another person has is an Error{database}.
    virtual void name_person(std::int64_t person, const std::string& name, const std::string& name_key,
                             std::int64_t now) = 0;
    virtual void delete_person(std::int64_t person) = 0;
    // Unknown persons last updated before `before` without any detection;
    // returns how many.
    virtual std::int64_t delete_forgotten_strangers(std::int64_t before) = 0;
    // Unknown persons without any detection or sample; returns how many.
    virtual std::int64_t delete_orphan_strangers() = 0;

    // ---- samples
    // False (nothing written) when the person already has this sample (same
    // embedder, image and box).
    virtual bool add_sample(const NewSample& sample) = 0;
    // A sample for `person` made of the detection's descriptor, embedder, box
    // and image; false when the detection has no descriptor or the person
    // already has that sample.
    virtual bool add_sample_from_detection(std::int64_t person, std::int64_t detection, std::int64_t now) = 0;
    // Gives every sample of `from` to `into`; one `into` already has stays
    // with `from` (and goes when `from` is deleted).
    virtual void move_samples(std::int64_t from, std::int64_t into) = 0;
    // Replaces the descriptor, embedder and box of a sample or detection. For
    // a sample that would then equal another of its person's (the unique
    // key), deletes it instead and returns false.
    virtual bool redescribe(const Redescription& r) = 0;

    // ---- images and detections
    // `now` is its analysis time. Returns its id, or nullopt (nothing
    // written) when an image of that sha256 and models is stored already.
    virtual std::optional<std::int64_t> add_image(const ImageFacts& image, std::int64_t now) = 0;
    // Deletes the image's detections and updates its path, size, mtime and
    // analysis time (the sha256 and models stay).
    virtual void reset_image(std::int64_t image, const ImageFacts& facts, std::int64_t now) = 0;
    virtual std::int64_t add_detection(const NewDetection& detection) = 0;
    // Gives the detection to `person` with `decision`, and the sample taken
    // from it too unless `person` already has that sample (then it stays).
    virtual void reassign_detection(std::int64_t detection, std::int64_t person, Decision decision) = 0;
    // Gives every detection of `from` to `into`; those not ambiguous get `decision`.
    virtual void move_detections(std::int64_t from, std::int64_t into, Decision decision) = 0;
    // The person's detections decided `from` are now decided `to`.
    virtual void redecide_detections(std::int64_t person, Decision from, Decision to) = 0;
    // Deletes detections older than `before`, and the rejections of those;
    // returns how many detections.
    virtual std::int64_t delete_detections_before(std::int64_t before) = 0;
    // Gives the detection to `person` (none: unattributed) with `decision`;
    // samples made from it stay where they are.
    virtual void attribute_detection(std::int64_t detection, std::optional<std::int64_t> person, Decision decision) = 0;

    // ---- rejections (each moves the generation and logs its person)
    virtual std::int64_t add_rejection(const NewRejection& rejection) = 0;
    virtual void delete_rejection(std::int64_t rejection) = 0;
    // A rejection whose detection row is gone (detection_id null: the image
    // was analysed again with replace) follows the new detection; one that
    // still has its detection is left as it is.
    virtual void relink_rejection(std::int64_t rejection, std::int64_t detection) = 0;
    // Gives `from`'s rejections to `into` (one `into` has already stays with `from`).
    virtual void move_rejections(std::int64_t from, std::int64_t into) = 0;
    // Deletes the person's samples made from the detection; returns how many.
    virtual std::int64_t delete_detection_samples(std::int64_t person, std::int64_t detection) = 0;

    // ---- thumbnails
    // Stores the thumbnail of a sample (`sample`) or detection; false (nothing
    // written) when it has one already or no longer exists.
    virtual bool add_thumbnail(bool sample, std::int64_t id, const std::string& jpeg) = 0;
};

class GalleryStore {
public:
    enum class Finish { commit, roll_back };
    enum class Lock { at_start, on_demand };

    virtual ~GalleryStore() = default;

    virtual void read(const std::function<void(StoreReader&)>& body) = 0;
    virtual void write(const std::function<void(StoreWriter&)>& body, Finish finish, Lock lock) = 0;
    void write(const std::function<void(StoreWriter&)>& body, Finish finish = Finish::commit) {
        write(body, finish, Lock::at_start);
    }

    // The schema version of the open database.
    virtual int schema_version() = 0;
    // The database's size on disk (SQLite: the file and its WAL).
    virtual std::uint64_t database_bytes() = 0;
    // Where the gallery is, for people: a path, or a URL without password.
    virtual std::string description() const = 0;
};

}  // namespace faceq
