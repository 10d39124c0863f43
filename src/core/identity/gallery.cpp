#include "faceq/identity/gallery.hpp"

#include <dlib/clustering.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <unordered_map>

#include "base/float_blob.hpp"
#include "base/sqlite_db.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/text.hpp"
#include "faceq/base/time.hpp"

namespace faceq {
namespace {

using detail::Db;
using detail::ReadTransaction;
using detail::Stmt;
using detail::Transaction;

// A stranger keeps at most this many samples: enough to be recognised from a
// few angles, few enough that its mean cannot drift far from the first face.
constexpr std::int64_t max_stranger_samples = 5;

// ---------------------------------------------------------------- schema

// Migration i brings user_version from i to i + 1. Never edit a released one:
// append a new migration instead.
const char* const migrations[] = {
    R"sql(
CREATE TABLE persons (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    name        TEXT,
    name_key    TEXT UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('known', 'unknown')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK ((kind = 'known') = (name IS NOT NULL)),
    CHECK ((name IS NULL) = (name_key IS NULL))
);
CREATE TABLE images (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime       INTEGER,
    analyzed_at INTEGER NOT NULL,
    models      TEXT NOT NULL,
    UNIQUE (sha256, models)
);
CREATE TABLE detections (
    id          INTEGER PRIMARY KEY,
    image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    box_x       INTEGER NOT NULL,
    box_y       INTEGER NOT NULL,
    box_w       INTEGER NOT NULL,
    box_h       INTEGER NOT NULL,
    confidence  REAL NOT NULL,
    person_id   INTEGER REFERENCES persons(id) ON DELETE SET NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('known', 'unknown', 'ambiguous')),
    distance    REAL,
    margin      REAL,
    age         REAL,
    gender      TEXT,
    embedder    TEXT,
    descriptor  BLOB CHECK (descriptor IS NULL OR length(descriptor) = 512),
    detected_at INTEGER NOT NULL
);
CREATE INDEX detections_image ON detections(image_id);
CREATE INDEX detections_person ON detections(person_id, detected_at);
CREATE INDEX detections_time ON detections(detected_at);
CREATE TABLE samples (
    id            INTEGER PRIMARY KEY,
    person_id     INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    embedder      TEXT NOT NULL,
    descriptor    BLOB NOT NULL CHECK (length(descriptor) = 512),
    source_path   TEXT,
    source_sha256 TEXT NOT NULL,
    box_x         INTEGER NOT NULL,
    box_y         INTEGER NOT NULL,
    box_w         INTEGER NOT NULL,
    box_h         INTEGER NOT NULL,
    quality       REAL,
    detection_id  INTEGER REFERENCES detections(id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX samples_unique ON samples(person_id, embedder, source_sha256, box_x, box_y, box_w, box_h);
CREATE INDEX samples_source ON samples(source_sha256, embedder);
CREATE INDEX samples_embedder ON samples(embedder, person_id);
CREATE INDEX samples_detection ON samples(detection_id);
-- generation counts changes that affect identification; processes holding an
-- in-memory index compare it to decide whether to rebuild.
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('generation', 0);
CREATE TRIGGER samples_insert AFTER INSERT ON samples
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER samples_delete AFTER DELETE ON samples
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER samples_update AFTER UPDATE OF person_id, embedder, descriptor ON samples
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER persons_update AFTER UPDATE OF public_id, name, kind ON persons
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
CREATE TRIGGER persons_delete AFTER DELETE ON persons
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;
)sql",
};
constexpr int schema_version = static_cast<int>(sizeof migrations / sizeof migrations[0]);

int read_user_version(Db& db) {
    Stmt s(db, "PRAGMA user_version");
    s.step();
    return static_cast<int>(s.int64(0));
}

void migrate(Db& db) {
    if (read_user_version(db) == schema_version) return;
    Transaction tx(db);
    // Another process may have migrated while we waited for the lock.
    const int from = read_user_version(db);
    if (from > schema_version)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("database '{}' has schema version {}, newer than this faceq understands ({}); "
                                "upgrade faceq",
                                db.path().string(), from, schema_version));
    for (int v = from; v < schema_version; ++v) db.exec(migrations[v]);
    // PRAGMA takes no bound parameters; the value is our own integer.
    db.exec(fmt::format("PRAGMA user_version = {}", schema_version).c_str());
    tx.commit();
}

// ---------------------------------------------------------------- names

const std::regex& public_id_pattern() {
    static const std::regex re("^(person|unknown)_[0-9]+_[0-9]{4}$");
    return re;
}

// SQL function faceq_fold(text): fold_case for searching names.
void sql_fold(sqlite3_context* ctx, int, sqlite3_value** argv) {
    const auto* p = sqlite3_value_text(argv[0]);
    if (!p) {
        sqlite3_result_null(ctx);
        return;
    }
    const std::string folded = fold_case(reinterpret_cast<const char*>(p));
    sqlite3_result_text(ctx, folded.data(), static_cast<int>(folded.size()), SQLITE_TRANSIENT);
}

std::string new_public_id(Db& db, const char* prefix) {
    static thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int> digits(0, 9999);
    Stmt exists(db, "SELECT 1 FROM persons WHERE public_id = ?");
    for (;;) {
        std::string id = fmt::format("{}_{}_{:04d}", prefix, unix_now(), digits(rng));
        exists.bind(1, id);
        const bool taken = exists.step();
        exists.reset();
        if (!taken) return id;
    }
}

std::string escape_like(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '%' || c == '_' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

Descriptor read_descriptor(const Stmt& s, int column, const Db& db) {
    Descriptor d{};
    std::size_t size = 0;
    const void* p = s.blob(column, size);
    if (!detail::blob_to_floats(p, size, d.data(), d.size()))
        throw Error(ErrorKind::database, fmt::format("database '{}' holds a descriptor of {} bytes (expected 512)",
                                                     db.path().string(), size));
    return d;
}

PersonRef read_ref(const Stmt& s, int first) {
    PersonRef r;
    r.id = s.int64(first);
    r.public_id = s.text(first + 1);
    r.name = s.opt_text(first + 2);
    r.kind = s.text(first + 3);
    return r;
}

}  // namespace

// ---------------------------------------------------------------- names (public)

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
    if (std::regex_match(name, public_id_pattern()))
        throw Error(ErrorKind::usage,
                    fmt::format("'{}' looks like a person id (person_... / unknown_...); choose another name", name));
    return name;
}

