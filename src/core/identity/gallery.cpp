// gallery.cpp — see faceq/identity/gallery.hpp: names, persons, identification,
// storing analyses, prune and stats, over a GalleryStore. Clustering is in
// gallery_cluster.cpp, the SQL in sqlite_store.cpp.
#include "faceq/identity/gallery.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "faceq/base/error.hpp"
#include "faceq/base/text.hpp"
#include "faceq/base/time.hpp"
#include "identity/gallery_impl.hpp"
#include "identity/pg_store.hpp"
#include "identity/sqlite_store.hpp"

namespace faceq {
namespace {

const std::regex& public_id_pattern() {
    static const std::regex re("^(person|unknown)_[0-9]+_[0-9]{4}$");
    return re;
}

std::string new_public_id(StoreReader& r, const char* prefix) {
    static thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int> digits(0, 9999);
    for (;;) {
        std::string id = fmt::format("{}_{}_{:04d}", prefix, unix_now(), digits(rng));
        if (!r.public_id_taken(id)) return id;
    }
}

Decision decision_for_kind(const std::string& kind) { return kind == "known" ? Decision::known : Decision::unknown; }

// Strangers read per face: a few more than two, for the no-cascade rule.
constexpr std::size_t strangers_read = 4;

// A known person the face is within the threshold of, named although
// persons lie within the margin of it, when each of those is a stranger that
// is probably that person (its mean within candidate_limit() of the known
// person's): the no-cascade rule of calibration.hpp.
std::optional<PersonMatch> known_despite_strangers(const IndexCache& cache, const std::vector<PersonMatch>& known,
                                                   const std::vector<PersonMatch>& strangers, const Calibration& c) {
    if (known.empty() || known[0].distance >= c.threshold) return std::nullopt;
    const PersonMatch& k = known[0];
    if (known.size() > 1 && known[1].distance - k.distance < c.margin) return std::nullopt;
    const Descriptor k_mean = cache.mean(k.person);
    const float limit = candidate_limit(c);
    for (const auto& s : strangers) {
        if (s.distance - k.distance >= c.margin) return k;  // best first: the rest are clear of it too
        if (descriptor_distance(cache.mean(s.person), k_mean) >= limit) return std::nullopt;
    }
    // Every stranger read is within the margin: unnamed if more might be.
    return strangers.size() < strangers_read ? std::optional<PersonMatch>(k) : std::nullopt;
}

// The k nearest of `matches` (best first) that are not in `excluded`.
std::vector<PersonMatch> without(std::vector<PersonMatch> matches, const std::vector<std::int64_t>& excluded,
                                 std::size_t k) {
    matches.erase(std::remove_if(matches.begin(), matches.end(),
                                 [&](const PersonMatch& m) {
                                     return std::find(excluded.begin(), excluded.end(), m.person) != excluded.end();
                                 }),
                  matches.end());
    if (matches.size() > k) matches.resize(k);
    return matches;
}

// The identity of one face against the cached index (which must be current).
// Persons the face was rejected from ("not this person": a rejection within
// rejection_radius of it) are not candidates at all.
Identity identify_one(const IndexCache& cache, const Descriptor& d, const Calibration& calibration) {
    Identity out;
    std::vector<std::int64_t> excluded;
    for (const RejectionRow* r : cache.rejections_near(d, rejection_radius)) excluded.push_back(r->person);
    // The two indexes hold every row once: one pass over all of them, as before.
    const auto known = without(cache.nearest_known(d, 2 + excluded.size()), excluded, 2);
    const auto strangers =
        without(cache.nearest_strangers(d, strangers_read + excluded.size()), excluded, strangers_read);
    auto decided = decide(nearest_of(known, strangers, 2), calibration);
    const bool named = decided.decision == Decision::known && cache.person(decided.nearest->person).kind == "known";
    if (!named) {
        if (const auto k = known_despite_strangers(cache, known, strangers, calibration)) {
            // Named, and explained by the known person and the nearest other one.
            decided.decision = Decision::known;
            decided.runner_up = decided.nearest->person == k->person ? decided.runner_up : decided.nearest;
            decided.nearest = *k;
            decided.margin =
                decided.runner_up ? std::optional<float>(decided.runner_up->distance - k->distance) : std::nullopt;
        } else if (decided.decision == Decision::unknown &&
                   (known.empty() || known[0].distance >= calibration.threshold) && !strangers.empty() &&
                   strangers[0].distance < stranger_limit(calibration)) {
            // The stranger tier: nobody known is near, the nearest stranger is.
            out.person = cache.person(strangers[0].person);
        }
    }
    if (decided.nearest) {
        out.nearest = PersonDistance{cache.person(decided.nearest->person), decided.nearest->distance};
        out.distance = decided.nearest->distance;
    }
    if (decided.runner_up)
        out.runner_up = PersonDistance{cache.person(decided.runner_up->person), decided.runner_up->distance};
    out.margin = decided.margin;
    switch (decided.decision) {
        case Decision::known:
            out.person = out.nearest->person;
            out.decision = decision_for_kind(out.person->kind);
            break;
        case Decision::ambiguous:
            out.decision = Decision::ambiguous;
            break;
        case Decision::unknown:
            out.decision = Decision::unknown;
            break;
    }
    return out;
}

// A face nobody is even near: recording it creates a stranger.
bool is_new_face(const Identity& id, const IdentifyContext& context) {
    return id.decision == Decision::unknown && !id.person &&
           (!id.distance || *id.distance >= context.calibration.threshold);
}

std::optional<double> widen(const std::optional<float>& v) { return v ? std::optional<double>(*v) : std::nullopt; }

}  // namespace

// ---------------------------------------------------------------- names

std::string check_person_name(const std::string& raw) {
    const auto first = raw.find_first_not_of(" \t\r\n\v\f");
    if (first == std::string::npos) throw Error(ErrorKind::usage, "a person's name cannot be empty");
    const std::string name = raw.substr(first, raw.find_last_not_of(" \t\r\n\v\f") - first + 1);
    std::u32string cps;
    if (!decode_utf8(name, cps)) throw Error(ErrorKind::usage, "a person's name must be valid UTF-8");
    if (cps.size() > max_person_name_chars)
        throw Error(ErrorKind::usage, fmt::format("a person's name is limited to {} characters (this one has {})",
                                                  max_person_name_chars, cps.size()));
    for (char32_t cp : cps)
        if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 || cp == 0x2029)
            throw Error(ErrorKind::usage, "a person's name cannot contain control characters or line breaks");
    // Refused, not removed: a name is stored as typed or not at all.
    for (char32_t cp : cps)
        if (is_invisible_format(cp))
            throw Error(ErrorKind::usage,
                        fmt::format("a person's name cannot contain invisible formatting characters (U+{:04X}: "
                                    "bidirectional control or zero-width character)",
                                    static_cast<unsigned>(cp)));
    if (std::regex_match(name, public_id_pattern()))
        throw Error(ErrorKind::usage,
                    fmt::format("'{}' looks like a person id (person_... / unknown_...); choose another name", name));
    return name;
}

