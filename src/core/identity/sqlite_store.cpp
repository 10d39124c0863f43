// sqlite_store.cpp — see sqlite_store.hpp: the schema and its migrations, and
// every gallery operation as one or two prepared SQLite statements.
#include "identity/sqlite_store.hpp"

#include <fmt/format.h>

#include <unordered_map>

#include "base/float_blob.hpp"
#include "base/sqlite_db.hpp"
#include "identity/store_rows.hpp"

namespace faceq {
namespace {

using detail::Db;
using detail::read_box;
using detail::read_info;
using detail::read_ref;
using detail::Stmt;

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
    // 2: a log of the persons each generation changed, so a process holding an
    // index re-reads those persons only (store.hpp, "Change detection").
    // changes_from: the log holds every change after this generation.
    R"sql(
CREATE TABLE person_changes (generation INTEGER NOT NULL, person_id INTEGER NOT NULL);
CREATE INDEX person_changes_generation ON person_changes(generation);
INSERT INTO meta (key, value) SELECT 'changes_from', value FROM meta WHERE key = 'generation';
DROP TRIGGER samples_insert;
DROP TRIGGER samples_delete;
DROP TRIGGER samples_update;
DROP TRIGGER persons_update;
DROP TRIGGER persons_delete;
CREATE TRIGGER samples_insert AFTER INSERT ON samples BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, NEW.person_id FROM meta WHERE key = 'generation';
END;
CREATE TRIGGER samples_delete AFTER DELETE ON samples BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, OLD.person_id FROM meta WHERE key = 'generation';
END;
CREATE TRIGGER samples_update AFTER UPDATE OF person_id, embedder, descriptor ON samples BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, OLD.person_id FROM meta WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, NEW.person_id FROM meta WHERE key = 'generation';
END;
CREATE TRIGGER persons_update AFTER UPDATE OF public_id, name, kind ON persons BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, OLD.id FROM meta WHERE key = 'generation';
END;
CREATE TRIGGER persons_delete AFTER DELETE ON persons BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, OLD.id FROM meta WHERE key = 'generation';
END;
)sql",
    // 3: face thumbnails (pipeline/thumbnail.hpp), a JPEG of ~3-6 kB per
    // detection and per enrolled sample (store.hpp, "Schema"). In tables of
    // their own, not columns: SQLite keeps a row's columns together in its
    // table's pages, so a thumbnail column would put each detection on a page
    // of its own plus an overflow page, and the scans of identification and
    // clustering (samples, detections) would read ten times the pages to
    // skip it; keyed by the row id (the tables' rowid), a thumbnail is one
    // lookup away, and deleted with its row. A sample taken from a detection
    // shows the detection's thumbnail; before that detection goes, the
    // sample gets a copy.
    R"sql(
CREATE TABLE detection_thumbnails (
    detection_id INTEGER PRIMARY KEY REFERENCES detections(id) ON DELETE CASCADE,
    jpeg         BLOB NOT NULL
);
CREATE TABLE sample_thumbnails (
    sample_id INTEGER PRIMARY KEY REFERENCES samples(id) ON DELETE CASCADE,
    jpeg      BLOB NOT NULL
);
CREATE TRIGGER detections_delete_thumbnail BEFORE DELETE ON detections BEGIN
    INSERT OR IGNORE INTO sample_thumbnails (sample_id, jpeg)
        SELECT s.id, t.jpeg FROM samples s JOIN detection_thumbnails t ON t.detection_id = OLD.id
        WHERE s.detection_id = OLD.id;
END;
)sql",
    // 4: rejections ("not this person", Gallery::reject): the detection that
    // left a person, with its descriptor so the rejection outlives the row;
    // logged like samples so every process's index sees them. And the index
    // that pages persons in the "name" order (Gallery::list_persons).
    R"sql(
CREATE TABLE rejections (
    id           INTEGER PRIMARY KEY,
    person_id    INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    detection_id INTEGER REFERENCES detections(id) ON DELETE SET NULL,
    embedder     TEXT,
    descriptor   BLOB CHECK (descriptor IS NULL OR length(descriptor) = 512),
    decision     TEXT NOT NULL CHECK (decision IN ('known', 'unknown', 'ambiguous')),
    had_sample   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (person_id, detection_id)
);
CREATE INDEX rejections_detection ON rejections(detection_id);
CREATE INDEX rejections_embedder ON rejections(embedder, person_id);
CREATE TRIGGER rejections_insert AFTER INSERT ON rejections BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, NEW.person_id FROM meta WHERE key = 'generation';
END;
CREATE TRIGGER rejections_delete AFTER DELETE ON rejections BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, OLD.person_id FROM meta WHERE key = 'generation';
END;
CREATE TRIGGER rejections_update AFTER UPDATE OF person_id, embedder, descriptor ON rejections BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, OLD.person_id FROM meta WHERE key = 'generation';
    INSERT INTO person_changes SELECT value, NEW.person_id FROM meta WHERE key = 'generation';
END;
CREATE INDEX persons_order ON persons(kind, name_key, public_id);
)sql",
};
constexpr int latest_version = static_cast<int>(sizeof migrations / sizeof migrations[0]);

int read_user_version(Db& db) {
    Stmt s(db, "PRAGMA user_version");
    s.step();
    return static_cast<int>(s.int64(0));
}