// ---------------------------------------------------------------- Impl

struct Gallery::Impl {
    std::mutex mu;
    Db db;

    // The identification index for one embedder: one row per person with
    // samples, holding the mean of its samples.
    struct Entry {
        PersonRef ref;
        std::array<double, 128> sum{};
        std::int64_t count = 0;
        std::optional<std::size_t> row;
    };
    struct Cache {
        bool valid = false;
        std::string embedder;
        std::int64_t generation = -1;
        std::int64_t data_version = -1;
        FaceIndex index;
        std::unordered_map<std::int64_t, Entry> persons;
    } cache;

    Impl(const std::filesystem::path& path, const Options& options)
        : db(path, options.create ? detail::OpenMode::read_write_create : detail::OpenMode::read_write,
             options.busy_timeout_ms) {
        db.check(sqlite3_create_function_v2(db.handle(), "faceq_fold", 1,
                                            SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr, &sql_fold,
                                            nullptr, nullptr, nullptr),
                 "cannot register a function on database");
        migrate(db);
    }

    std::int64_t generation() {
        Stmt s(db, "SELECT value FROM meta WHERE key = 'generation'");
        s.step();
        return s.int64(0);
    }

    static Descriptor mean_of(const Entry& e) {
        Descriptor d{};
        for (std::size_t i = 0; i < 128; ++i) d[i] = static_cast<float>(e.sum[i] / static_cast<double>(e.count));
        return d;
    }

    void reload(const std::string& embedder) {
        ReadTransaction read(db);
        cache.valid = false;
        cache.index.clear();
        cache.persons.clear();
        Stmt persons(db, "SELECT id, public_id, name, kind FROM persons");
        while (persons.step()) {
            Entry e;
            e.ref = read_ref(persons, 0);
            cache.persons.emplace(e.ref.id, std::move(e));
        }
        Stmt samples(db, "SELECT person_id, descriptor FROM samples WHERE embedder = ?");
        samples.bind(1, embedder);
        while (samples.step()) {
            auto it = cache.persons.find(samples.int64(0));
            if (it == cache.persons.end()) continue;
            const Descriptor d = read_descriptor(samples, 1, db);
            for (std::size_t i = 0; i < 128; ++i) it->second.sum[i] += d[i];
            ++it->second.count;
        }
        std::size_t rows = 0;
        for (const auto& [id, e] : cache.persons) rows += e.count > 0 ? 1 : 0;
        cache.index.reserve(rows);
        for (auto& [id, e] : cache.persons)
            if (e.count > 0) e.row = cache.index.add(id, mean_of(e));
        cache.embedder = embedder;
        cache.generation = generation();
        cache.valid = true;
    }