// ---------------------------------------------------------------- Impl

Gallery::Impl::Impl(std::unique_ptr<GalleryStore> s) : store(std::move(s)) {
    if (!store) throw Error(ErrorKind::internal, "a gallery needs a store");
    path = store->description();
}

void Gallery::Impl::write(const std::function<void(StoreWriter&)>& body, GalleryStore::Finish finish,
                          GalleryStore::Lock lock) {
    bool ran = false;
    try {
        store->write(
            [&](StoreWriter& w) {
                if (ran) cache.invalidate();  // the last attempt was rolled back, cache changes and all
                ran = true;
                body(w);
            },
            finish, lock);
    } catch (...) {
        cache.invalidate();  // it may hold rows that were rolled back
        throw;
    }
}

PersonRef Gallery::Impl::add_person(StoreWriter& w, const std::optional<std::string>& name, const std::string& kind,
                                    std::int64_t now) {
    PersonRef ref;
    ref.public_id = new_public_id(w, kind == "known" ? "person" : "unknown");
    ref.name = name;
    ref.kind = kind;
    NewPerson p;
    p.public_id = ref.public_id;
    p.name = name;
    if (name) p.name_key = fold_case(*name);
    p.kind = kind;
    p.now = now;
    ref.id = w.add_person(p);
    return ref;
}