void migrate(Db& db) {
    if (read_user_version(db) == latest_version) return;
    detail::Transaction tx(db);
    // Another process may have migrated while we waited for the lock.
    const int from = read_user_version(db);
    if (from > latest_version)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("database '{}' has schema version {}, newer than this faceq understands ({}); "
                                "upgrade faceq",
                                db.path().string(), from, latest_version));
    for (int v = from; v < latest_version; ++v) db.exec(migrations[v]);
    // PRAGMA takes no bound parameters; the value is our own integer.
    db.exec(fmt::format("PRAGMA user_version = {}", latest_version).c_str());
    tx.commit();
}

Db open_file(const std::filesystem::path& path, const SqliteStore::Options& options) {
    std::error_code ec;
    if (!options.create && !std::filesystem::exists(path, ec))
        throw Error(ErrorKind::not_found, fmt::format("no gallery '{}'", path.string()));
    if (options.create && path.has_parent_path()) {
        std::filesystem::create_directories(path.parent_path(), ec);
        if (ec)
            throw Error(ErrorKind::io,
                        fmt::format("cannot create directory '{}': {}", path.parent_path().string(), ec.message()));
    }
    return Db(path, options.create ? detail::OpenMode::read_write_create : detail::OpenMode::read_write,
              options.busy_timeout_ms);
}

// LIKE pattern for "contains `text`": its wildcards and the escape are literal.
std::string contains_pattern(const std::string& text) {
    std::string out = "%";
    for (char c : text) {
        if (c == '%' || c == '_' || c == '\\') out += '\\';
        out += c;
    }
    return out + "%";
}

// The columns of a PersonInfo, `p` being persons.
constexpr const char* person_info_columns =
    "p.id, p.public_id, p.name, p.kind, p.created_at, p.updated_at,"
    " (SELECT count(*) FROM samples WHERE person_id = p.id),"
    " (SELECT count(*) FROM detections WHERE person_id = p.id),"
    " (SELECT max(detected_at) FROM detections WHERE person_id = p.id)";

// A page of persons: the ids matching `filter` ordered by `order` (`k` being
// `key`), ?4 rows from ?5 on, then their info columns in that order.
std::string page_sql(const std::string& filter, const char* key, const char* order) {
    return fmt::format(
        "SELECT {} FROM (SELECT p.id, row_number() OVER (ORDER BY {}) AS n FROM"
        " (SELECT p.*, {} AS k FROM persons p WHERE {}) p ORDER BY n LIMIT ?4 OFFSET ?5) page"
        " CROSS JOIN persons p ON p.id = page.id ORDER BY page.n",
        person_info_columns, order, key, filter);
}

}  // namespace

// ---------------------------------------------------------------- Connection

// One SQLite connection and its prepared statements: the reader and writer
// handed to read() and write() bodies.
class SqliteStore::Connection final : public StoreWriter {
public:
    Connection(const std::filesystem::path& path, const Options& options) : db_(open_file(path, options)) {
        migrate(db_);
    }

    Db& db() { return db_; }
    const Db& db() const { return db_; }

    // ---- reader
    std::int64_t change_probe() override { return one_int(use("PRAGMA data_version")); }
    std::int64_t generation() override { return one_int(use("SELECT value FROM meta WHERE key = 'generation'")); }

    std::optional<PersonInfo> find_person(const std::string& public_id, const std::string& name_key) override {
        static const std::string sql =
            fmt::format("SELECT {} FROM persons p WHERE p.public_id = ?1 OR p.name_key = ?2", person_info_columns);
        Use s = use(sql.c_str());
        s->bind(1, public_id).bind(2, name_key);
        if (!s->step()) return std::nullopt;
        return read_info(*s);
    }

    std::optional<PersonRef> person_by_name_key(const std::string& name_key) override {
        Use s = use("SELECT id, public_id, name, kind FROM persons WHERE name_key = ?");
        s->bind(1, name_key);
        if (!s->step()) return std::nullopt;
        return read_ref(*s, 0);
    }

    bool public_id_taken(const std::string& public_id) override {
        Use s = use("SELECT 1 FROM persons WHERE public_id = ?");
        s->bind(1, public_id);
        return s->step();
    }

    std::vector<PersonInfo> find_persons(const std::string& folded) override {
        // Both sides are folded already, and public ids are lower-case ASCII:
        // LIKE's own (ASCII) case-insensitivity never comes into play.
        static const std::string sql = fmt::format(
            "SELECT {} FROM persons p"
            " WHERE ?1 = '' OR p.name_key LIKE ?2 ESCAPE '\\' OR p.public_id LIKE ?2 ESCAPE '\\'"
            " ORDER BY p.kind, p.name_key, p.public_id",
            person_info_columns);
        Use s = use(sql.c_str());
        s->bind(1, folded).bind(2, contains_pattern(folded));
        std::vector<PersonInfo> out;
        while (s->step()) out.push_back(read_info(*s));
        return out;
    }