    // Makes the index current for `embedder`: cheap when nothing changed.
    void refresh(const std::string& embedder) {
        const std::int64_t dv = db.data_version();
        if (cache.valid && cache.embedder == embedder && dv == cache.data_version) return;
        if (!cache.valid || cache.embedder != embedder || generation() != cache.generation) reload(embedder);
        cache.data_version = dv;
    }

    void invalidate() { cache.valid = false; }

    // Adds a sample's descriptor to a cached person (after an insert we made).
    void cache_add_sample(std::int64_t person, const Descriptor& d) {
        auto& e = cache.persons[person];
        for (std::size_t i = 0; i < 128; ++i) e.sum[i] += d[i];
        ++e.count;
        if (e.row)
            cache.index.replace(*e.row, mean_of(e));
        else
            e.row = cache.index.add(person, mean_of(e));
    }

    Identity identify_one(const Descriptor& d, const Calibration& calibration) {
        Identity out;
        const auto matches = cache.index.nearest_persons(d, 2);
        const auto decided = decide(matches, calibration);
        auto ref = [&](const PersonMatch& m) { return cache.persons.at(m.person).ref; };
        if (decided.nearest) {
            out.nearest = PersonDistance{ref(*decided.nearest), decided.nearest->distance};
            out.distance = decided.nearest->distance;
        }
        if (decided.runner_up) out.runner_up = PersonDistance{ref(*decided.runner_up), decided.runner_up->distance};
        out.margin = decided.margin;
        switch (decided.decision) {
            case Decision::known:
                out.person = out.nearest->person;
                out.decision = out.person->kind == "known" ? Decision::known : Decision::unknown;
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

    std::optional<PersonInfo> find_person(const std::string& who) {
        Stmt s(db,
               "SELECT p.id, p.public_id, p.name, p.kind, p.created_at, p.updated_at,"
               " (SELECT count(*) FROM samples WHERE person_id = p.id),"
               " (SELECT count(*) FROM detections WHERE person_id = p.id),"
               " (SELECT max(detected_at) FROM detections WHERE person_id = p.id)"
               " FROM persons p WHERE p.public_id = ?1 OR p.name_key = ?2");
        s.bind(1, who).bind(2, fold_case(who));
        if (!s.step()) return std::nullopt;
        return read_info(s);
    }

    PersonInfo require_person(const std::string& who) {
        auto p = find_person(who);
        if (!p)
            throw Error(ErrorKind::not_found,
                        fmt::format("no person '{}' in the gallery '{}'", who, db.path().string()));
        return *p;
    }

    static PersonInfo read_info(const Stmt& s) {
        PersonInfo info;
        info.person = read_ref(s, 0);
        info.created_at = s.int64(4);
        info.updated_at = s.int64(5);
        info.samples = s.int64(6);
        info.detections = s.int64(7);
        info.last_seen = s.opt_int64(8);
        return info;
    }

    PersonRef insert_person(const std::optional<std::string>& name, const char* kind, std::int64_t now) {
        PersonRef ref;
        ref.public_id = new_public_id(db, kind == std::string("known") ? "person" : "unknown");
        ref.name = name;
        ref.kind = kind;
        Stmt ins(db,
                 "INSERT INTO persons (public_id, name, name_key, kind, created_at, updated_at)"
                 " VALUES (?, ?, ?, ?, ?, ?)");
        ins.bind(1, ref.public_id)
            .bind(2, name)
            .bind(3, name ? std::optional<std::string>(fold_case(*name)) : std::nullopt)
            .bind(4, kind)
            .bind(5, now)
            .bind(6, now);
        ins.run();
        ref.id = db.last_insert_rowid();
        return ref;
    }
};

// ---------------------------------------------------------------- Gallery

Gallery::Gallery(const std::filesystem::path& path) : Gallery(path, Options{}) {}

Gallery::Gallery(const std::filesystem::path& path, const Options& options) {
    std::error_code ec;
    if (!options.create && !std::filesystem::exists(path, ec))
        throw Error(ErrorKind::not_found, fmt::format("no gallery '{}'", path.string()));
    if (options.create && path.has_parent_path()) {
        std::filesystem::create_directories(path.parent_path(), ec);
        if (ec)
            throw Error(ErrorKind::io,
                        fmt::format("cannot create directory '{}': {}", path.parent_path().string(), ec.message()));
    }
    impl_ = std::make_unique<Impl>(path, options);
}

Gallery::~Gallery() = default;

const std::filesystem::path& Gallery::path() const { return impl_->db.path(); }

int Gallery::schema_version_supported() { return schema_version; }

EnrollResult Gallery::enroll(const std::string& raw_name, const std::vector<FaceSample>& samples,
                             const std::string& embedder) {
    const std::string name = check_person_name(raw_name);
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    EnrollResult result;
    Transaction tx(db);
    const std::int64_t now = unix_now();
    std::optional<PersonRef> person;
    {
        Stmt find(db, "SELECT id, public_id, name, kind FROM persons WHERE name_key = ?");
        find.bind(1, fold_case(name));
        if (find.step()) person = read_ref(find, 0);
    }
    // CROSS JOIN keeps SQLite from scanning every person: samples are found by
    // their image's sha256 first (samples_source).
    Stmt owner(db,
               "SELECT p.id, p.name FROM samples s CROSS JOIN persons p ON p.id = s.person_id"
               " WHERE s.source_sha256 = ? AND s.embedder = ? AND p.kind = 'known' ORDER BY p.id = ? DESC LIMIT 1");
    Stmt insert(db,
                "INSERT INTO samples (person_id, embedder, descriptor, source_path, source_sha256,"
                " box_x, box_y, box_w, box_h, quality, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    std::set<std::string> seen_in_call;
    for (const auto& s : samples) {
        SampleOutcome out;
        out.source_path = s.source_path;
        owner.bind(1, s.source_sha256).bind(2, embedder).bind(3, person ? person->id : std::int64_t{-1});
        if (owner.step()) {
            const std::int64_t owner_id = owner.int64(0);
            out.reason = person && owner_id == person->id
                             ? "already enrolled"
                             : fmt::format("already enrolled as '{}'", owner.opt_text(1).value_or("?"));
            owner.reset();
            result.samples.push_back(out);
            continue;
        }
        owner.reset();
        if (!seen_in_call.insert(s.source_sha256).second) {
            out.reason = "same image given twice";
            result.samples.push_back(out);
            continue;
        }
        if (!person) {
            person = impl_->insert_person(name, "known", now);
            result.created = true;
        }
        const auto blob = detail::floats_to_blob(s.descriptor.data(), s.descriptor.size());
        insert.bind(1, person->id)
            .bind(2, embedder)
            .bind_blob(3, blob.data(), blob.size())
            .bind(4, s.source_path)
            .bind(5, s.source_sha256)
            .bind(6, s.box.x)
            .bind(7, s.box.y)
            .bind(8, s.box.width)
            .bind(9, s.box.height)
            .bind(10, s.quality)
            .bind(11, now);
        insert.run();
        out.added = true;
        result.samples.push_back(out);
    }
    if (person && !result.created) {
        Stmt touch(db, "UPDATE persons SET updated_at = ? WHERE id = ?");
        touch.bind(1, now).bind(2, person->id).run();
    }
    tx.commit();
    result.person = person;
    impl_->invalidate();
    return result;
}

std::optional<PersonRef> Gallery::enrolled_as(const std::string& sha256, const std::string& embedder) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Stmt s(impl_->db,
           "SELECT p.id, p.public_id, p.name, p.kind FROM samples s CROSS JOIN persons p ON p.id = s.person_id"
           " WHERE s.source_sha256 = ? AND s.embedder = ? AND p.kind = 'known' ORDER BY p.id LIMIT 1");
    s.bind(1, sha256).bind(2, embedder);
    if (!s.step()) return std::nullopt;
    return read_ref(s, 0);
}

std::vector<PersonInfo> Gallery::find_persons(const std::string& text) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Stmt s(impl_->db,
           "SELECT p.id, p.public_id, p.name, p.kind, p.created_at, p.updated_at,"
           " (SELECT count(*) FROM samples WHERE person_id = p.id),"
           " (SELECT count(*) FROM detections WHERE person_id = p.id),"
           " (SELECT max(detected_at) FROM detections WHERE person_id = p.id)"
           " FROM persons p"
           " WHERE ?1 = '' OR p.name_key LIKE ?2 ESCAPE '\\' OR faceq_fold(p.public_id) LIKE ?2 ESCAPE '\\'"
           " ORDER BY p.kind, p.name_key, p.public_id");
    const std::string folded = fold_case(text);
    s.bind(1, folded).bind(2, "%" + escape_like(folded) + "%");
    std::vector<PersonInfo> out;
    while (s.step()) out.push_back(Impl::read_info(s));
    return out;
}

std::optional<PersonInfo> Gallery::person(const std::string& who) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->find_person(who);
}