PersonInfo Gallery::Impl::require_person(StoreReader& r, const std::string& who) {
    auto p = r.find_person(who, fold_case(who));
    if (!p) throw Error(ErrorKind::not_found, fmt::format("no person '{}' in the gallery '{}'", who, path.string()));
    return *p;
}

// ---------------------------------------------------------------- Gallery

Gallery::Gallery(const std::filesystem::path& path) : Gallery(path, Options{}) {}

Gallery::Gallery(const std::filesystem::path& path, const Options& options) {
    SqliteStore::Options store_options;
    store_options.busy_timeout_ms = options.busy_timeout_ms;
    store_options.create = options.create;
    store_options.log = options.log;
    impl_ = std::make_unique<Impl>(std::make_unique<SqliteStore>(path, store_options));
}

std::unique_ptr<Gallery> Gallery::open(const std::string& location, const Options& options) {
    if (!is_database_url(location)) return std::make_unique<Gallery>(std::filesystem::path(location), options);
    PgStore::Options store_options;
    store_options.create = options.create;
    store_options.log = options.log;
    return std::make_unique<Gallery>(std::make_unique<PgStore>(location, store_options));
}

bool Gallery::is_database_url(const std::string& location) { return is_postgres_url(location); }

std::string Gallery::describe_location(const std::string& location) {
    return is_postgres_url(location) ? describe_postgres_url(location) : location;
}

int Gallery::postgres_schema_version_supported() { return PgStore::latest_schema_version(); }

Gallery::Gallery(std::unique_ptr<GalleryStore> store) : impl_(std::make_unique<Impl>(std::move(store))) {}

Gallery::~Gallery() = default;

const std::filesystem::path& Gallery::path() const { return impl_->path; }

int Gallery::schema_version_supported() { return SqliteStore::latest_schema_version(); }

// ---------------------------------------------------------------- persons

EnrollResult Gallery::enroll(const std::string& raw_name, const std::vector<FaceSample>& samples,
                             const std::string& embedder) {
    const std::string name = check_person_name(raw_name);
    const std::string key = fold_case(name);
    std::lock_guard<std::mutex> lock(impl_->mu);
    EnrollResult result;
    impl_->write([&](StoreWriter& w) {
        result = EnrollResult{};
        const std::int64_t now = unix_now();
        std::optional<PersonRef> person = w.person_by_name_key(key);
        std::set<std::string> seen_in_call;
        for (const auto& s : samples) {
            SampleOutcome out;
            out.source_path = s.source_path;
            // This person with a sample of the image, or another known person
            // with a sample of this face (a box overlapping by IoU >= 0.5):
            // two faces of one photo may be two persons (enroll --from-xmp).
            std::optional<PersonRef> owner;
            for (const auto& [who, box] : w.known_samples_of(s.source_sha256, embedder)) {
                if (person && who.id == person->id) {
                    owner = who;
                    break;
                }
                if (!owner && iou(box, s.box) >= 0.5) owner = who;
            }
            if (owner) {
                out.reason = person && owner->id == person->id
                                 ? "already enrolled"
                                 : fmt::format("already enrolled as '{}'", owner->name.value_or("?"));
            } else if (!seen_in_call.insert(s.source_sha256).second) {
                out.reason = "same image given twice";
            } else {
                if (!person) {
                    person = impl_->add_person(w, name, "known", now);
                    result.created = true;
                }
                out.added = w.add_sample({person->id, embedder, s.descriptor, s.source_path, s.source_sha256, s.box,
                                          s.quality, std::nullopt, now, s.thumbnail_jpeg});
                if (!out.added) out.reason = "already enrolled";
            }
            result.samples.push_back(out);
        }
        if (person && !result.created) w.touch_person(person->id, now);
        result.person = person;
    });
    impl_->cache.invalidate();
    return result;
}

std::optional<PersonRef> Gallery::enrolled_as(const std::string& sha256, const std::string& embedder) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.known_owner(sha256, embedder, std::nullopt); });
}

std::vector<PersonInfo> Gallery::find_persons(const std::string& text) {
    const std::string folded = fold_case(text);
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.find_persons(folded); });
}