    PersonPage list_persons(const PersonQuery& q) override {
        // The page's ids first (each order's key computed per person through
        // the detections_person index), then the page's info columns.
        static const std::string filter =
            "(?1 = 'all' OR p.kind = ?1) AND (?2 = '' OR p.name_key LIKE ?3 ESCAPE '\\'"
            " OR p.public_id LIKE ?3 ESCAPE '\\')";
        static const std::string count_sql = "SELECT count(*) FROM persons p WHERE " + filter;
        static const std::string by_name = page_sql(filter, "0", "p.kind, p.name_key, p.public_id");
        static const std::string by_detections =
            page_sql(filter, "(SELECT count(*) FROM detections d WHERE d.person_id = p.id)",
                     "k DESC, p.kind, p.name_key, p.public_id");
        static const std::string by_last_seen =
            page_sql(filter, "(SELECT max(detected_at) FROM detections d WHERE d.person_id = p.id)",
                     "k DESC NULLS LAST, p.kind, p.name_key, p.public_id");
        const std::string& sql = q.order == "detections"  ? by_detections
                                 : q.order == "last_seen" ? by_last_seen
                                                          : by_name;
        PersonPage out;
        {
            Use c = use(count_sql.c_str());
            c->bind(1, q.kind).bind(2, q.text).bind(3, contains_pattern(q.text));
            out.total = one_int(c);
        }
        Use s = use(sql.c_str());
        s->bind(1, q.kind).bind(2, q.text).bind(3, contains_pattern(q.text)).bind(4, q.limit).bind(5, q.offset);
        while (s->step()) out.persons.push_back(read_info(*s));
        return out;
    }

    FacePage person_faces(std::int64_t person, std::int64_t offset, std::int64_t limit) override {
        // Its detections and those rejected from it (a detection may be both
        // after a merge: listed once, as rejected).
        static const char* const ids =
            "SELECT id FROM detections WHERE person_id = ?1"
            " UNION SELECT detection_id FROM rejections WHERE person_id = ?1 AND detection_id IS NOT NULL";
        static const std::string count_sql = fmt::format("SELECT count(*) FROM ({})", ids);
        static const std::string sql = fmt::format(
            "SELECT d.id, (SELECT min(s.id) FROM samples s WHERE s.detection_id = d.id AND s.person_id = ?1),"
            " i.path, d.detected_at, d.box_x, d.box_y, d.box_w, d.box_h, d.age, d.gender, d.distance, d.decision,"
            " EXISTS (SELECT 1 FROM rejections r WHERE r.detection_id = d.id AND r.person_id = ?1)"
            " FROM ({}) f CROSS JOIN detections d ON d.id = f.id JOIN images i ON i.id = d.image_id"
            " ORDER BY d.detected_at DESC, d.id DESC LIMIT ?2 OFFSET ?3",
            ids);
        FacePage out;
        {
            Use c = use(count_sql.c_str());
            c->bind(1, person);
            out.total = one_int(c);
        }
        Use s = use(sql.c_str());
        s->bind(1, person).bind(2, limit).bind(3, offset);
        while (s->step()) out.faces.push_back(detail::read_person_face(*s));
        return out;
    }

    std::vector<SampleInfo> person_samples(std::int64_t person) override {
        Use s =
            use("SELECT id, coalesce(source_path, ''), box_x, box_y, box_w, box_h, created_at, detection_id, embedder"
                " FROM samples WHERE person_id = ? ORDER BY created_at DESC, id DESC");
        s->bind(1, person);
        std::vector<SampleInfo> out;
        while (s->step()) out.push_back(detail::read_sample_info(*s));
        return out;
    }

    std::optional<DetectionFacts> detection(std::int64_t id) override {
        Use s = use("SELECT id, person_id, decision, embedder, descriptor FROM detections WHERE id = ?");
        s->bind(1, id);
        if (!s->step()) return std::nullopt;
        return detail::read_detection_facts(*s, [&](int column) { return descriptor(*s, column); });
    }

    std::optional<std::pair<std::int64_t, NewRejection>> find_rejection(std::int64_t person,
                                                                        std::int64_t detection) override {
        Use s =
            use("SELECT id, person_id, detection_id, embedder, descriptor, decision, had_sample, created_at"
                " FROM rejections WHERE person_id = ? AND detection_id = ?");
        s->bind(1, person).bind(2, detection);
        if (!s->step()) return std::nullopt;
        return std::pair(s->int64(0),
                         detail::read_rejection_row(*s, [&](int column) { return descriptor(*s, column); }));
    }

    void scan_rejections(const std::string& embedder, const std::function<void(const RejectionRow&)>& visit) override {
        Use s =
            use("SELECT id, person_id, detection_id, descriptor FROM rejections"
                " WHERE embedder = ? AND descriptor IS NOT NULL");
        s->bind(1, embedder);
        while (s->step()) visit({s->int64(0), s->int64(1), s->opt_int64(2), descriptor(*s, 3)});
    }

    void scan_rejections_of(const std::string& embedder, const std::vector<std::int64_t>& ids,
                            const std::function<void(const RejectionRow&)>& visit) override {
        Use s =
            use("SELECT id, person_id, detection_id, descriptor FROM rejections"
                " WHERE embedder = ? AND descriptor IS NOT NULL AND person_id IN (SELECT value FROM json_each(?))");
        s->bind(1, embedder).bind(2, json_ids(ids));
        while (s->step()) visit({s->int64(0), s->int64(1), s->opt_int64(2), descriptor(*s, 3)});
    }

    std::optional<PersonRef> known_owner(const std::string& sha256, const std::string& embedder,
                                         std::optional<std::int64_t> preferred) override {
        // CROSS JOIN keeps SQLite from scanning every person: samples are
        // found by their image's sha256 first (samples_source).
        Use s =
            use("SELECT p.id, p.public_id, p.name, p.kind FROM samples s CROSS JOIN persons p ON p.id = s.person_id"
                " WHERE s.source_sha256 = ? AND s.embedder = ? AND p.kind = 'known' ORDER BY p.id = ? DESC, p.id"
                " LIMIT 1");
        s->bind(1, sha256).bind(2, embedder).bind(3, preferred);
        if (!s->step()) return std::nullopt;
        return read_ref(*s, 0);
    }