PersonInfo Gallery::rename(const std::string& who, const std::string& raw_name) {
    const std::string name = check_person_name(raw_name);
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    Transaction tx(db);
    const PersonInfo p = impl_->require_person(who);
    {
        Stmt clash(db, "SELECT public_id FROM persons WHERE name_key = ? AND id <> ?");
        clash.bind(1, fold_case(name)).bind(2, p.person.id);
        if (clash.step())
            throw Error(ErrorKind::usage, fmt::format("another person ({}) is already called '{}'; merge them instead",
                                                      clash.text(0), name));
    }
    Stmt up(db, "UPDATE persons SET name = ?, name_key = ?, kind = 'known', updated_at = ? WHERE id = ?");
    up.bind(1, name).bind(2, fold_case(name)).bind(3, unix_now()).bind(4, p.person.id).run();
    // Detections of a stranger who now has a name become known ones.
    Stmt dets(db, "UPDATE detections SET decision = 'known' WHERE person_id = ? AND decision = 'unknown'");
    dets.bind(1, p.person.id).run();
    const PersonInfo out = impl_->require_person(p.person.public_id);
    tx.commit();
    impl_->invalidate();
    return out;
}

PersonInfo Gallery::merge(const std::string& from_who, const std::string& into_who) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    Transaction tx(db);
    const PersonInfo from = impl_->require_person(from_who);
    const PersonInfo into = impl_->require_person(into_who);
    if (from.person.id == into.person.id)
        throw Error(ErrorKind::usage, fmt::format("cannot merge '{}' into itself", from_who));
    // A sample both already have (same photo and face) is kept once.
    Stmt move_samples(db, "UPDATE OR IGNORE samples SET person_id = ? WHERE person_id = ?");
    move_samples.bind(1, into.person.id).bind(2, from.person.id).run();
    Stmt move_dets(db,
                   "UPDATE detections SET person_id = ?1,"
                   " decision = CASE WHEN decision = 'ambiguous' THEN decision ELSE ?2 END WHERE person_id = ?3");
    move_dets.bind(1, into.person.id).bind(2, into.person.kind).bind(3, from.person.id).run();
    Stmt del(db, "DELETE FROM persons WHERE id = ?");
    del.bind(1, from.person.id).run();
    Stmt touch(db, "UPDATE persons SET updated_at = ? WHERE id = ?");
    touch.bind(1, unix_now()).bind(2, into.person.id).run();
    const PersonInfo out = impl_->require_person(into.person.public_id);
    tx.commit();
    impl_->invalidate();
    return out;
}