std::optional<PersonInfo> Gallery::person(const std::string& who) {
    const std::string key = fold_case(who);
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.find_person(who, key); });
}

PersonInfo Gallery::rename(const std::string& who, const std::string& raw_name) {
    const std::string name = check_person_name(raw_name);
    const std::string key = fold_case(name);
    std::lock_guard<std::mutex> lock(impl_->mu);
    PersonInfo out;
    impl_->write([&](StoreWriter& w) {
        const PersonInfo p = impl_->require_person(w, who);
        const auto clash = w.person_by_name_key(key);
        if (clash && clash->id != p.person.id)
            throw Error(ErrorKind::usage, fmt::format("another person ({}) is already called '{}'; merge them instead",
                                                      clash->public_id, name));
        w.name_person(p.person.id, name, key, unix_now());
        // Detections of a stranger who now has a name become known ones.
        w.redecide_detections(p.person.id, Decision::unknown, Decision::known);
        out = impl_->require_person(w, p.person.public_id);
    });
    impl_->cache.invalidate();
    return out;
}

PersonInfo Gallery::merge(const std::string& from_who, const std::string& into_who) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    PersonInfo out;
    impl_->write([&](StoreWriter& w) {
        const PersonInfo from = impl_->require_person(w, from_who);
        const PersonInfo into = impl_->require_person(w, into_who);
        if (from.person.id == into.person.id)
            throw Error(ErrorKind::usage, fmt::format("cannot merge '{}' into itself", from_who));
        // A sample both already have (same photo and face) is kept once.
        w.move_samples(from.person.id, into.person.id);
        w.move_detections(from.person.id, into.person.id, decision_for_kind(into.person.kind));
        w.move_rejections(from.person.id, into.person.id);  // not `from` is not `into` either
        w.delete_person(from.person.id);
        w.touch_person(into.person.id, unix_now());
        out = impl_->require_person(w, into.person.public_id);
    });
    impl_->cache.invalidate();
    return out;
}

PersonInfo Gallery::remove(const std::string& who) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    PersonInfo out;
    impl_->write([&](StoreWriter& w) {
        out = impl_->require_person(w, who);
        w.delete_person(out.person.id);
    });
    impl_->cache.invalidate();
    return out;
}

// ---------------------------------------------------------------- pages

namespace {

void check_page(std::int64_t offset, std::int64_t limit) {
    if (offset < 0) throw Error(ErrorKind::usage, fmt::format("offset must be 0 or more (got {})", offset));
    if (limit < 1 || limit > 500) throw Error(ErrorKind::usage, fmt::format("limit must be 1..500 (got {})", limit));
}

}  // namespace

PersonPage Gallery::list_persons(const PersonQuery& query) {
    if (query.kind != "all" && query.kind != "known" && query.kind != "unknown")
        throw Error(ErrorKind::usage, fmt::format("unknown kind '{}' (known, unknown or all)", query.kind));
    if (query.order != "name" && query.order != "detections" && query.order != "last_seen")
        throw Error(ErrorKind::usage, fmt::format("unknown order '{}' (name, detections or last_seen)", query.order));
    check_page(query.offset, query.limit);
    PersonQuery folded = query;
    folded.text = fold_case(query.text);
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.list_persons(folded); });
}

FacePage Gallery::person_faces(const std::string& who, std::int64_t offset, std::int64_t limit) {
    check_page(offset, limit);
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read(
        [&](StoreReader& r) { return r.person_faces(impl_->require_person(r, who).person.id, offset, limit); });
}

std::vector<SampleInfo> Gallery::person_samples(const std::string& who) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.person_samples(impl_->require_person(r, who).person.id); });
}

std::optional<Suggestion> Gallery::suggestion(const std::string& stranger, const IdentifyContext& context) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    PersonInfo p;
    impl_->store->read([&](StoreReader& r) {
        p = impl_->require_person(r, stranger);
        impl_->cache.refresh(r, context.embedder);
    });
    if (p.person.kind != "unknown" || impl_->cache.samples_of(p.person.id) == 0) return std::nullopt;
    return impl_->suggest(impl_->cache.mean(p.person.id), context.calibration);
}

// ---------------------------------------------------------------- "not this person"