    std::vector<std::pair<PersonRef, Box>> known_samples_of(const std::string& sha256,
                                                            const std::string& embedder) override {
        Use s =
            use("SELECT p.id, p.public_id, p.name, p.kind, s.box_x, s.box_y, s.box_w, s.box_h FROM samples s CROSS JOIN"
                " persons p ON p.id = s.person_id WHERE s.source_sha256 = ? AND s.embedder = ? AND p.kind = 'known'"
                " ORDER BY p.id, s.id");
        s->bind(1, sha256).bind(2, embedder);
        std::vector<std::pair<PersonRef, Box>> out;
        while (s->step()) out.emplace_back(read_ref(*s, 0), read_box(*s, 4));
        return out;
    }

    void scan_persons(const std::function<void(const PersonRef&)>& visit) override {
        Use s = use("SELECT id, public_id, name, kind FROM persons");
        while (s->step()) visit(read_ref(*s, 0));
    }

    void scan_samples(const std::string& embedder,
                      const std::function<void(std::int64_t, const Descriptor&)>& visit) override {
        Use s = use("SELECT person_id, descriptor FROM samples WHERE embedder = ?");
        s->bind(1, embedder);
        while (s->step()) visit(s->int64(0), descriptor(*s, 1));
    }

    std::optional<std::vector<std::int64_t>> changed_persons(std::int64_t since) override {
        if (since < one_int(use("SELECT value FROM meta WHERE key = 'changes_from'"))) return std::nullopt;
        Use s = use("SELECT DISTINCT person_id FROM person_changes WHERE generation > ?");
        s->bind(1, since);
        std::vector<std::int64_t> out;
        while (s->step()) out.push_back(s->int64(0));
        return out;
    }

    void scan_persons_in(const std::vector<std::int64_t>& ids,
                         const std::function<void(const PersonRef&)>& visit) override {
        Use s = use("SELECT id, public_id, name, kind FROM persons WHERE id IN (SELECT value FROM json_each(?))");
        s->bind(1, json_ids(ids));
        while (s->step()) visit(read_ref(*s, 0));
    }

    void scan_samples_of(const std::string& embedder, const std::vector<std::int64_t>& ids,
                         const std::function<void(std::int64_t, const Descriptor&)>& visit) override {
        Use s =
            use("SELECT person_id, descriptor FROM samples WHERE embedder = ?"
                " AND person_id IN (SELECT value FROM json_each(?))");
        s->bind(1, embedder).bind(2, json_ids(ids));
        while (s->step()) visit(s->int64(0), descriptor(*s, 1));
    }

    // Drops the change log's generations older than log_generations.
    void trim_change_log() {
        Use del =
            use("DELETE FROM person_changes"
                " WHERE generation <= (SELECT value FROM meta WHERE key = 'generation') - ?");
        del->bind(1, log_generations).run();
        Use up =
            use("UPDATE meta SET value = max(value, (SELECT value FROM meta WHERE key = 'generation') - ?)"
                " WHERE key = 'changes_from'");
        up->bind(1, log_generations).run();
    }

    void scan_person_rows(const std::function<void(std::int64_t, const NewPerson&)>& visit) override {
        Use s = use("SELECT id, public_id, name, name_key, kind, created_at, updated_at FROM persons ORDER BY id");
        while (s->step()) {
            const auto [id, person] = detail::read_person_row(*s);
            visit(id, person);
        }
    }

    void scan_image_rows(const std::function<void(std::int64_t, const ImageFacts&, std::int64_t)>& visit) override {
        Use s = use("SELECT id, path, sha256, size, mtime, models, analyzed_at FROM images ORDER BY id");
        while (s->step()) visit(s->int64(0), detail::read_image_row(*s), s->int64(6));
    }

    void scan_detection_rows(const std::function<void(std::int64_t, const NewDetection&)>& visit) override {
        Use s =
            use("SELECT id, image_id, box_x, box_y, box_w, box_h, confidence, person_id, decision, distance, margin,"
                " age, gender, embedder, descriptor, detected_at,"
                " (SELECT jpeg FROM detection_thumbnails WHERE detection_id = detections.id)"
                " FROM detections ORDER BY id");
        const auto describe = [&](int column) { return descriptor(*s, column); };
        while (s->step()) visit(s->int64(0), detail::read_detection_row(*s, describe));
    }

    void scan_sample_rows(const std::function<void(const NewSample&)>& visit) override {
        Use s =
            use("SELECT person_id, embedder, descriptor, coalesce(source_path, ''), source_sha256, box_x, box_y,"
                " box_w, box_h, coalesce(quality, 0), detection_id, created_at,"
                " (SELECT jpeg FROM sample_thumbnails WHERE sample_id = samples.id) FROM samples ORDER BY id");
        const auto describe = [&](int column) { return descriptor(*s, column); };
        while (s->step()) visit(detail::read_sample_row(*s, describe));
    }

    void scan_rejection_rows(const std::function<void(const NewRejection&)>& visit) override {
        Use s =
            use("SELECT id, person_id, detection_id, embedder, descriptor, decision, had_sample, created_at"
                " FROM rejections ORDER BY id");
        while (s->step()) visit(detail::read_rejection_row(*s, [&](int column) { return descriptor(*s, column); }));
    }