PersonInfo Gallery::remove(const std::string& who) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    Transaction tx(db);
    const PersonInfo p = impl_->require_person(who);
    Stmt del(db, "DELETE FROM persons WHERE id = ?");
    del.bind(1, p.person.id).run();
    tx.commit();
    impl_->invalidate();
    return p;
}

std::vector<Identity> Gallery::identify(const std::vector<Descriptor>& faces, const IdentifyContext& context) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->refresh(context.embedder);
    std::vector<Identity> out;
    out.reserve(faces.size());
    for (const auto& d : faces) out.push_back(impl_->identify_one(d, context.calibration));
    return out;
}

std::vector<PersonDistance> Gallery::nearest(const Descriptor& face, const std::string& embedder, std::size_t k) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->refresh(embedder);
    std::vector<PersonDistance> out;
    for (const auto& m : impl_->cache.index.nearest_persons(face, k))
        out.push_back({impl_->cache.persons.at(m.person).ref, m.distance});
    return out;
}

std::pair<std::size_t, std::size_t> Gallery::usable(const std::string& embedder) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->refresh(embedder);
    std::size_t samples = 0;
    for (const auto& [id, e] : impl_->cache.persons) samples += static_cast<std::size_t>(e.count);
    return {impl_->cache.index.samples(), samples};
}

std::vector<EmbedderSamples> Gallery::embedders() {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Stmt s(
        impl_->db,
        "SELECT embedder, count(*), count(DISTINCT person_id) FROM samples GROUP BY embedder ORDER BY count(*) DESC");
    std::vector<EmbedderSamples> out;
    while (s.step()) out.push_back({s.text(0), s.int64(1), s.int64(2)});
    return out;
}

std::optional<StoredImage> Gallery::find_image(const std::string& sha256, const std::string& models) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Stmt s(impl_->db, "SELECT id, analyzed_at FROM images WHERE sha256 = ? AND models = ?");
    s.bind(1, sha256).bind(2, models);
    if (!s.step()) return std::nullopt;
    return StoredImage{s.int64(0), s.int64(1)};
}