namespace {

DetectionFacts require_detection(StoreReader& r, std::int64_t id, const std::string& where) {
    auto d = r.detection(id);
    if (!d) throw Error(ErrorKind::not_found, fmt::format("no detection {} in the gallery '{}'", id, where));
    return *d;
}

}  // namespace

PersonInfo Gallery::reject(const std::string& who, std::int64_t detection_id) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    PersonInfo out;
    impl_->write([&](StoreWriter& w) {
        const PersonInfo p = impl_->require_person(w, who);
        const DetectionFacts d = require_detection(w, detection_id, impl_->path.string());
        if (w.find_rejection(p.person.id, detection_id))
            throw Error(ErrorKind::usage, fmt::format("detection {} was already rejected from {}; undo it with --undo",
                                                      detection_id, p.person.public_id));
        if (d.person != p.person.id)
            throw Error(ErrorKind::usage,
                        fmt::format("detection {} is not {}'s face (it is {}); nothing was changed", detection_id,
                                    p.person.public_id, d.person ? "another person's" : "not attributed to anyone"));
        const std::int64_t now = unix_now();
        NewRejection x;
        x.person = p.person.id;
        x.detection = detection_id;
        x.embedder = d.embedder;
        x.descriptor = d.descriptor;
        x.decision = d.decision;
        x.had_sample = w.delete_detection_samples(p.person.id, detection_id) > 0;
        x.created_at = now;
        w.add_rejection(x);
        w.attribute_detection(detection_id, std::nullopt, Decision::unknown);
        w.touch_person(p.person.id, now);
        out = impl_->require_person(w, p.person.public_id);
    });
    impl_->cache.invalidate();
    return out;
}

PersonInfo Gallery::unreject(const std::string& who, std::int64_t detection_id) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    PersonInfo out;
    impl_->write([&](StoreWriter& w) {
        const PersonInfo p = impl_->require_person(w, who);
        require_detection(w, detection_id, impl_->path.string());
        const auto rejection = w.find_rejection(p.person.id, detection_id);
        if (!rejection)
            throw Error(ErrorKind::usage, fmt::format("detection {} was not rejected from {}; nothing to undo",
                                                      detection_id, p.person.public_id));
        const std::int64_t now = unix_now();
        w.delete_rejection(rejection->first);
        const Decision decision =
            rejection->second.decision == Decision::ambiguous ? Decision::ambiguous : decision_for_kind(p.person.kind);
        // Only the detection: a sample another person made of it since stays theirs.
        w.attribute_detection(detection_id, p.person.id, decision);
        if (rejection->second.had_sample) w.add_sample_from_detection(p.person.id, detection_id, now);
        w.touch_person(p.person.id, now);
        out = impl_->require_person(w, p.person.public_id);
    });
    impl_->cache.invalidate();
    return out;
}

// ---------------------------------------------------------------- identification

std::vector<Identity> Gallery::identify(const std::vector<Descriptor>& faces, const IdentifyContext& context) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->store->read([&](StoreReader& r) { impl_->cache.refresh(r, context.embedder); });
    std::vector<Identity> out;
    out.reserve(faces.size());
    for (const auto& d : faces) out.push_back(identify_one(impl_->cache, d, context.calibration));
    return out;
}

std::vector<PersonDistance> Gallery::nearest(const Descriptor& face, const std::string& embedder, std::size_t k) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->store->read([&](StoreReader& r) { impl_->cache.refresh(r, embedder); });
    std::vector<PersonDistance> out;
    for (const auto& m : impl_->cache.nearest(face, k)) out.push_back({impl_->cache.person(m.person), m.distance});
    return out;
}

std::optional<Suggestion> Gallery::Impl::suggest(const Descriptor& stranger_mean, const Calibration& calibration) {
    const auto known = cache.nearest_known(stranger_mean, 2);
    if (known.empty() || known[0].distance >= candidate_limit(calibration)) return std::nullopt;
    Suggestion out;
    out.known = cache.person(known[0].person);
    out.distance = known[0].distance;
    if (known.size() > 1) out.margin = known[1].distance - known[0].distance;
    return out;
}