    std::vector<EmbedderSamples> embedders() override {
        Use s =
            use("SELECT embedder, count(*), count(DISTINCT person_id) FROM samples GROUP BY embedder"
                " ORDER BY count(*) DESC");
        std::vector<EmbedderSamples> out;
        while (s->step()) out.push_back({s->text(0), s->int64(1), s->int64(2)});
        return out;
    }

    std::optional<std::string> detection_thumbnail(std::int64_t detection) override {
        Use s = use("SELECT jpeg FROM detection_thumbnails WHERE detection_id = ?");
        s->bind(1, detection);
        if (!s->step()) return std::nullopt;
        return bytes(*s, 0);
    }

    std::optional<std::string> sample_thumbnail(std::int64_t sample) override {
        Use s =
            use("SELECT coalesce((SELECT jpeg FROM sample_thumbnails WHERE sample_id = s.id),"
                " (SELECT jpeg FROM detection_thumbnails WHERE detection_id = s.detection_id))"
                " FROM samples s WHERE s.id = ?");
        s->bind(1, sample);
        if (!s->step() || s->is_null(0)) return std::nullopt;
        return bytes(*s, 0);
    }

    std::optional<std::string> person_thumbnail(std::int64_t person) override {
        // Ids first, bytes of one row after: no sort ever carries thumbnails.
        Use sample =
            use("SELECT s.id FROM samples s WHERE s.person_id = ?"
                " AND (EXISTS (SELECT 1 FROM sample_thumbnails t WHERE t.sample_id = s.id)"
                " OR EXISTS (SELECT 1 FROM detection_thumbnails t WHERE t.detection_id = s.detection_id))"
                " ORDER BY s.created_at DESC, s.id DESC LIMIT 1");
        sample->bind(1, person);
        if (sample->step()) return sample_thumbnail(sample->int64(0));
        // detections_person (person_id, detected_at, and the rowid) gives this order without sorting.
        Use detection =
            use("SELECT d.id FROM detections d WHERE d.person_id = ?"
                " AND EXISTS (SELECT 1 FROM detection_thumbnails t WHERE t.detection_id = d.id)"
                " ORDER BY d.detected_at DESC, d.id DESC LIMIT 1");
        detection->bind(1, person);
        if (detection->step()) return detection_thumbnail(detection->int64(0));
        return std::nullopt;
    }

    std::vector<StoredFace> missing_thumbnails() override {
        // Both queries give: id, path, sha256, box (x, y, w, h).
        std::vector<StoredFace> out;
        auto collect = [&](const char* sql, bool sample) {
            Use s = use(sql);
            while (s->step()) out.push_back({sample, s->int64(0), s->text(1), s->text(2), read_box(*s, 3)});
        };
        collect(
            "SELECT d.id, i.path, i.sha256, d.box_x, d.box_y, d.box_w, d.box_h FROM detections d"
            " JOIN images i ON i.id = d.image_id"
            " WHERE NOT EXISTS (SELECT 1 FROM detection_thumbnails t WHERE t.detection_id = d.id)"
            " ORDER BY i.path, d.id",
            false);
        collect(
            "SELECT s.id, coalesce(s.source_path, ''), s.source_sha256, s.box_x, s.box_y, s.box_w, s.box_h"
            " FROM samples s WHERE s.detection_id IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM sample_thumbnails t WHERE t.sample_id = s.id)"
            " ORDER BY s.source_path, s.id",
            true);
        return out;
    }

    std::optional<StoredImage> find_image(const std::string& sha256, const std::string& models) override {
        Use s = use("SELECT id, analyzed_at FROM images WHERE sha256 = ? AND models = ?");
        s->bind(1, sha256).bind(2, models);
        if (!s->step()) return std::nullopt;
        return StoredImage{s->int64(0), s->int64(1)};
    }

    std::vector<ClusterDetection> cluster_detections(const std::string& embedder) override {
        Use s =
            use("SELECT d.id, d.person_id, d.descriptor FROM detections d LEFT JOIN persons p ON p.id = d.person_id"
                " WHERE d.embedder = ? AND d.descriptor IS NOT NULL"
                " AND (p.kind = 'unknown' OR (d.person_id IS NULL AND d.decision = 'unknown'))"
                " ORDER BY d.id");
        s->bind(1, embedder);
        std::vector<ClusterDetection> out;
        while (s->step()) out.push_back({s->int64(0), s->opt_int64(1), descriptor(*s, 2)});
        return out;
    }

    std::vector<StoredDescriptor> stale_descriptors(const std::string& embedder) override {
        // Both queries give: id, path, sha256, box (x, y, w, h), embedder.
        std::vector<StoredDescriptor> out;
        auto collect = [&](const char* sql, bool sample) {
            Use s = use(sql);
            s->bind(1, embedder);
            while (s->step()) out.push_back({sample, s->int64(0), s->text(1), s->text(2), read_box(*s, 3), s->text(7)});
        };
        collect(
            "SELECT id, coalesce(source_path, ''), source_sha256, box_x, box_y, box_w, box_h, embedder FROM samples"
            " WHERE embedder <> ? ORDER BY source_path, id",
            true);
        collect(
            "SELECT d.id, i.path, i.sha256, d.box_x, d.box_y, d.box_w, d.box_h, d.embedder FROM detections d"
            " JOIN images i ON i.id = d.image_id WHERE d.descriptor IS NOT NULL AND d.embedder <> ?"
            " ORDER BY i.path, d.id",
            false);
        return out;
    }