std::optional<std::vector<Identity>> Gallery::record_analysis(const ImageFacts& image, const std::vector<Face>& faces,
                                                              const IdentifyContext& context, bool replace) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    try {
        Transaction tx(db);
        const std::int64_t now = unix_now();
        std::int64_t image_id = 0;
        {
            Stmt find(db, "SELECT id FROM images WHERE sha256 = ? AND models = ?");
            find.bind(1, image.sha256).bind(2, image.models);
            if (find.step()) {
                if (!replace) return std::nullopt;
                image_id = find.int64(0);
            }
        }
        if (image_id != 0) {
            Stmt del(db, "DELETE FROM detections WHERE image_id = ?");
            del.bind(1, image_id).run();
            Stmt up(db, "UPDATE images SET path = ?, size = ?, mtime = ?, analyzed_at = ? WHERE id = ?");
            up.bind(1, image.path).bind(2, static_cast<std::int64_t>(image.size)).bind(3, image.mtime).bind(4, now);
            up.bind(5, image_id).run();
        } else {
            Stmt ins(db,
                     "INSERT INTO images (path, sha256, size, mtime, analyzed_at, models) VALUES (?, ?, ?, ?, ?, ?)");
            ins.bind(1, image.path)
                .bind(2, image.sha256)
                .bind(3, static_cast<std::int64_t>(image.size))
                .bind(4, image.mtime)
                .bind(5, now)
                .bind(6, image.models);
            ins.run();
            image_id = db.last_insert_rowid();
        }
        // Inside the write lock: the index sees every committed sample.
        impl_->refresh(context.embedder);

        Stmt ins_det(db,
                     "INSERT INTO detections (image_id, box_x, box_y, box_w, box_h, confidence, person_id, decision,"
                     " distance, margin, age, gender, embedder, descriptor, detected_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        Stmt ins_sample(db,
                        "INSERT OR IGNORE INTO samples (person_id, embedder, descriptor, source_path, source_sha256,"
                        " box_x, box_y, box_w, box_h, quality, detection_id, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        Stmt touch(db, "UPDATE persons SET updated_at = ? WHERE id = ?");
        std::vector<Identity> identities;
        for (const auto& face : faces) {
            Identity id;
            bool add_sample = false;
            if (face.has_descriptor) {
                id = impl_->identify_one(face.descriptor, context.calibration);
                if (id.decision == Decision::unknown && !id.person &&
                    (!id.distance || *id.distance >= context.calibration.threshold)) {
                    // Nobody is even near: a stranger seen for the first time.
                    id.person = impl_->insert_person(std::nullopt, "unknown", now);
                    impl_->cache.persons[id.person->id].ref = *id.person;
                    id.new_person = true;
                    add_sample = true;
                } else if (id.person && id.person->kind == "unknown") {
                    const auto& e = impl_->cache.persons.at(id.person->id);
                    add_sample = e.count < max_stranger_samples;
                }
                if (id.person) touch.bind(1, now).bind(2, id.person->id).run();
            }
            const auto blob = face.has_descriptor
                                  ? detail::floats_to_blob(face.descriptor.data(), face.descriptor.size())
                                  : std::vector<std::uint8_t>();
            ins_det.bind(1, image_id)
                .bind(2, face.bbox.x)
                .bind(3, face.bbox.y)
                .bind(4, face.bbox.width)
                .bind(5, face.bbox.height)
                .bind(6, face.confidence);
            if (id.person)
                ins_det.bind(7, id.person->id);
            else
                ins_det.bind_null(7);
            ins_det.bind(8, to_string(id.decision))
                .bind(9, id.distance ? std::optional<double>(*id.distance) : std::nullopt)
                .bind(10, id.margin ? std::optional<double>(*id.margin) : std::nullopt)
                .bind(11, face.age)
                .bind(12, face.gender);
            if (face.has_descriptor) {
                ins_det.bind(13, context.embedder);
                ins_det.bind_blob(14, blob.data(), blob.size());
            } else {
                ins_det.bind_null(13).bind_null(14);
            }
            ins_det.bind(15, now);
            ins_det.run();
            const std::int64_t detection_id = db.last_insert_rowid();
            if (add_sample) {
                ins_sample.bind(1, id.person->id)
                    .bind(2, context.embedder)
                    .bind_blob(3, blob.data(), blob.size())
                    .bind(4, image.path)
                    .bind(5, image.sha256)
                    .bind(6, face.bbox.x)
                    .bind(7, face.bbox.y)
                    .bind(8, face.bbox.width)
                    .bind(9, face.bbox.height)
                    .bind(10, face.confidence)
                    .bind(11, detection_id)
                    .bind(12, now);
                ins_sample.run();
                if (db.changes() > 0) impl_->cache_add_sample(id.person->id, face.descriptor);
            }
            identities.push_back(std::move(id));
        }
        impl_->cache.generation = impl_->generation();
        tx.commit();
        return identities;
    } catch (...) {
        impl_->invalidate();  // the cache may hold rows that were rolled back
        throw;
    }
}