std::vector<MergeCandidate> Gallery::merge_candidates(const IdentifyContext& context) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->store->read([&](StoreReader& r) { impl_->cache.refresh(r, context.embedder); });
    const IndexCache& cache = impl_->cache;
    std::vector<MergeCandidate> out;
    for (const auto& [stranger, mean] : cache.stranger_means()) {
        const auto s = impl_->suggest(mean, context.calibration);
        if (!s) continue;
        out.push_back({cache.person(stranger), s->known, s->distance, cache.samples_of(stranger)});
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const MergeCandidate& a, const MergeCandidate& b) { return a.distance < b.distance; });
    return out;
}

std::pair<std::size_t, std::size_t> Gallery::usable(const std::string& embedder) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->store->read([&](StoreReader& r) { impl_->cache.refresh(r, embedder); });
    return {impl_->cache.persons_with_samples(), impl_->cache.samples()};
}

std::vector<EmbedderSamples> Gallery::embedders() {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([](StoreReader& r) { return r.embedders(); });
}

// ---------------------------------------------------------------- analysed images

std::optional<StoredImage> Gallery::find_image(const std::string& sha256, const std::string& models) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.find_image(sha256, models); });
}

Identity Gallery::Impl::record_face(StoreWriter& w, std::int64_t image_id, const ImageFacts& image, const Face& face,
                                    const IdentifyContext& context, std::int64_t now) {
    Identity id;
    bool add_sample = false;
    if (face.has_descriptor) {
        id = identify_one(cache, face.descriptor, context.calibration);
        if (is_new_face(id, context)) {
            // Nobody is even near: a stranger seen for the first time.
            id.person = add_person(w, std::nullopt, "unknown", now);
            cache.add_person(*id.person);
            id.new_person = true;
            add_sample = true;
        } else if (id.person && id.person->kind == "unknown") {
            add_sample = cache.samples_of(id.person->id) < max_stranger_samples;
        }
    }
    NewDetection d;
    d.image = image_id;
    d.box = face.bbox;
    d.confidence = face.confidence;
    if (id.person) d.person = id.person->id;
    d.decision = id.decision;
    d.distance = widen(id.distance);
    d.margin = widen(id.margin);
    d.age = face.age;
    d.gender = face.gender;
    if (face.has_descriptor) d.descriptor = face.descriptor, d.embedder = context.embedder;
    d.detected_at = now;
    d.thumbnail_jpeg = face.thumbnail_jpeg;
    const std::int64_t detection = w.add_detection(d);
    id.detection_id = detection;
    if (face.has_descriptor) {
        // A rejection whose detection row was replaced (the image analysed
        // again) follows this one: it stays listed, and can be undone.
        for (const RejectionRow* r : cache.rejections_near(face.descriptor, rejection_radius))
            w.relink_rejection(r->id, detection);
    }
    // The sample shows the detection's thumbnail (store.hpp): none of its own.
    if (add_sample && w.add_sample({id.person->id,
                                    context.embedder,
                                    face.descriptor,
                                    image.path,
                                    image.sha256,
                                    face.bbox,
                                    face.confidence,
                                    detection,
                                    now,
                                    {}}))
        cache.add_sample(id.person->id, face.descriptor);
    return id;
}