    GalleryStats counts() override {
        Use s =
            use("SELECT (SELECT count(*) FROM persons WHERE kind = 'known'),"
                " (SELECT count(*) FROM persons WHERE kind = 'unknown'),"
                " (SELECT count(*) FROM samples), (SELECT count(*) FROM images),"
                " (SELECT count(*) FROM detections),"
                " (SELECT count(*) FROM detections WHERE decision = 'known'),"
                " (SELECT count(*) FROM detections WHERE decision = 'unknown'),"
                " (SELECT count(*) FROM detections WHERE decision = 'ambiguous'),"
                " (SELECT max(detected_at) FROM detections)");
        s->step();
        GalleryStats out;
        out.persons_known = s->int64(0);
        out.persons_unknown = s->int64(1);
        out.samples = s->int64(2);
        out.images = s->int64(3);
        out.detections = s->int64(4);
        out.detections_known = s->int64(5);
        out.detections_unknown = s->int64(6);
        out.detections_ambiguous = s->int64(7);
        out.last_detection = s->opt_int64(8);
        return out;
    }

    std::map<std::int64_t, std::int64_t> detections_per_day(std::int64_t since) override {
        Use s =
            use("SELECT detected_at - detected_at % 86400 AS day, count(*) FROM detections"
                " WHERE detected_at >= ? GROUP BY day");
        s->bind(1, since);
        std::map<std::int64_t, std::int64_t> out;
        while (s->step()) out[s->int64(0)] = s->int64(1);
        return out;
    }

    // ---- writer
    void lock_gallery() override {}  // every write transaction holds it (BEGIN IMMEDIATE)

    // ---- writer: persons
    std::int64_t add_person(const NewPerson& p) override {
        Use s =
            use("INSERT INTO persons (public_id, name, name_key, kind, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)");
        s->bind(1, p.public_id).bind(2, p.name).bind(3, p.name_key).bind(4, p.kind).bind(5, p.now);
        s->bind(6, p.updated_at.value_or(p.now));
        s->run();
        return db_.last_insert_rowid();
    }

    void touch_person(std::int64_t person, std::int64_t now) override {
        Use s = use("UPDATE persons SET updated_at = ? WHERE id = ?");
        s->bind(1, now).bind(2, person).run();
    }

    void touch_persons(const std::vector<std::int64_t>& persons, std::int64_t now) override {
        for (const std::int64_t p : persons) touch_person(p, now);  // no round trips to save in-process
    }

    void name_person(std::int64_t person, const std::string& name, const std::string& name_key,
                     std::int64_t now) override {
        Use s = use("UPDATE persons SET name = ?, name_key = ?, kind = 'known', updated_at = ? WHERE id = ?");
        s->bind(1, name).bind(2, name_key).bind(3, now).bind(4, person).run();
    }

    void delete_person(std::int64_t person) override {
        Use s = use("DELETE FROM persons WHERE id = ?");
        s->bind(1, person).run();
    }

    std::int64_t delete_forgotten_strangers(std::int64_t before) override {
        Use s =
            use("DELETE FROM persons WHERE kind = 'unknown' AND updated_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM detections d WHERE d.person_id = persons.id)");
        s->bind(1, before).run();
        return db_.changes();
    }

    std::int64_t delete_orphan_strangers() override {
        Use s =
            use("DELETE FROM persons WHERE kind = 'unknown'"
                " AND NOT EXISTS (SELECT 1 FROM detections WHERE person_id = persons.id)"
                " AND NOT EXISTS (SELECT 1 FROM samples WHERE person_id = persons.id)");
        s->run();
        return db_.changes();
    }