PruneResult Gallery::prune(std::int64_t before, bool strangers, bool dry_run) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    PruneResult out;
    Transaction tx(db);
    {
        Stmt count(db, "SELECT count(*) FROM detections WHERE detected_at < ?");
        count.bind(1, before);
        count.step();
        out.detections = count.int64(0);
    }
    Stmt del(db, "DELETE FROM detections WHERE detected_at < ?");
    del.bind(1, before).run();
    if (strangers) {
        Stmt gone(db,
                  "DELETE FROM persons WHERE kind = 'unknown' AND updated_at < ?"
                  " AND NOT EXISTS (SELECT 1 FROM detections d WHERE d.person_id = persons.id)");
        gone.bind(1, before).run();
        out.strangers = db.changes();
    }
    if (!dry_run) {
        tx.commit();
        impl_->invalidate();
    }
    return out;  // a dry run rolls back
}

ClusterResult Gallery::cluster(const std::string& embedder, float threshold) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    ClusterResult out;
    Transaction tx(db);
    struct Row {
        std::int64_t detection;
        std::optional<std::int64_t> person;
        Descriptor d;
    };
    std::vector<Row> rows;
    {
        // Strangers' detections, and those left unattributed because they were
        // near someone without a clear answer (decision unknown, no person).
        Stmt s(db,
               "SELECT d.id, d.person_id, d.descriptor FROM detections d LEFT JOIN persons p ON p.id = d.person_id"
               " WHERE d.embedder = ? AND d.descriptor IS NOT NULL"
               " AND (p.kind = 'unknown' OR (d.person_id IS NULL AND d.decision = 'unknown'))"
               " ORDER BY d.id");
        s.bind(1, embedder);
        while (s.step()) rows.push_back({s.int64(0), s.opt_int64(1), read_descriptor(s, 2, db)});
    }
    out.detections = static_cast<std::int64_t>(rows.size());
    if (rows.empty()) return out;

    std::vector<dlib::sample_pair> edges;
    const float t2 = threshold * threshold;
    std::vector<float> d2(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        edges.emplace_back(i, i);  // every node takes part, even alone
        const std::size_t rest = rows.size() - i - 1;
        if (rest == 0) break;
        std::vector<float> flat(rest * 128);
        for (std::size_t j = 0; j < rest; ++j)
            std::copy(rows[i + 1 + j].d.begin(), rows[i + 1 + j].d.end(),
                      flat.begin() + static_cast<std::ptrdiff_t>(j * 128));
        squared_distances(flat.data(), rest, rows[i].d.data(), d2.data());
        for (std::size_t j = 0; j < rest; ++j)
            if (d2[j] < t2) edges.emplace_back(i, i + 1 + j);
    }
    std::vector<unsigned long> labels;
    dlib::rand rnd;  // fixed seed: the same detections cluster the same way every run
    const unsigned long count = dlib::chinese_whispers(edges, labels, 100, rnd);
    out.clusters = static_cast<std::int64_t>(count);

    // Biggest clusters choose first; each keeps the stranger most of its
    // members already had, so ids stay stable across runs.
    std::vector<std::vector<std::size_t>> members(count);
    for (std::size_t i = 0; i < rows.size(); ++i) members[labels[i]].push_back(i);
    std::vector<std::size_t> order(count);
    for (std::size_t c = 0; c < count; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return members[a].size() > members[b].size(); });
    std::set<std::int64_t> taken;
    const std::int64_t now = unix_now();
    Stmt move_det(db, "UPDATE detections SET person_id = ?, decision = 'unknown' WHERE id = ?");
    Stmt move_sample(db, "UPDATE OR IGNORE samples SET person_id = ? WHERE detection_id = ?");
    Stmt add_sample(db,
                    "INSERT OR IGNORE INTO samples (person_id, embedder, descriptor, source_path, source_sha256,"
                    " box_x, box_y, box_w, box_h, quality, detection_id, created_at)"
                    " SELECT ?, d.embedder, d.descriptor, i.path, i.sha256, d.box_x, d.box_y, d.box_w, d.box_h,"
                    " d.confidence, d.id, ? FROM detections d JOIN images i ON i.id = d.image_id WHERE d.id = ?");
    for (std::size_t c : order) {
        std::map<std::int64_t, std::size_t> votes;
        for (std::size_t i : members[c])
            if (rows[i].person) ++votes[*rows[i].person];
        std::vector<std::pair<std::size_t, std::int64_t>> ranked;
        for (const auto& [person, n] : votes) ranked.emplace_back(n, person);
        std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;  // older id wins a tie
        });
        std::optional<std::int64_t> target;
        for (const auto& [n, person] : ranked)
            if (!taken.count(person)) {
                target = person;
                break;
            }
        bool created = false;
        if (!target) {
            target = impl_->insert_person(std::nullopt, "unknown", now).id;
            created = true;
            ++out.persons_created;
        } else {
            ++out.persons_kept;
        }
        taken.insert(*target);
        std::int64_t samples_added = 0;
        for (std::size_t i : members[c]) {
            if (rows[i].person != target) {
                move_det.bind(1, *target).bind(2, rows[i].detection).run();
                move_sample.bind(1, *target).bind(2, rows[i].detection).run();
                ++out.reassigned;
            }
            // A new stranger gets samples from its detections, so it can be recognised.
            if (created && samples_added < max_stranger_samples) {
                add_sample.bind(1, *target).bind(2, now).bind(3, rows[i].detection).run();
                samples_added += db.changes();
            }
        }
    }
    Stmt orphans(db,
                 "DELETE FROM persons WHERE kind = 'unknown'"
                 " AND NOT EXISTS (SELECT 1 FROM detections WHERE person_id = persons.id)"
                 " AND NOT EXISTS (SELECT 1 FROM samples WHERE person_id = persons.id)");
    orphans.run();
    out.persons_removed = db.changes();
    tx.commit();
    impl_->invalidate();
    return out;
}