std::optional<std::vector<Identity>> Gallery::record_analysis(const ImageFacts& image, const std::vector<Face>& faces,
                                                              const IdentifyContext& context, bool replace) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    std::optional<std::vector<Identity>> out;
    impl_->write(
        [&](StoreWriter& w) {
            out.reset();
            const std::int64_t now = unix_now();
            std::optional<std::int64_t> image_id;
            if (replace) {
                if (const auto stored = w.find_image(image.sha256, image.models)) {
                    image_id = stored->image_id;
                    w.reset_image(*image_id, image, now);
                }
            }
            if (!image_id) image_id = w.add_image(image, now);
            if (!image_id) return;  // stored already (maybe by another process): nothing to write
            // The stranger contract (store.hpp): under the writer lock, the index
            // sees every committed sample before any face is called new. Faces
            // that all match someone need no lock: writers run side by side,
            // matching against an index at most max_staleness old.
            impl_->cache.refresh_within(w, context.embedder, IndexCache::max_staleness);
            // The lock is also taken, before any person, detection or sample
            // is written, to give a stranger another sample: every change that
            // moves the store's generation happens under it (PostgreSQL's
            // generations then commit in order; pg_store.hpp).
            if (std::any_of(faces.begin(), faces.end(), [&](const Face& face) {
                    if (!face.has_descriptor) return false;
                    const Identity id = identify_one(impl_->cache, face.descriptor, context.calibration);
                    return is_new_face(id, context) || (id.person && id.person->kind == "unknown" &&
                                                        impl_->cache.samples_of(id.person->id) < max_stranger_samples);
                })) {
                w.lock_gallery();
                impl_->cache.refresh(w, context.embedder);
            }
            std::vector<Identity> identities;
            for (const auto& face : faces)
                identities.push_back(impl_->record_face(w, *image_id, image, face, context, now));
            // Persons seen are touched last, in id order: two writers never
            // wait for each other's person rows in opposite orders.
            std::vector<std::int64_t> seen;
            for (const auto& id : identities)
                if (id.person) seen.push_back(id.person->id);
            std::sort(seen.begin(), seen.end());
            seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
            w.touch_persons(seen, now);
            out = std::move(identities);
        },
        GalleryStore::Finish::commit, GalleryStore::Lock::on_demand);
    return out;
}

// ---------------------------------------------------------------- thumbnails

std::optional<std::string> Gallery::detection_thumbnail(std::int64_t detection_id) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.detection_thumbnail(detection_id); });
}

std::optional<std::string> Gallery::sample_thumbnail(std::int64_t sample_id) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.sample_thumbnail(sample_id); });
}

std::optional<std::string> Gallery::person_thumbnail(const std::string& who) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([&](StoreReader& r) { return r.person_thumbnail(impl_->require_person(r, who).person.id); });
}

std::vector<StoredFace> Gallery::missing_thumbnails() {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->read([](StoreReader& r) { return r.missing_thumbnails(); });
}

std::size_t Gallery::add_thumbnails(const std::vector<FaceThumbnail>& batch) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    std::size_t added = 0;
    impl_->write([&](StoreWriter& w) {
        added = 0;
        for (const auto& t : batch) added += w.add_thumbnail(t.face.sample, t.face.id, t.jpeg) ? 1 : 0;
    });
    return added;
}

// ---------------------------------------------------------------- care

PruneResult Gallery::prune(std::int64_t before, bool strangers, bool dry_run) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    PruneResult out;
    // A dry run makes the same deletions and rolls them back: the counts are those a real run would give.
    impl_->write(
        [&](StoreWriter& w) {
            out = PruneResult{};
            out.detections = w.delete_detections_before(before);
            if (strangers) out.strangers = w.delete_forgotten_strangers(before);
        },
        dry_run ? GalleryStore::Finish::roll_back : GalleryStore::Finish::commit);
    if (!dry_run) impl_->cache.invalidate();
    return out;
}

std::vector<StoredDescriptor> Gallery::stale_descriptors(const std::string& embedder) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    std::vector<StoredDescriptor> out;
    impl_->store->read([&](StoreReader& r) { out = r.stale_descriptors(embedder); });
    return out;
}

void Gallery::redescribe(const std::vector<Redescription>& batch) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->write([&](StoreWriter& w) {
        for (const auto& r : batch) w.redescribe(r);
    });
    impl_->cache.invalidate();
}

GalleryStats Gallery::stats(std::int64_t now) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    const std::int64_t today = now - now % 86400;
    const std::int64_t first = today - 29 * 86400;
    GalleryStats out;
    std::map<std::int64_t, std::int64_t> per_day;
    impl_->store->read([&](StoreReader& r) {
        out = r.counts();
        per_day = r.detections_per_day(first);
        out.embedders = r.embedders();
    });
    for (std::int64_t day = first; day <= today; day += 86400) {
        const auto it = per_day.find(day);
        out.detections_per_day.emplace_back(iso_day(day), it == per_day.end() ? 0 : it->second);
    }
    out.schema_version = impl_->store->schema_version();
    out.database_bytes = impl_->store->database_bytes();
    out.database_location = impl_->store->description();
    return out;
}

}  // namespace faceq