    // ---- writer: samples
    bool add_sample(const NewSample& x) override {
        Use s =
            use("INSERT OR IGNORE INTO samples (person_id, embedder, descriptor, source_path, source_sha256,"
                " box_x, box_y, box_w, box_h, quality, detection_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        const auto blob = detail::floats_to_blob(x.descriptor.data(), x.descriptor.size());
        s->bind(1, x.person).bind(2, x.embedder).bind_blob(3, blob.data(), blob.size());
        s->bind(4, x.source_path).bind(5, x.source_sha256);
        s->bind(6, x.box.x).bind(7, x.box.y).bind(8, x.box.width).bind(9, x.box.height);
        s->bind(10, x.quality).bind(11, x.detection).bind(12, x.created_at);
        s->run();
        if (db_.changes() == 0) return false;
        if (!x.thumbnail_jpeg.empty()) add_thumbnail(true, db_.last_insert_rowid(), x.thumbnail_jpeg);
        return true;
    }

    bool add_sample_from_detection(std::int64_t person, std::int64_t detection, std::int64_t now) override {
        Use s =
            use("INSERT OR IGNORE INTO samples (person_id, embedder, descriptor, source_path, source_sha256,"
                " box_x, box_y, box_w, box_h, quality, detection_id, created_at)"
                " SELECT ?, d.embedder, d.descriptor, i.path, i.sha256, d.box_x, d.box_y, d.box_w, d.box_h,"
                " d.confidence, d.id, ? FROM detections d JOIN images i ON i.id = d.image_id"
                " WHERE d.id = ? AND d.descriptor IS NOT NULL");
        s->bind(1, person).bind(2, now).bind(3, detection).run();
        return db_.changes() > 0;
    }

    void move_samples(std::int64_t from, std::int64_t into) override {
        Use s = use("UPDATE OR IGNORE samples SET person_id = ? WHERE person_id = ?");
        s->bind(1, into).bind(2, from).run();
    }

    bool redescribe(const Redescription& r) override {
        const auto blob = detail::floats_to_blob(r.descriptor.data(), r.descriptor.size());
        Use s = use(r.which.sample ? "UPDATE OR IGNORE samples SET embedder = ?, descriptor = ?, box_x = ?, box_y = ?,"
                                     " box_w = ?, box_h = ? WHERE id = ?"
                                   : "UPDATE detections SET embedder = ?, descriptor = ?, box_x = ?, box_y = ?,"
                                     " box_w = ?, box_h = ? WHERE id = ?");
        s->bind(1, r.embedder).bind_blob(2, blob.data(), blob.size());
        s->bind(3, r.box.x).bind(4, r.box.y).bind(5, r.box.width).bind(6, r.box.height).bind(7, r.which.id);
        s->run();
        if (!r.which.sample) {
            // A rejection keeps its detection's descriptor: it follows the new one.
            Use rej = use("UPDATE rejections SET embedder = ?, descriptor = ? WHERE detection_id = ?");
            rej->bind(1, r.embedder).bind_blob(2, blob.data(), blob.size()).bind(3, r.which.id).run();
            return true;
        }
        if (db_.changes() > 0) return true;
        Use del = use("DELETE FROM samples WHERE id = ?");
        del->bind(1, r.which.id).run();
        return false;
    }

    // ---- writer: images and detections
    std::optional<std::int64_t> add_image(const ImageFacts& image, std::int64_t now) override {
        Use s =
            use("INSERT OR IGNORE INTO images (path, sha256, size, mtime, analyzed_at, models)"
                " VALUES (?, ?, ?, ?, ?, ?)");
        s->bind(1, image.path).bind(2, image.sha256).bind(3, static_cast<std::int64_t>(image.size));
        s->bind(4, image.mtime).bind(5, now).bind(6, image.models);
        s->run();
        if (db_.changes() == 0) return std::nullopt;
        return db_.last_insert_rowid();
    }

    void reset_image(std::int64_t image, const ImageFacts& facts, std::int64_t now) override {
        Use del = use("DELETE FROM detections WHERE image_id = ?");
        del->bind(1, image).run();
        Use up = use("UPDATE images SET path = ?, size = ?, mtime = ?, analyzed_at = ? WHERE id = ?");
        up->bind(1, facts.path).bind(2, static_cast<std::int64_t>(facts.size)).bind(3, facts.mtime);
        up->bind(4, now).bind(5, image).run();
    }

    std::int64_t add_detection(const NewDetection& d) override {
        Use s =
            use("INSERT INTO detections (image_id, box_x, box_y, box_w, box_h, confidence, person_id, decision,"
                " distance, margin, age, gender, embedder, descriptor, detected_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        s->bind(1, d.image).bind(2, d.box.x).bind(3, d.box.y).bind(4, d.box.width).bind(5, d.box.height);
        s->bind(6, d.confidence).bind(7, d.person).bind(8, to_string(d.decision));
        s->bind(9, d.distance).bind(10, d.margin).bind(11, d.age).bind(12, d.gender);
        if (d.descriptor) {
            const auto blob = detail::floats_to_blob(d.descriptor->data(), d.descriptor->size());
            s->bind(13, d.embedder).bind_blob(14, blob.data(), blob.size());
        } else {
            s->bind_null(13).bind_null(14);
        }
        s->bind(15, d.detected_at);
        s->run();
        const std::int64_t id = db_.last_insert_rowid();
        if (!d.thumbnail_jpeg.empty()) add_thumbnail(false, id, d.thumbnail_jpeg);
        return id;
    }

    void reassign_detection(std::int64_t detection, std::int64_t person, Decision decision) override {
        Use det = use("UPDATE detections SET person_id = ?, decision = ? WHERE id = ?");
        det->bind(1, person).bind(2, to_string(decision)).bind(3, detection).run();
        Use sample = use("UPDATE OR IGNORE samples SET person_id = ? WHERE detection_id = ?");
        sample->bind(1, person).bind(2, detection).run();
    }

    void move_detections(std::int64_t from, std::int64_t into, Decision decision) override {
        Use s =
            use("UPDATE detections SET person_id = ?1,"
                " decision = CASE WHEN decision = 'ambiguous' THEN decision ELSE ?2 END WHERE person_id = ?3");
        s->bind(1, into).bind(2, to_string(decision)).bind(3, from).run();
    }

    void redecide_detections(std::int64_t person, Decision from, Decision to) override {
        Use s = use("UPDATE detections SET decision = ? WHERE person_id = ? AND decision = ?");
        s->bind(1, to_string(to)).bind(2, person).bind(3, to_string(from)).run();
    }

    std::int64_t delete_detections_before(std::int64_t before) override {
        Use r = use("DELETE FROM rejections WHERE detection_id IN (SELECT id FROM detections WHERE detected_at < ?)");
        r->bind(1, before).run();
        Use s = use("DELETE FROM detections WHERE detected_at < ?");
        s->bind(1, before).run();
        return db_.changes();
    }

    void attribute_detection(std::int64_t detection, std::optional<std::int64_t> person, Decision decision) override {
        Use s = use("UPDATE detections SET person_id = ?, decision = ? WHERE id = ?");
        s->bind(1, person).bind(2, to_string(decision)).bind(3, detection).run();
    }

    std::int64_t add_rejection(const NewRejection& x) override {
        Use s =
            use("INSERT INTO rejections (person_id, detection_id, embedder, descriptor, decision, had_sample,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
        s->bind(1, x.person).bind(2, x.detection);
        if (x.descriptor) {
            const auto blob = detail::floats_to_blob(x.descriptor->data(), x.descriptor->size());
            s->bind(3, x.embedder).bind_blob(4, blob.data(), blob.size());
        } else {
            s->bind_null(3).bind_null(4);
        }
        s->bind(5, to_string(x.decision)).bind(6, std::int64_t{x.had_sample ? 1 : 0}).bind(7, x.created_at);
        s->run();
        return db_.last_insert_rowid();
    }

    void delete_rejection(std::int64_t rejection) override {
        Use s = use("DELETE FROM rejections WHERE id = ?");
        s->bind(1, rejection).run();
    }

    void relink_rejection(std::int64_t rejection, std::int64_t detection) override {
        Use s = use("UPDATE OR IGNORE rejections SET detection_id = ? WHERE id = ? AND detection_id IS NULL");
        s->bind(1, detection).bind(2, rejection).run();
    }

    void move_rejections(std::int64_t from, std::int64_t into) override {
        Use s = use("UPDATE OR IGNORE rejections SET person_id = ? WHERE person_id = ?");
        s->bind(1, into).bind(2, from).run();
    }

    std::int64_t delete_detection_samples(std::int64_t person, std::int64_t detection) override {
        Use s = use("DELETE FROM samples WHERE person_id = ? AND detection_id = ?");
        s->bind(1, person).bind(2, detection).run();
        return db_.changes();
    }

    // ---- writer: thumbnails
    bool add_thumbnail(bool sample, std::int64_t id, const std::string& jpeg) override {
        Use s = use(sample ? "INSERT OR IGNORE INTO sample_thumbnails (sample_id, jpeg)"
                             " SELECT id, ?2 FROM samples WHERE id = ?1"
                           : "INSERT OR IGNORE INTO detection_thumbnails (detection_id, jpeg)"
                             " SELECT id, ?2 FROM detections WHERE id = ?1");
        s->bind(1, id).bind_blob(2, jpeg.data(), jpeg.size());
        s->run();
        return db_.changes() > 0;
    }

private:
    // A statement of the connection's cache, reset (bindings cleared) when
    // the use ends, even by an exception half-way through its rows.
    class Use {
    public:
        explicit Use(Stmt& s) : s_(s) {}
        ~Use() { s_.reset(); }
        Use(const Use&) = delete;
        Use& operator=(const Use&) = delete;
        Stmt* operator->() const { return &s_; }
        Stmt& operator*() const { return s_; }

    private:
        Stmt& s_;
    };

    // Statements are keyed by their text's address: each is a literal (or a
    // static string) of one call site.
    Use use(const char* sql) {
        auto& stmt = statements_[sql];
        if (!stmt) stmt = std::make_unique<Stmt>(db_, sql);
        return Use(*stmt);
    }

    // `ids` as a JSON array, for json_each().
    static std::string json_ids(const std::vector<std::int64_t>& ids) {
        std::string out = "[";
        for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
        return out + "]";
    }

    // A BLOB column's bytes.
    static std::string bytes(const Stmt& s, int column) {
        std::size_t size = 0;
        const void* p = s.blob(column, size);
        return size ? std::string(static_cast<const char*>(p), size) : std::string();
    }

    static std::int64_t one_int(const Use& s) {
        s->step();
        return s->int64(0);
    }

    Descriptor descriptor(const Stmt& s, int column) const {
        Descriptor d{};
        std::size_t size = 0;
        const void* p = s.blob(column, size);
        if (!detail::blob_to_floats(p, size, d.data(), d.size()))
            throw Error(ErrorKind::database, fmt::format("database '{}' holds a descriptor of {} bytes (expected 512)",
                                                         db_.path().string(), size));
        return d;
    }

    Db db_;
    // After db_: finalized before the connection closes.
    std::unordered_map<const char*, std::unique_ptr<Stmt>> statements_;
};

// ---------------------------------------------------------------- SqliteStore

SqliteStore::SqliteStore(const std::filesystem::path& path, const Options& options)
    : conn_(std::make_unique<Connection>(path, options)), options_(options) {}

SqliteStore::~SqliteStore() = default;

int SqliteStore::latest_schema_version() { return latest_version; }

void SqliteStore::read(const std::function<void(StoreReader&)>& body) {
    run_with_retries(
        [&] {
            detail::ReadTransaction tx(conn_->db());
            body(*conn_);
        },
        options_.retry, options_.log);
}

void SqliteStore::write(const std::function<void(StoreWriter&)>& body, Finish finish, Lock) {
    run_with_retries(
        [&] {
            detail::Transaction tx(conn_->db());  // BEGIN IMMEDIATE: the writer lock, whatever `Lock` says
            body(*conn_);
            if (finish == Finish::commit) {
                if (++writes_ % 256 == 0) conn_->trim_change_log();
                tx.commit();
            }
        },  // else the destructor rolls back
        options_.retry, options_.log);
}

int SqliteStore::schema_version() { return read_user_version(conn_->db()); }

std::uint64_t SqliteStore::database_bytes() {
    std::uint64_t bytes = 0;
    std::error_code ec;
    for (const char* suffix : {"", "-wal"}) {
        const auto size = std::filesystem::file_size(conn_->db().path().string() + suffix, ec);
        if (!ec) bytes += size;
    }
    return bytes;
}

std::string SqliteStore::description() const { return conn_->db().path().string(); }

}  // namespace faceq