GalleryStats Gallery::stats(std::int64_t now) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto& db = impl_->db;
    GalleryStats out;
    ReadTransaction read(db);
    {
        Stmt s(db,
               "SELECT (SELECT count(*) FROM persons WHERE kind = 'known'),"
               " (SELECT count(*) FROM persons WHERE kind = 'unknown'),"
               " (SELECT count(*) FROM samples), (SELECT count(*) FROM images),"
               " (SELECT count(*) FROM detections),"
               " (SELECT count(*) FROM detections WHERE decision = 'known'),"
               " (SELECT count(*) FROM detections WHERE decision = 'unknown'),"
               " (SELECT count(*) FROM detections WHERE decision = 'ambiguous'),"
               " (SELECT max(detected_at) FROM detections)");
        s.step();
        out.persons_known = s.int64(0);
        out.persons_unknown = s.int64(1);
        out.samples = s.int64(2);
        out.images = s.int64(3);
        out.detections = s.int64(4);
        out.detections_known = s.int64(5);
        out.detections_unknown = s.int64(6);
        out.detections_ambiguous = s.int64(7);
        out.last_detection = s.opt_int64(8);
    }
    {
        const std::int64_t today = now - now % 86400;
        const std::int64_t first = today - 29 * 86400;
        std::map<std::int64_t, std::int64_t> per_day;
        Stmt s(db,
               "SELECT detected_at - detected_at % 86400 AS day, count(*) FROM detections"
               " WHERE detected_at >= ? GROUP BY day");
        s.bind(1, first);
        while (s.step()) per_day[s.int64(0)] = s.int64(1);
        for (std::int64_t day = first; day <= today; day += 86400) {
            const auto it = per_day.find(day);
            out.detections_per_day.emplace_back(iso_day(day), it == per_day.end() ? 0 : it->second);
        }
    }
    {
        Stmt s(db,
               "SELECT embedder, count(*), count(DISTINCT person_id) FROM samples GROUP BY embedder"
               " ORDER BY count(*) DESC");
        while (s.step()) out.embedders.push_back({s.text(0), s.int64(1), s.int64(2)});
    }
    out.schema_version = read_user_version(db);
    std::error_code ec;
    for (const char* suffix : {"", "-wal"}) {
        const auto size = std::filesystem::file_size(db.path().string() + suffix, ec);
        if (!ec) out.database_bytes += size;
    }
    return out;
}

}  // namespace faceq
