// pg_store.cpp — see pg_store.hpp: a small RAII layer over libpq, the schema
// and its migrations, and every gallery operation as prepared statements.
//
// Why libpq and not libpqxx: libpq is what the issue and every PostgreSQL
// installation bring (libpq-dev); what faceq needs of it — prepared
// statements with binary parameters and results, single-row mode for long
// scans, SQLSTATEs for retries — is a few calls, wrapped here in ~150 lines.
#include "identity/pg_store.hpp"

#include <endian.h>
#include <fmt/format.h>
#include <libpq-fe.h>

#include <cctype>
#include <cstring>
#include <map>
#include <unordered_map>

#include "base/float_blob.hpp"
#include "identity/store_rows.hpp"

namespace faceq {
namespace {

using detail::read_box;
using detail::read_info;
using detail::read_ref;

// The gallery's advisory lock: one per database ("faceq" in ASCII).
constexpr std::int64_t gallery_lock_key = 0x6661636571;

// ---------------------------------------------------------------- schema

// Migration i brings schema_version from i to i + 1. Never edit a released
// one: append a new migration instead.
const char* const migrations[] = {
    R"sql(
CREATE SCHEMA IF NOT EXISTS faceq;
CREATE TABLE faceq.meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO faceq.meta (key, value) VALUES ('schema_version', 0), ('changes_from', 0);
CREATE TABLE faceq.persons (
    id          bigserial PRIMARY KEY,
    public_id   text NOT NULL UNIQUE,
    name        text,
    name_key    text UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('known', 'unknown')),
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    CHECK ((kind = 'known') = (name IS NOT NULL)),
    CHECK ((name IS NULL) = (name_key IS NULL))
);
CREATE TABLE faceq.images (
    id          bigserial PRIMARY KEY,
    path        text NOT NULL,
    sha256      text NOT NULL,
    size        bigint NOT NULL,
    mtime       bigint,
    analyzed_at bigint NOT NULL,
    models      text NOT NULL,
    UNIQUE (sha256, models)
);
CREATE TABLE faceq.detections (
    id          bigserial PRIMARY KEY,
    image_id    bigint NOT NULL REFERENCES faceq.images(id) ON DELETE CASCADE,
    box_x       integer NOT NULL,
    box_y       integer NOT NULL,
    box_w       integer NOT NULL,
    box_h       integer NOT NULL,
    confidence  double precision NOT NULL,
    person_id   bigint REFERENCES faceq.persons(id) ON DELETE SET NULL,
    decision    text NOT NULL CHECK (decision IN ('known', 'unknown', 'ambiguous')),
    distance    double precision,
    margin      double precision,
    age         double precision,
    gender      text,
    embedder    text,
    descriptor  bytea CHECK (descriptor IS NULL OR length(descriptor) = 512),
    detected_at bigint NOT NULL
);
CREATE INDEX detections_image ON faceq.detections(image_id);
CREATE INDEX detections_person ON faceq.detections(person_id, detected_at);
CREATE INDEX detections_time ON faceq.detections(detected_at);
CREATE TABLE faceq.samples (
    id            bigserial PRIMARY KEY,
    person_id     bigint NOT NULL REFERENCES faceq.persons(id) ON DELETE CASCADE,
    embedder      text NOT NULL,
    descriptor    bytea NOT NULL CHECK (length(descriptor) = 512),
    source_path   text,
    source_sha256 text NOT NULL,
    box_x         integer NOT NULL,
    box_y         integer NOT NULL,
    box_w         integer NOT NULL,
    box_h         integer NOT NULL,
    quality       double precision,
    detection_id  bigint REFERENCES faceq.detections(id) ON DELETE SET NULL,
    created_at    bigint NOT NULL
);
CREATE UNIQUE INDEX samples_unique ON faceq.samples(person_id, embedder, source_sha256, box_x, box_y, box_w, box_h);
CREATE INDEX samples_source ON faceq.samples(source_sha256, embedder);
CREATE INDEX samples_embedder ON faceq.samples(embedder, person_id);
CREATE INDEX samples_detection ON faceq.samples(detection_id);
-- Each change that affects identification logs the person it concerns under
-- a new generation (store.hpp, "Change detection"). The generation is the
-- log's largest: numbers come from a sequence, and every change that logs
-- one is made under the gallery's advisory lock (PgStore takes it), so they
-- commit in the order they were drawn. (Not a counter row updated per change:
-- one transaction updating one row 100,000 times makes PostgreSQL walk an
-- ever longer chain of dead versions.)
CREATE SEQUENCE faceq.generation;
CREATE TABLE faceq.person_changes (generation bigint NOT NULL, person_id bigint NOT NULL);
CREATE INDEX person_changes_generation ON faceq.person_changes(generation);
CREATE FUNCTION faceq.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g bigint := nextval('faceq.generation');
BEGIN
    IF TG_TABLE_NAME = 'samples' THEN
        IF TG_OP <> 'INSERT' THEN INSERT INTO faceq.person_changes VALUES (g, OLD.person_id); END IF;
        IF TG_OP <> 'DELETE' THEN INSERT INTO faceq.person_changes VALUES (g, NEW.person_id); END IF;
    ELSE
        INSERT INTO faceq.person_changes VALUES (g, OLD.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER samples_insert AFTER INSERT ON faceq.samples FOR EACH ROW EXECUTE FUNCTION faceq.log_change();
CREATE TRIGGER samples_delete AFTER DELETE ON faceq.samples FOR EACH ROW EXECUTE FUNCTION faceq.log_change();
CREATE TRIGGER samples_update AFTER UPDATE OF person_id, embedder, descriptor ON faceq.samples
    FOR EACH ROW EXECUTE FUNCTION faceq.log_change();
CREATE TRIGGER persons_update AFTER UPDATE OF public_id, name, kind ON faceq.persons
    FOR EACH ROW EXECUTE FUNCTION faceq.log_change();
CREATE TRIGGER persons_delete AFTER DELETE ON faceq.persons FOR EACH ROW EXECUTE FUNCTION faceq.log_change();
)sql",
    // 2: face thumbnails, in tables of their own as in SQLite's migration 3
    // (sqlite_store.cpp says why; PostgreSQL would move a large bytea out of
    // line by itself, but one shape keeps one set of statements). JPEG bytes
    // do not compress: EXTERNAL storage spares the attempt.
    R"sql(
CREATE TABLE faceq.detection_thumbnails (
    detection_id bigint PRIMARY KEY REFERENCES faceq.detections(id) ON DELETE CASCADE,
    jpeg         bytea NOT NULL
);
CREATE TABLE faceq.sample_thumbnails (
    sample_id bigint PRIMARY KEY REFERENCES faceq.samples(id) ON DELETE CASCADE,
    jpeg      bytea NOT NULL
);
ALTER TABLE faceq.detection_thumbnails ALTER COLUMN jpeg SET STORAGE EXTERNAL;
ALTER TABLE faceq.sample_thumbnails ALTER COLUMN jpeg SET STORAGE EXTERNAL;
CREATE FUNCTION faceq.keep_sample_thumbnails() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO faceq.sample_thumbnails (sample_id, jpeg)
        SELECT s.id, t.jpeg FROM faceq.samples s JOIN faceq.detection_thumbnails t ON t.detection_id = OLD.id
        WHERE s.detection_id = OLD.id ON CONFLICT DO NOTHING;
    RETURN OLD;
END $$;
CREATE TRIGGER detections_delete_thumbnail BEFORE DELETE ON faceq.detections
    FOR EACH ROW EXECUTE FUNCTION faceq.keep_sample_thumbnails();
)sql",
    // 3: rejections ("not this person", Gallery::reject): the detection that
    // left a person, with its descriptor so the rejection outlives the row;
    // logged like samples (their own function: log_change() reads OLD.id for
    // every table but samples) so every process's index sees them. And the
    // index that pages persons in the "name" order (Gallery::list_persons).
    R"sql(
CREATE TABLE faceq.rejections (
    id           bigserial PRIMARY KEY,
    person_id    bigint NOT NULL REFERENCES faceq.persons(id) ON DELETE CASCADE,
    detection_id bigint REFERENCES faceq.detections(id) ON DELETE SET NULL,
    embedder     text,
    descriptor   bytea CHECK (descriptor IS NULL OR length(descriptor) = 512),
    decision     text NOT NULL CHECK (decision IN ('known', 'unknown', 'ambiguous')),
    had_sample   boolean NOT NULL,
    created_at   bigint NOT NULL,
    UNIQUE (person_id, detection_id)
);
CREATE INDEX rejections_detection ON faceq.rejections(detection_id);
CREATE INDEX rejections_embedder ON faceq.rejections(embedder, person_id);
CREATE FUNCTION faceq.log_rejection_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g bigint := nextval('faceq.generation');
BEGIN
    IF TG_OP <> 'INSERT' THEN INSERT INTO faceq.person_changes VALUES (g, OLD.person_id); END IF;
    IF TG_OP <> 'DELETE' THEN INSERT INTO faceq.person_changes VALUES (g, NEW.person_id); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER rejections_insert AFTER INSERT ON faceq.rejections
    FOR EACH ROW EXECUTE FUNCTION faceq.log_rejection_change();
CREATE TRIGGER rejections_delete AFTER DELETE ON faceq.rejections
    FOR EACH ROW EXECUTE FUNCTION faceq.log_rejection_change();
CREATE TRIGGER rejections_update AFTER UPDATE OF person_id, embedder, descriptor ON faceq.rejections
    FOR EACH ROW EXECUTE FUNCTION faceq.log_rejection_change();
CREATE INDEX persons_order ON faceq.persons(kind COLLATE "C", name_key COLLATE "C" NULLS FIRST, public_id COLLATE "C");
)sql",
};
constexpr int latest_version = static_cast<int>(sizeof migrations / sizeof migrations[0]);

// ---------------------------------------------------------------- libpq layer

constexpr Oid bool_oid = 16, bytea_oid = 17, int8_oid = 20, int2_oid = 21, int4_oid = 23, float4_oid = 700,
              float8_oid = 701;

using ResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

// One statement parameter: text (NULL when empty), or binary bytes.
struct Param {
    std::optional<std::string> value;
    bool binary = false;
};

class Params {
public:
    Params& add(std::int64_t v) { return push(std::to_string(v)); }
    Params& add(int v) { return push(std::to_string(v)); }
    Params& add(double v) { return push(fmt::format("{}", v)); }
    Params& add(const std::string& v) { return push(v); }
    Params& add(const char* v) { return push(std::string(v)); }
    template <typename T>
    Params& add(const std::optional<T>& v) {
        if (v) return add(*v);
        params_.push_back({});
        return *this;
    }
    Params& add_bytes(const std::vector<std::uint8_t>& bytes) {
        params_.push_back({std::string(bytes.begin(), bytes.end()), true});
        return *this;
    }
    Params& add_bytes(const std::string& bytes) {  // NULL when empty
        params_.push_back({bytes.empty() ? std::nullopt : std::optional<std::string>(bytes), true});
        return *this;
    }
    Params& add_ids(const std::vector<std::int64_t>& ids) {  // a bigint[] literal
        std::string out = "{";
        for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
        return push(out + "}");
    }

    int size() const { return static_cast<int>(params_.size()); }
    // Pointers, lengths and formats for PQexecPrepared, valid while this lives.
    void arrays(std::vector<const char*>& values, std::vector<int>& lengths, std::vector<int>& formats) const {
        for (const auto& p : params_) {
            values.push_back(p.value ? p.value->data() : nullptr);
            lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
            formats.push_back(p.binary ? 1 : 0);
        }
    }

private:
    Params& push(std::string v) {
        params_.push_back({std::move(v), false});
        return *this;
    }
    std::vector<Param> params_;
};

// A row of a binary-format result.
class Row {
public:
    Row(const PGresult* r, int row) : r_(r), row_(row) {}

    bool is_null(int col) const { return PQgetisnull(r_, row_, col) != 0; }
    std::int64_t int64(int col) const {
        const char* p = PQgetvalue(r_, row_, col);
        switch (PQftype(r_, col)) {
            case int8_oid: {
                std::uint64_t v;
                std::memcpy(&v, p, 8);
                return static_cast<std::int64_t>(be64toh(v));
            }
            case int4_oid: {
                std::uint32_t v;
                std::memcpy(&v, p, 4);
                return static_cast<std::int32_t>(be32toh(v));
            }
            case int2_oid: {
                std::uint16_t v;
                std::memcpy(&v, p, 2);
                return static_cast<std::int16_t>(be16toh(v));
            }
            case bool_oid:
                return *p != 0;
            default:
                throw Error(ErrorKind::internal, fmt::format("column {} is not an integer", col));
        }
    }
    std::optional<std::int64_t> opt_int64(int col) const {
        return is_null(col) ? std::nullopt : std::optional<std::int64_t>(int64(col));
    }
    double real(int col) const {
        const char* p = PQgetvalue(r_, row_, col);
        if (PQftype(r_, col) == float4_oid) {
            std::uint32_t v;
            std::memcpy(&v, p, 4);
            v = be32toh(v);
            float f;
            std::memcpy(&f, &v, 4);
            return f;
        }
        if (PQftype(r_, col) != float8_oid) return static_cast<double>(int64(col));
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        v = be64toh(v);
        double d;
        std::memcpy(&d, &v, 8);
        return d;
    }
    std::string text(int col) const {
        return std::string(PQgetvalue(r_, row_, col), static_cast<std::size_t>(PQgetlength(r_, row_, col)));
    }
    std::optional<std::string> opt_text(int col) const {
        return is_null(col) ? std::nullopt : std::optional<std::string>(text(col));
    }
    std::optional<double> opt_real(int col) const {
        return is_null(col) ? std::nullopt : std::optional<double>(real(col));
    }
    const char* bytes(int col, std::size_t& size) const {
        size = static_cast<std::size_t>(PQgetlength(r_, row_, col));
        return PQgetvalue(r_, row_, col);
    }

private:
    const PGresult* r_;
    int row_;
};

std::string first_line(const char* message) {
    std::string s = message ? message : "";
    if (const auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
    return s;
}

// Retried failures (pg_store.hpp).
// 23503 (a foreign key violation): in this schema only a row referring to a
// person or detection that another transaction deleted since this one read it.
bool transient_state(const std::string& state) {
    return state.rfind("40", 0) == 0 || state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" ||
           state == "57P03" || state == "53300" || state == "23503";
}

constexpr const char* person_info_columns =
    "p.id, p.public_id, p.name, p.kind, p.created_at, p.updated_at,"
    " (SELECT count(*) FROM faceq.samples WHERE person_id = p.id),"
    " (SELECT count(*) FROM faceq.detections WHERE person_id = p.id),"
    " (SELECT max(detected_at) FROM faceq.detections WHERE person_id = p.id)";

// The samples' unique key without person: `t` (another sample) against `s`'s
// row with `embedder` and box taken from parameters $e and $x..$h.
constexpr const char* same_sample_key =
    "t.embedder = {e} AND t.source_sha256 = s.source_sha256 AND t.box_x = {x} AND t.box_y = {y}"
    " AND t.box_w = {w} AND t.box_h = {h}";

// A page of persons: the ids matching `filter` ordered by `first` (`k`
// being `key`) and then find_persons' order, $3 rows from $4 on, then their
// info columns in that order.
std::string page_sql(const std::string& filter, const char* key, const char* first) {
    return fmt::format(
        "SELECT {} FROM (SELECT p.id, row_number() OVER (ORDER BY {}p.kind COLLATE \"C\","
        " p.name_key COLLATE \"C\" NULLS FIRST, p.public_id COLLATE \"C\") AS n FROM"
        " (SELECT p.*, {} AS k FROM faceq.persons p WHERE {}) p ORDER BY n LIMIT $3 OFFSET $4) page"
        " JOIN faceq.persons p ON p.id = page.id ORDER BY page.n",
        person_info_columns, first, key, filter);
}

}  // namespace

bool is_postgres_url(const std::string& location) {
    if (location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0) return true;
    // libpq's key=value form ("host=/run/postgresql dbname=faceq", "service=x"):
    // it starts with a keyword (lower-case letters and _) and "=".
    std::size_t i = location.find_first_not_of(" \t");
    const std::size_t start = i;
    while (i < location.size() && (std::islower(static_cast<unsigned char>(location[i])) || location[i] == '_')) ++i;
    if (i == start || i == std::string::npos) return false;
    i = location.find_first_not_of(" \t", i);
    return i != std::string::npos && location[i] == '=';
}

std::string describe_postgres_url(const std::string& url) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
    if (!options) {
        PQfreemem(error);
        return "a PostgreSQL database";
    }
    std::map<std::string, std::string> v;
    for (auto* o = options; o->keyword; ++o)
        if (o->val && *o->val) v[o->keyword] = o->val;
    PQconninfoFree(options);
    const std::string host = v.count("host") ? v["host"] : v.count("hostaddr") ? v["hostaddr"] : "";
    const std::string user = v.count("user") ? v["user"] + "@" : "";
    const std::string port = v.count("port") ? ":" + v["port"] : "";
    const std::string db = v.count("dbname") ? v["dbname"] : "";
    if (!host.empty() && host[0] == '/') return fmt::format("postgresql://{}/{}?host={}", user, db, host);
    return fmt::format("postgresql://{}{}{}/{}", user, host, port, db);
}

// ---------------------------------------------------------------- Connection

class PgStore::Connection final : public StoreWriter {
public:
    Connection(std::string url, const Options& options) : url_(std::move(url)), options_(options) {
        connect();
        try {
            migrate();
        } catch (...) {
            PQfinish(conn_);
            throw;
        }
    }
    ~Connection() override {
        if (conn_) PQfinish(conn_);
    }

    const std::string& description() const { return description_; }

    // ---- transactions
    void begin(const char* sql) { exec(sql, "begin a transaction"); }
    void finish(bool commit) { exec(commit ? "COMMIT" : "ROLLBACK", commit ? "commit" : "roll back"); }
    // After a failure: leaves the connection ready for the next attempt
    // (rolled back, or re-opened when it was lost).
    void recover() noexcept {
        try {
            if (PQstatus(conn_) != CONNECTION_OK) {
                reconnect();
            } else if (PQtransactionStatus(conn_) != PQTRANS_IDLE) {
                ResultPtr r(PQexec(conn_, "ROLLBACK"), &PQclear);
            }
        } catch (...) {  // the next attempt says what is wrong
        }
    }
    void reset_lock() { locked_ = false; }

    int schema_version() {
        const auto r = run("SELECT value FROM faceq.meta WHERE key = 'schema_version'", Params{}, "read the schema");
        return PQntuples(r.get()) ? static_cast<int>(Row(r.get(), 0).int64(0)) : 0;
    }

    std::uint64_t database_bytes() {
        const auto r =
            run("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'faceq' AND c.relkind = 'r'",
                Params{}, "measure the gallery");
        return static_cast<std::uint64_t>(Row(r.get(), 0).int64(0));
    }

    void trim_change_log() {
        const std::int64_t keep_after = current_generation() - log_generations;
        run("UPDATE faceq.meta SET value = greatest(value, $1) WHERE key = 'changes_from'", Params().add(keep_after),
            "trim the change log");
        run("DELETE FROM faceq.person_changes WHERE generation <= $1", Params().add(keep_after), "trim the change log");
    }

    // ---- reader
    // The probe is the generation; generation() right after it (nothing run
    // in between) answers from the probe's reading: one round trip, not two.
    std::int64_t change_probe() override {
        probe_value_ = current_generation();
        probe_at_ = statements_;
        return probe_value_;
    }
    std::int64_t generation() override { return probe_at_ == statements_ ? probe_value_ : current_generation(); }

    std::optional<PersonInfo> find_person(const std::string& public_id, const std::string& name_key) override {
        static const std::string sql = fmt::format(
            "SELECT {} FROM faceq.persons p WHERE p.public_id = $1 OR p.name_key = $2", person_info_columns);
        const auto r = run(sql.c_str(), Params().add(public_id).add(name_key), "find a person");
        if (!PQntuples(r.get())) return std::nullopt;
        return read_info(Row(r.get(), 0));
    }

    std::optional<PersonRef> person_by_name_key(const std::string& name_key) override {
        const auto r = run("SELECT id, public_id, name, kind FROM faceq.persons WHERE name_key = $1",
                           Params().add(name_key), "find a person");
        if (!PQntuples(r.get())) return std::nullopt;
        return read_ref(Row(r.get(), 0), 0);
    }

    bool public_id_taken(const std::string& public_id) override {
        const auto r =
            run("SELECT 1 FROM faceq.persons WHERE public_id = $1", Params().add(public_id), "find a person");
        return PQntuples(r.get()) > 0;
    }

    std::vector<PersonInfo> find_persons(const std::string& folded) override {
        static const std::string sql = fmt::format(
            "SELECT {} FROM faceq.persons p"
            " WHERE $1 = '' OR strpos(p.name_key, $1) > 0 OR strpos(p.public_id, $1) > 0"
            " ORDER BY p.kind COLLATE \"C\", p.name_key COLLATE \"C\" NULLS FIRST, p.public_id COLLATE \"C\"",
            person_info_columns);
        const auto r = run(sql.c_str(), Params().add(folded), "search persons");
        std::vector<PersonInfo> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(read_info(Row(r.get(), i)));
        return out;
    }

    PersonPage list_persons(const PersonQuery& q) override {
        static const std::string filter =
            "($1 = 'all' OR p.kind = $1) AND ($2 = '' OR strpos(p.name_key, $2) > 0 OR strpos(p.public_id, $2) > 0)";
        static const std::string count_sql = "SELECT count(*) FROM faceq.persons p WHERE " + filter;
        static const std::string by_name = page_sql(filter, "0", "");
        static const std::string by_detections =
            page_sql(filter, "(SELECT count(*) FROM faceq.detections d WHERE d.person_id = p.id)", "k DESC, ");
        static const std::string by_last_seen =
            page_sql(filter, "(SELECT max(detected_at) FROM faceq.detections d WHERE d.person_id = p.id)",
                     "k DESC NULLS LAST, ");
        const std::string& sql = q.order == "detections"  ? by_detections
                                 : q.order == "last_seen" ? by_last_seen
                                                          : by_name;
        PersonPage out;
        out.total = Row(run(count_sql.c_str(), Params().add(q.kind).add(q.text), "count persons").get(), 0).int64(0);
        const auto r = run(sql.c_str(), Params().add(q.kind).add(q.text).add(q.limit).add(q.offset), "list persons");
        for (int i = 0; i < PQntuples(r.get()); ++i) out.persons.push_back(read_info(Row(r.get(), i)));
        return out;
    }

    FacePage person_faces(std::int64_t person, std::int64_t offset, std::int64_t limit) override {
        static const char* const ids =
            "SELECT id FROM faceq.detections WHERE person_id = $1"
            " UNION SELECT detection_id FROM faceq.rejections WHERE person_id = $1 AND detection_id IS NOT NULL";
        static const std::string count_sql = fmt::format("SELECT count(*) FROM ({}) f", ids);
        static const std::string sql = fmt::format(
            "SELECT d.id, (SELECT min(s.id) FROM faceq.samples s WHERE s.detection_id = d.id AND s.person_id = $1),"
            " i.path, d.detected_at, d.box_x, d.box_y, d.box_w, d.box_h, d.age, d.gender, d.distance, d.decision,"
            " EXISTS (SELECT 1 FROM faceq.rejections r WHERE r.detection_id = d.id AND r.person_id = $1)"
            " FROM ({}) f JOIN faceq.detections d ON d.id = f.id JOIN faceq.images i ON i.id = d.image_id"
            " ORDER BY d.detected_at DESC, d.id DESC LIMIT $2 OFFSET $3",
            ids);
        FacePage out;
        out.total = Row(run(count_sql.c_str(), Params().add(person), "count faces").get(), 0).int64(0);
        const auto r = run(sql.c_str(), Params().add(person).add(limit).add(offset), "list faces");
        for (int i = 0; i < PQntuples(r.get()); ++i) out.faces.push_back(detail::read_person_face(Row(r.get(), i)));
        return out;
    }

    std::vector<SampleInfo> person_samples(std::int64_t person) override {
        const auto r =
            run("SELECT id, coalesce(source_path, ''), box_x, box_y, box_w, box_h, created_at, detection_id, embedder"
                " FROM faceq.samples WHERE person_id = $1 ORDER BY created_at DESC, id DESC",
                Params().add(person), "list samples");
        std::vector<SampleInfo> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(detail::read_sample_info(Row(r.get(), i)));
        return out;
    }

    std::optional<DetectionFacts> detection(std::int64_t id) override {
        const auto r = run("SELECT id, person_id, decision, embedder, descriptor FROM faceq.detections WHERE id = $1",
                           Params().add(id), "find a detection");
        if (!PQntuples(r.get())) return std::nullopt;
        const Row row(r.get(), 0);
        return detail::read_detection_facts(row, [&](int column) { return descriptor(row, column); });
    }

    std::optional<std::pair<std::int64_t, NewRejection>> find_rejection(std::int64_t person,
                                                                        std::int64_t detection) override {
        const auto r =
            run("SELECT id, person_id, detection_id, embedder, descriptor, decision, had_sample, created_at"
                " FROM faceq.rejections WHERE person_id = $1 AND detection_id = $2",
                Params().add(person).add(detection), "find a rejection");
        if (!PQntuples(r.get())) return std::nullopt;
        const Row row(r.get(), 0);
        return std::pair(row.int64(0),
                         detail::read_rejection_row(row, [&](int column) { return descriptor(row, column); }));
    }

    void scan_rejections(const std::string& embedder, const std::function<void(const RejectionRow&)>& visit) override {
        scan(
            "SELECT id, person_id, detection_id, descriptor FROM faceq.rejections"
            " WHERE embedder = $1 AND descriptor IS NOT NULL",
            Params().add(embedder), "read rejections", [&](const Row& row) {
                visit({row.int64(0), row.int64(1), row.opt_int64(2), descriptor(row, 3)});
            });
    }

    void scan_rejections_of(const std::string& embedder, const std::vector<std::int64_t>& ids,
                            const std::function<void(const RejectionRow&)>& visit) override {
        scan(
            "SELECT id, person_id, detection_id, descriptor FROM faceq.rejections"
            " WHERE embedder = $1 AND descriptor IS NOT NULL AND person_id = ANY($2::bigint[])",
            Params().add(embedder).add_ids(ids), "read rejections", [&](const Row& row) {
                visit({row.int64(0), row.int64(1), row.opt_int64(2), descriptor(row, 3)});
            });
    }

    void scan_rejection_rows(const std::function<void(const NewRejection&)>& visit) override {
        scan(
            "SELECT id, person_id, detection_id, embedder, descriptor, decision, had_sample, created_at"
            " FROM faceq.rejections ORDER BY id",
            Params{}, "read rejections", [&](const Row& r) {
                visit(detail::read_rejection_row(r, [&](int column) { return descriptor(r, column); }));
            });
    }

    std::optional<PersonRef> known_owner(const std::string& sha256, const std::string& embedder,
                                         std::optional<std::int64_t> preferred) override {
        const auto r = run(
            "SELECT p.id, p.public_id, p.name, p.kind FROM faceq.samples s JOIN faceq.persons p ON p.id = s.person_id"
            " WHERE s.source_sha256 = $1 AND s.embedder = $2 AND p.kind = 'known'"
            " ORDER BY (p.id IS NOT DISTINCT FROM $3::bigint) DESC, p.id LIMIT 1",
            Params().add(sha256).add(embedder).add(preferred), "find an image's owner");
        if (!PQntuples(r.get())) return std::nullopt;
        return read_ref(Row(r.get(), 0), 0);
    }

    std::vector<std::pair<PersonRef, Box>> known_samples_of(const std::string& sha256,
                                                            const std::string& embedder) override {
        const auto r =
            run("SELECT p.id, p.public_id, p.name, p.kind, s.box_x, s.box_y, s.box_w, s.box_h FROM faceq.samples s JOIN"
                " faceq.persons p ON p.id = s.person_id WHERE s.source_sha256 = $1 AND s.embedder = $2 AND"
                " p.kind = 'known' ORDER BY p.id, s.id",
                Params().add(sha256).add(embedder), "find an image's samples");
        std::vector<std::pair<PersonRef, Box>> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
            const Row row(r.get(), i);
            out.emplace_back(read_ref(row, 0), read_box(row, 4));
        }
        return out;
    }

    void scan_persons(const std::function<void(const PersonRef&)>& visit) override {
        scan("SELECT id, public_id, name, kind FROM faceq.persons", Params{}, "read persons",
             [&](const Row& row) { visit(read_ref(row, 0)); });
    }

    void scan_samples(const std::string& embedder,
                      const std::function<void(std::int64_t, const Descriptor&)>& visit) override {
        scan("SELECT person_id, descriptor FROM faceq.samples WHERE embedder = $1", Params().add(embedder),
             "read samples", [&](const Row& row) { visit(row.int64(0), descriptor(row, 1)); });
    }

    std::vector<EmbedderSamples> embedders() override {
        const auto r =
            run("SELECT embedder, count(*), count(DISTINCT person_id) FROM faceq.samples GROUP BY embedder"
                " ORDER BY count(*) DESC, embedder COLLATE \"C\"",
                Params{}, "count samples");
        std::vector<EmbedderSamples> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
            const Row row(r.get(), i);
            out.push_back({row.text(0), row.int64(1), row.int64(2)});
        }
        return out;
    }

    std::optional<std::vector<std::int64_t>> changed_persons(std::int64_t since) override {
        if (since < meta("changes_from")) return std::nullopt;
        const auto r = run("SELECT DISTINCT person_id FROM faceq.person_changes WHERE generation > $1",
                           Params().add(since), "read changes");
        std::vector<std::int64_t> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(Row(r.get(), i).int64(0));
        return out;
    }

    void scan_persons_in(const std::vector<std::int64_t>& ids,
                         const std::function<void(const PersonRef&)>& visit) override {
        scan("SELECT id, public_id, name, kind FROM faceq.persons WHERE id = ANY($1::bigint[])", Params().add_ids(ids),
             "read persons", [&](const Row& row) { visit(read_ref(row, 0)); });
    }

    void scan_samples_of(const std::string& embedder, const std::vector<std::int64_t>& ids,
                         const std::function<void(std::int64_t, const Descriptor&)>& visit) override {
        scan("SELECT person_id, descriptor FROM faceq.samples WHERE embedder = $1 AND person_id = ANY($2::bigint[])",
             Params().add(embedder).add_ids(ids), "read samples",
             [&](const Row& row) { visit(row.int64(0), descriptor(row, 1)); });
    }

    void scan_person_rows(const std::function<void(std::int64_t, const NewPerson&)>& visit) override {
        scan("SELECT id, public_id, name, name_key, kind, created_at, updated_at FROM faceq.persons ORDER BY id",
             Params{}, "read persons", [&](const Row& r) {
                 const auto [id, person] = detail::read_person_row(r);
                 visit(id, person);
             });
    }

    void scan_image_rows(const std::function<void(std::int64_t, const ImageFacts&, std::int64_t)>& visit) override {
        scan("SELECT id, path, sha256, size, mtime, models, analyzed_at FROM faceq.images ORDER BY id", Params{},
             "read images", [&](const Row& r) { visit(r.int64(0), detail::read_image_row(r), r.int64(6)); });
    }

    void scan_detection_rows(const std::function<void(std::int64_t, const NewDetection&)>& visit) override {
        scan(
            "SELECT id, image_id, box_x, box_y, box_w, box_h, confidence, person_id, decision, distance, margin,"
            " age, gender, embedder, descriptor, detected_at,"
            " (SELECT jpeg FROM faceq.detection_thumbnails WHERE detection_id = d.id) FROM faceq.detections d"
            " ORDER BY id",
            Params{}, "read detections", [&](const Row& r) {
                visit(r.int64(0), detail::read_detection_row(r, [&](int column) { return descriptor(r, column); }));
            });
    }

    void scan_sample_rows(const std::function<void(const NewSample&)>& visit) override {
        scan(
            "SELECT person_id, embedder, descriptor, coalesce(source_path, ''), source_sha256, box_x, box_y, box_w,"
            " box_h, coalesce(quality, 0), detection_id, created_at,"
            " (SELECT jpeg FROM faceq.sample_thumbnails WHERE sample_id = s.id) FROM faceq.samples s ORDER BY id",
            Params{}, "read samples", [&](const Row& r) {
                visit(detail::read_sample_row(r, [&](int column) { return descriptor(r, column); }));
            });
    }

    std::optional<std::string> detection_thumbnail(std::int64_t detection) override {
        return one_bytes(run("SELECT jpeg FROM faceq.detection_thumbnails WHERE detection_id = $1",
                             Params().add(detection), "read a thumbnail"));
    }

    std::optional<std::string> sample_thumbnail(std::int64_t sample) override {
        return one_bytes(
            run("SELECT coalesce((SELECT jpeg FROM faceq.sample_thumbnails WHERE sample_id = s.id),"
                " (SELECT jpeg FROM faceq.detection_thumbnails WHERE detection_id = s.detection_id))"
                " FROM faceq.samples s WHERE s.id = $1",
                Params().add(sample), "read a thumbnail"));
    }

    std::optional<std::string> person_thumbnail(std::int64_t person) override {
        // Ids first, bytes of one row after: no sort ever carries thumbnails.
        auto r =
            run("SELECT s.id FROM faceq.samples s WHERE s.person_id = $1"
                " AND (EXISTS (SELECT 1 FROM faceq.sample_thumbnails t WHERE t.sample_id = s.id)"
                " OR EXISTS (SELECT 1 FROM faceq.detection_thumbnails t WHERE t.detection_id = s.detection_id))"
                " ORDER BY s.created_at DESC, s.id DESC LIMIT 1",
                Params().add(person), "find a person's thumbnail");
        if (PQntuples(r.get())) return sample_thumbnail(Row(r.get(), 0).int64(0));
        r =
            run("SELECT d.id FROM faceq.detections d WHERE d.person_id = $1"
                " AND EXISTS (SELECT 1 FROM faceq.detection_thumbnails t WHERE t.detection_id = d.id)"
                " ORDER BY d.detected_at DESC, d.id DESC LIMIT 1",
                Params().add(person), "find a person's thumbnail");
        if (PQntuples(r.get())) return detection_thumbnail(Row(r.get(), 0).int64(0));
        return std::nullopt;
    }

    std::vector<StoredFace> missing_thumbnails() override {
        std::vector<StoredFace> out;
        auto collect = [&](const char* sql, bool sample) {
            scan(sql, Params{}, "find faces without a thumbnail", [&](const Row& r) {
                out.push_back({sample, r.int64(0), r.text(1), r.text(2), read_box(r, 3)});
            });
        };
        // Ordered as SQLite orders them (bytes; NULL paths first).
        collect(
            "SELECT d.id, i.path, i.sha256, d.box_x, d.box_y, d.box_w, d.box_h FROM faceq.detections d"
            " JOIN faceq.images i ON i.id = d.image_id"
            " WHERE NOT EXISTS (SELECT 1 FROM faceq.detection_thumbnails t WHERE t.detection_id = d.id)"
            " ORDER BY i.path COLLATE \"C\", d.id",
            false);
        collect(
            "SELECT s.id, coalesce(s.source_path, ''), s.source_sha256, s.box_x, s.box_y, s.box_w, s.box_h"
            " FROM faceq.samples s WHERE s.detection_id IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM faceq.sample_thumbnails t WHERE t.sample_id = s.id)"
            " ORDER BY s.source_path COLLATE \"C\" NULLS FIRST, s.id",
            true);
        return out;
    }

    std::optional<StoredImage> find_image(const std::string& sha256, const std::string& models) override {
        const auto r = run("SELECT id, analyzed_at FROM faceq.images WHERE sha256 = $1 AND models = $2",
                           Params().add(sha256).add(models), "find an image");
        if (!PQntuples(r.get())) return std::nullopt;
        const Row row(r.get(), 0);
        return StoredImage{row.int64(0), row.int64(1)};
    }

    std::vector<ClusterDetection> cluster_detections(const std::string& embedder) override {
        std::vector<ClusterDetection> out;
        scan(
            "SELECT d.id, d.person_id, d.descriptor FROM faceq.detections d"
            " LEFT JOIN faceq.persons p ON p.id = d.person_id"
            " WHERE d.embedder = $1 AND d.descriptor IS NOT NULL"
            " AND (p.kind = 'unknown' OR (d.person_id IS NULL AND d.decision = 'unknown')) ORDER BY d.id",
            Params().add(embedder), "read detections", [&](const Row& row) {
                out.push_back({row.int64(0), row.opt_int64(1), descriptor(row, 2)});
            });
        return out;
    }

    std::vector<StoredDescriptor> stale_descriptors(const std::string& embedder) override {
        std::vector<StoredDescriptor> out;
        auto collect = [&](const char* sql, bool sample) {
            scan(sql, Params().add(embedder), "read descriptors", [&](const Row& r) {
                out.push_back({sample, r.int64(0), r.text(1), r.text(2), read_box(r, 3), r.text(7)});
            });
        };
        // Ordered as SQLite orders them (bytes; NULL paths first).
        collect(
            "SELECT id, coalesce(source_path, ''), source_sha256, box_x, box_y, box_w, box_h, embedder"
            " FROM faceq.samples WHERE embedder <> $1 ORDER BY source_path COLLATE \"C\" NULLS FIRST, id",
            true);
        collect(
            "SELECT d.id, i.path, i.sha256, d.box_x, d.box_y, d.box_w, d.box_h, d.embedder FROM faceq.detections d"
            " JOIN faceq.images i ON i.id = d.image_id WHERE d.descriptor IS NOT NULL AND d.embedder <> $1"
            " ORDER BY i.path COLLATE \"C\", d.id",
            false);
        return out;
    }

    GalleryStats counts() override {
        const auto r =
            run("SELECT (SELECT count(*) FROM faceq.persons WHERE kind = 'known'),"
                " (SELECT count(*) FROM faceq.persons WHERE kind = 'unknown'),"
                " (SELECT count(*) FROM faceq.samples), (SELECT count(*) FROM faceq.images),"
                " (SELECT count(*) FROM faceq.detections),"
                " (SELECT count(*) FROM faceq.detections WHERE decision = 'known'),"
                " (SELECT count(*) FROM faceq.detections WHERE decision = 'unknown'),"
                " (SELECT count(*) FROM faceq.detections WHERE decision = 'ambiguous'),"
                " (SELECT max(detected_at) FROM faceq.detections)",
                Params{}, "count the gallery");
        const Row row(r.get(), 0);
        GalleryStats out;
        out.persons_known = row.int64(0);
        out.persons_unknown = row.int64(1);
        out.samples = row.int64(2);
        out.images = row.int64(3);
        out.detections = row.int64(4);
        out.detections_known = row.int64(5);
        out.detections_unknown = row.int64(6);
        out.detections_ambiguous = row.int64(7);
        out.last_detection = row.opt_int64(8);
        return out;
    }

    std::map<std::int64_t, std::int64_t> detections_per_day(std::int64_t since) override {
        const auto r =
            run("SELECT detected_at - detected_at % 86400 AS day, count(*) FROM faceq.detections"
                " WHERE detected_at >= $1 GROUP BY day",
                Params().add(since), "count detections");
        std::map<std::int64_t, std::int64_t> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
            const Row row(r.get(), i);
            out[row.int64(0)] = row.int64(1);
        }
        return out;
    }

    // ---- writer
    void lock_gallery() override {
        if (locked_) return;
        run("SELECT pg_advisory_xact_lock($1)", Params().add(gallery_lock_key), "lock the gallery");
        locked_ = true;
    }

    std::int64_t add_person(const NewPerson& p) override {
        const auto r =
            run("INSERT INTO faceq.persons (public_id, name, name_key, kind, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                Params()
                    .add(p.public_id)
                    .add(p.name)
                    .add(p.name_key)
                    .add(p.kind)
                    .add(p.now)
                    .add(p.updated_at.value_or(p.now)),
                "add a person");
        return Row(r.get(), 0).int64(0);
    }

    void touch_person(std::int64_t person, std::int64_t now) override {
        run("UPDATE faceq.persons SET updated_at = $1 WHERE id = $2", Params().add(now).add(person), "update a person");
    }

    void touch_persons(const std::vector<std::int64_t>& persons, std::int64_t now) override {
        if (persons.size() == 1) return touch_person(persons[0], now);
        if (persons.empty()) return;
        // One statement for all (the ids come sorted; a rare deadlock between two writers is retried).
        run("UPDATE faceq.persons SET updated_at = $1 WHERE id IN (SELECT unnest($2::bigint[]) ORDER BY 1)",
            Params().add(now).add_ids(persons), "update persons");
    }

    void name_person(std::int64_t person, const std::string& name, const std::string& name_key,
                     std::int64_t now) override {
        lock_gallery();  // it moves the generation (see the schema)
        run("UPDATE faceq.persons SET name = $1, name_key = $2, kind = 'known', updated_at = $3 WHERE id = $4",
            Params().add(name).add(name_key).add(now).add(person), "name a person");
    }

    void delete_person(std::int64_t person) override {
        lock_gallery();  // it moves the generation (see the schema)
        run("DELETE FROM faceq.persons WHERE id = $1", Params().add(person), "delete a person");
    }

    std::int64_t delete_forgotten_strangers(std::int64_t before) override {
        lock_gallery();  // it moves the generation (see the schema)
        return changed(
            run("DELETE FROM faceq.persons p WHERE kind = 'unknown' AND updated_at < $1"
                " AND NOT EXISTS (SELECT 1 FROM faceq.detections d WHERE d.person_id = p.id)",
                Params().add(before), "delete strangers"));
    }

    std::int64_t delete_orphan_strangers() override {
        lock_gallery();  // it moves the generation (see the schema)
        return changed(
            run("DELETE FROM faceq.persons p WHERE kind = 'unknown'"
                " AND NOT EXISTS (SELECT 1 FROM faceq.detections WHERE person_id = p.id)"
                " AND NOT EXISTS (SELECT 1 FROM faceq.samples WHERE person_id = p.id)",
                Params{}, "delete strangers"));
    }

    bool add_sample(const NewSample& x) override {
        lock_gallery();  // it moves the generation (see the schema)
        Params p;
        p.add(x.person).add(x.embedder).add_bytes(detail::floats_to_blob(x.descriptor.data(), x.descriptor.size()));
        p.add(x.source_path).add(x.source_sha256).add(x.box.x).add(x.box.y).add(x.box.width).add(x.box.height);
        p.add(x.quality).add(x.detection).add(x.created_at).add_bytes(x.thumbnail_jpeg);
        // One round trip for the sample and its thumbnail.
        const auto r =
            run("WITH s AS (INSERT INTO faceq.samples (person_id, embedder, descriptor, source_path, source_sha256,"
                " box_x, box_y, box_w, box_h, quality, detection_id, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING RETURNING id),"
                " t AS (INSERT INTO faceq.sample_thumbnails (sample_id, jpeg) SELECT id, $13::bytea FROM s"
                " WHERE $13::bytea IS NOT NULL)"
                " SELECT id FROM s",
                p, "add a sample");
        return PQntuples(r.get()) > 0;
    }

    bool add_sample_from_detection(std::int64_t person, std::int64_t detection, std::int64_t now) override {
        lock_gallery();  // it moves the generation (see the schema)
        return changed(run("INSERT INTO faceq.samples (person_id, embedder, descriptor, source_path, source_sha256,"
                           " box_x, box_y, box_w, box_h, quality, detection_id, created_at)"
                           " SELECT $1, d.embedder, d.descriptor, i.path, i.sha256, d.box_x, d.box_y, d.box_w,"
                           " d.box_h, d.confidence, d.id, $2 FROM faceq.detections d"
                           " JOIN faceq.images i ON i.id = d.image_id WHERE d.id = $3 AND d.descriptor IS NOT NULL"
                           " ON CONFLICT DO NOTHING",
                           Params().add(person).add(now).add(detection), "add a sample")) > 0;
    }

    void move_samples(std::int64_t from, std::int64_t into) override {
        lock_gallery();  // it moves the generation (see the schema)
        // SQLite's UPDATE OR IGNORE: a sample `into` has already stays.
        static const std::string sql = fmt::format(
            "UPDATE faceq.samples s SET person_id = $1 WHERE s.person_id = $2 AND NOT EXISTS"
            " (SELECT 1 FROM faceq.samples t WHERE t.person_id = $1 AND {})",
            fmt::format(fmt::runtime(same_sample_key), fmt::arg("e", "s.embedder"), fmt::arg("x", "s.box_x"),
                        fmt::arg("y", "s.box_y"), fmt::arg("w", "s.box_w"), fmt::arg("h", "s.box_h")));
        run(sql.c_str(), Params().add(into).add(from), "move samples");
    }

    bool redescribe(const Redescription& r) override {
        lock_gallery();  // it moves the generation (see the schema)
        Params p;
        p.add(r.embedder).add_bytes(detail::floats_to_blob(r.descriptor.data(), r.descriptor.size()));
        p.add(r.box.x).add(r.box.y).add(r.box.width).add(r.box.height).add(r.which.id);
        if (!r.which.sample) {
            run("UPDATE faceq.detections SET embedder = $1, descriptor = $2, box_x = $3, box_y = $4, box_w = $5,"
                " box_h = $6 WHERE id = $7",
                p, "re-describe a detection");
            // A rejection keeps its detection's descriptor: it follows the new one.
            Params q;
            q.add(r.embedder).add_bytes(detail::floats_to_blob(r.descriptor.data(), r.descriptor.size()));
            q.add(r.which.id);
            run("UPDATE faceq.rejections SET embedder = $1, descriptor = $2 WHERE detection_id = $3", q,
                "re-describe a rejection");
            return true;
        }
        static const std::string sql = fmt::format(
            "UPDATE faceq.samples s SET embedder = $1, descriptor = $2, box_x = $3, box_y = $4, box_w = $5,"
            " box_h = $6 WHERE s.id = $7 AND NOT EXISTS (SELECT 1 FROM faceq.samples t WHERE t.person_id ="
            " s.person_id AND t.id <> s.id AND {})",
            fmt::format(fmt::runtime(same_sample_key), fmt::arg("e", "$1"), fmt::arg("x", "$3"), fmt::arg("y", "$4"),
                        fmt::arg("w", "$5"), fmt::arg("h", "$6")));
        if (changed(run(sql.c_str(), p, "re-describe a sample")) > 0) return true;
        run("DELETE FROM faceq.samples WHERE id = $1", Params().add(r.which.id), "delete a sample");
        return false;
    }

    std::optional<std::int64_t> add_image(const ImageFacts& image, std::int64_t now) override {
        const auto r =
            run("INSERT INTO faceq.images (path, sha256, size, mtime, analyzed_at, models)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256, models) DO NOTHING RETURNING id",
                Params()
                    .add(image.path)
                    .add(image.sha256)
                    .add(static_cast<std::int64_t>(image.size))
                    .add(image.mtime)
                    .add(now)
                    .add(image.models),
                "add an image");
        if (!PQntuples(r.get())) return std::nullopt;  // stored already (perhaps a moment ago, by another writer)
        return Row(r.get(), 0).int64(0);
    }

    void reset_image(std::int64_t image, const ImageFacts& facts, std::int64_t now) override {
        run("DELETE FROM faceq.detections WHERE image_id = $1", Params().add(image), "reset an image");
        run("UPDATE faceq.images SET path = $1, size = $2, mtime = $3, analyzed_at = $4 WHERE id = $5",
            Params().add(facts.path).add(static_cast<std::int64_t>(facts.size)).add(facts.mtime).add(now).add(image),
            "reset an image");
    }

    std::int64_t add_detection(const NewDetection& d) override {
        Params p;
        p.add(d.image).add(d.box.x).add(d.box.y).add(d.box.width).add(d.box.height).add(d.confidence);
        p.add(d.person).add(std::string(to_string(d.decision))).add(d.distance).add(d.margin).add(d.age).add(d.gender);
        if (d.descriptor) {
            p.add(d.embedder).add_bytes(detail::floats_to_blob(d.descriptor->data(), d.descriptor->size()));
        } else {
            p.add(std::optional<std::string>()).add(std::optional<std::string>());
        }
        p.add(d.detected_at).add_bytes(d.thumbnail_jpeg);
        // One round trip for the detection and its thumbnail.
        const auto r =
            run("WITH d AS (INSERT INTO faceq.detections (image_id, box_x, box_y, box_w, box_h, confidence,"
                " person_id, decision, distance, margin, age, gender, embedder, descriptor, detected_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::bytea, $15) RETURNING id),"
                " t AS (INSERT INTO faceq.detection_thumbnails (detection_id, jpeg) SELECT id, $16::bytea FROM d"
                " WHERE $16::bytea IS NOT NULL)"
                " SELECT id FROM d",
                p, "add a detection");
        return Row(r.get(), 0).int64(0);
    }

    void reassign_detection(std::int64_t detection, std::int64_t person, Decision decision) override {
        lock_gallery();  // it moves the generation (see the schema)
        run("UPDATE faceq.detections SET person_id = $1, decision = $2 WHERE id = $3",
            Params().add(person).add(std::string(to_string(decision))).add(detection), "reassign a detection");
        static const std::string sql = fmt::format(
            "UPDATE faceq.samples s SET person_id = $1 WHERE s.detection_id = $2 AND NOT EXISTS"
            " (SELECT 1 FROM faceq.samples t WHERE t.person_id = $1 AND {})",
            fmt::format(fmt::runtime(same_sample_key), fmt::arg("e", "s.embedder"), fmt::arg("x", "s.box_x"),
                        fmt::arg("y", "s.box_y"), fmt::arg("w", "s.box_w"), fmt::arg("h", "s.box_h")));
        run(sql.c_str(), Params().add(person).add(detection), "reassign a sample");
    }

    void move_detections(std::int64_t from, std::int64_t into, Decision decision) override {
        run("UPDATE faceq.detections SET person_id = $1,"
            " decision = CASE WHEN decision = 'ambiguous' THEN decision ELSE $2 END WHERE person_id = $3",
            Params().add(into).add(std::string(to_string(decision))).add(from), "move detections");
    }

    void redecide_detections(std::int64_t person, Decision from, Decision to) override {
        run("UPDATE faceq.detections SET decision = $1 WHERE person_id = $2 AND decision = $3",
            Params().add(std::string(to_string(to))).add(person).add(std::string(to_string(from))),
            "update detections");
    }

    std::int64_t delete_detections_before(std::int64_t before) override {
        lock_gallery();  // deleting rejections moves the generation (see the schema)
        run("DELETE FROM faceq.rejections WHERE detection_id IN"
            " (SELECT id FROM faceq.detections WHERE detected_at < $1)",
            Params().add(before), "delete rejections");
        return changed(
            run("DELETE FROM faceq.detections WHERE detected_at < $1", Params().add(before), "delete detections"));
    }

    void attribute_detection(std::int64_t detection, std::optional<std::int64_t> person, Decision decision) override {
        run("UPDATE faceq.detections SET person_id = $1, decision = $2 WHERE id = $3",
            Params().add(person).add(std::string(to_string(decision))).add(detection), "attribute a detection");
    }

    std::int64_t add_rejection(const NewRejection& x) override {
        lock_gallery();  // it moves the generation (see the schema)
        Params p;
        p.add(x.person).add(x.detection);
        if (x.descriptor)
            p.add(x.embedder).add_bytes(detail::floats_to_blob(x.descriptor->data(), x.descriptor->size()));
        else
            p.add(std::optional<std::string>()).add(std::optional<std::string>());
        p.add(std::string(to_string(x.decision))).add(std::string(x.had_sample ? "true" : "false")).add(x.created_at);
        const auto r =
            run("INSERT INTO faceq.rejections (person_id, detection_id, embedder, descriptor, decision, had_sample,"
                " created_at) VALUES ($1, $2, $3, $4::bytea, $5, $6, $7) RETURNING id",
                p, "add a rejection");
        return Row(r.get(), 0).int64(0);
    }

    void delete_rejection(std::int64_t rejection) override {
        lock_gallery();  // it moves the generation (see the schema)
        run("DELETE FROM faceq.rejections WHERE id = $1", Params().add(rejection), "delete a rejection");
    }

    void relink_rejection(std::int64_t rejection, std::int64_t detection) override {
        run("UPDATE faceq.rejections r SET detection_id = $1 WHERE r.id = $2 AND r.detection_id IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM faceq.rejections t WHERE t.person_id = r.person_id AND t.detection_id = $1)",
            Params().add(detection).add(rejection), "relink a rejection");
    }

    void move_rejections(std::int64_t from, std::int64_t into) override {
        lock_gallery();  // it moves the generation (see the schema)
        run("UPDATE faceq.rejections r SET person_id = $1 WHERE r.person_id = $2 AND NOT EXISTS"
            " (SELECT 1 FROM faceq.rejections t WHERE t.person_id = $1 AND t.detection_id = r.detection_id)",
            Params().add(into).add(from), "move rejections");
    }

    std::int64_t delete_detection_samples(std::int64_t person, std::int64_t detection) override {
        lock_gallery();  // it moves the generation (see the schema)
        return changed(run("DELETE FROM faceq.samples WHERE person_id = $1 AND detection_id = $2",
                           Params().add(person).add(detection), "delete a sample"));
    }

    bool add_thumbnail(bool sample, std::int64_t id, const std::string& jpeg) override {
        return changed(run(sample ? "INSERT INTO faceq.sample_thumbnails (sample_id, jpeg)"
                                    " SELECT id, $2::bytea FROM faceq.samples WHERE id = $1 ON CONFLICT DO NOTHING"
                                  : "INSERT INTO faceq.detection_thumbnails (detection_id, jpeg)"
                                    " SELECT id, $2::bytea FROM faceq.detections WHERE id = $1 ON CONFLICT DO NOTHING",
                           Params().add(id).add_bytes(jpeg), "add a thumbnail")) > 0;
    }

private:
    void connect() {
        conn_ = PQconnectdb(url_.c_str());
        if (!conn_) throw Error(ErrorKind::database, "cannot allocate a PostgreSQL connection");
        if (PQstatus(conn_) != CONNECTION_OK) {
            const std::string why = first_line(PQerrorMessage(conn_));
            PQfinish(conn_);
            conn_ = nullptr;
            throw Error(ErrorKind::database, fmt::format("cannot connect to the gallery database: {}", why));
        }
        const std::string host = PQhost(conn_) ? PQhost(conn_) : "";
        if (host.empty() || host[0] == '/')  // a Unix socket's directory
            description_ =
                fmt::format("postgresql://{}@/{}?host={}&port={}", PQuser(conn_), PQdb(conn_), host, PQport(conn_));
        else
            description_ = fmt::format("postgresql://{}@{}:{}/{}", PQuser(conn_), host, PQport(conn_), PQdb(conn_));
        // Notices ("schema faceq already exists, skipping") are not for users.
        PQsetNoticeProcessor(
            conn_, [](void*, const char*) {}, nullptr);
    }

    void reconnect() {
        PQreset(conn_);
        prepared_.clear();
        if (PQstatus(conn_) != CONNECTION_OK)
            throw TransientError(
                fmt::format("cannot reconnect to {}: {}", description_, first_line(PQerrorMessage(conn_))));
    }

    void migrate() {
        begin("BEGIN");
        try {
            run("SELECT pg_advisory_xact_lock($1)", Params().add(gallery_lock_key), "lock the gallery");
            const auto r = run("SELECT to_regclass('faceq.meta') IS NOT NULL", Params{}, "read the schema");
            const int from = Row(r.get(), 0).int64(0) ? schema_version() : 0;
            if (from > latest_version)
                throw Error(ErrorKind::invalid_input,
                            fmt::format("database {} has gallery schema version {}, newer than this faceq understands "
                                        "({}); upgrade faceq",
                                        description_, from, latest_version));
            if (from == 0 && !options_.create)
                throw Error(ErrorKind::not_found, fmt::format("no gallery in {}", description_));
            for (int v = from; v < latest_version; ++v) exec(migrations[v], "create the gallery's tables");
            if (from < latest_version)
                run("UPDATE faceq.meta SET value = $1 WHERE key = 'schema_version'", Params().add(latest_version),
                    "record the schema version");
            finish(true);
        } catch (...) {
            recover();
            throw;
        }
    }

    // The log's largest generation (an index's last entry), or where the log
    // starts when it is empty.
    std::int64_t current_generation() {
        const auto r =
            run("SELECT greatest((SELECT max(generation) FROM faceq.person_changes),"
                " (SELECT value FROM faceq.meta WHERE key = 'changes_from'))",
                Params{}, "read the generation");
        return Row(r.get(), 0).int64(0);
    }

    std::int64_t meta(const char* key) {
        const auto r = run("SELECT value FROM faceq.meta WHERE key = $1", Params().add(key), "read the generation");
        return Row(r.get(), 0).int64(0);
    }

    // Runs SQL without parameters or results (several statements allowed).
    void exec(const char* sql, const char* what) {
        ++statements_;
        ResultPtr r(PQexec(conn_, sql), &PQclear);
        check(r.get(), what);
    }

    // The prepared statement for this SQL text (keyed by its address: each is
    // a literal or a static string of one call site), prepared on first use.
    const std::string& statement(const char* sql, const Params& params, const char* what) {
        auto it = prepared_.find(sql);
        if (it != prepared_.end()) return it->second;
        std::string name = fmt::format("faceq_{}", prepared_.size());
        ResultPtr r(PQprepare(conn_, name.c_str(), sql, params.size(), nullptr), &PQclear);
        check(r.get(), what);
        return prepared_.emplace(sql, std::move(name)).first->second;
    }

    ResultPtr run(const char* sql, const Params& params, const char* what) {
        ++statements_;
        const std::string& name = statement(sql, params, what);
        std::vector<const char*> values;
        std::vector<int> lengths, formats;
        params.arrays(values, lengths, formats);
        ResultPtr r(
            PQexecPrepared(conn_, name.c_str(), params.size(), values.data(), lengths.data(), formats.data(), 1),
            &PQclear);
        check(r.get(), what);
        return r;
    }

    // Runs a query and hands each row to `visit` as it arrives (single-row
    // mode: a scan of a million samples never holds them all).
    void scan(const char* sql, const Params& params, const char* what, const std::function<void(const Row&)>& visit) {
        ++statements_;
        const std::string& name = statement(sql, params, what);
        std::vector<const char*> values;
        std::vector<int> lengths, formats;
        params.arrays(values, lengths, formats);
        if (!PQsendQueryPrepared(conn_, name.c_str(), params.size(), values.data(), lengths.data(), formats.data(), 1))
            fail(nullptr, what);
        PQsetSingleRowMode(conn_);
        std::optional<Error> error;
        std::exception_ptr thrown;
        // Every result is read, even after a failure: the connection must be
        // idle again for the next statement.
        while (PGresult* raw = PQgetResult(conn_)) {
            ResultPtr r(raw, &PQclear);
            const auto status = PQresultStatus(raw);
            if (status == PGRES_SINGLE_TUPLE) {
                if (thrown) continue;
                try {
                    visit(Row(raw, 0));
                } catch (...) {
                    thrown = std::current_exception();
                }
            } else if (status != PGRES_TUPLES_OK && !thrown) {
                try {
                    check(raw, what);
                } catch (...) {
                    thrown = std::current_exception();
                }
            }
        }
        if (thrown) std::rethrow_exception(thrown);
    }

    void check(const PGresult* r, const char* what) {
        const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_SINGLE_TUPLE) return;
        fail(r, what);
    }

    [[noreturn]] void fail(const PGresult* r, const char* what) {
        const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
        const std::string message =
            fmt::format("cannot {} ({}): {}", what, description_,
                        first_line(r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(conn_)));
        if (PQstatus(conn_) != CONNECTION_OK || (state && transient_state(state))) throw TransientError(message);
        throw Error(ErrorKind::database, message);
    }

    // The first row's first column's bytes; nullopt for no row or NULL.
    static std::optional<std::string> one_bytes(const ResultPtr& r) {
        if (!PQntuples(r.get()) || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
        return Row(r.get(), 0).text(0);
    }

    static std::int64_t changed(const ResultPtr& r) {
        const char* n = PQcmdTuples(r.get());
        return n && *n ? std::stoll(n) : 0;
    }

    Descriptor descriptor(const Row& row, int col) const {
        Descriptor d{};
        std::size_t size = 0;
        const char* p = row.bytes(col, size);
        if (!detail::blob_to_floats(p, size, d.data(), d.size()))
            throw Error(ErrorKind::database,
                        fmt::format("database {} holds a descriptor of {} bytes (expected 512)", description_, size));
        return d;
    }

    std::string url_;
    Options options_;
    PGconn* conn_ = nullptr;
    std::string description_;
    std::unordered_map<const char*, std::string> prepared_;
    bool locked_ = false;           // this transaction holds the gallery's advisory lock
    std::uint64_t statements_ = 0;  // run so far (BEGIN included): when it has not moved, nothing changed
    std::uint64_t probe_at_ = ~std::uint64_t{0};
    std::int64_t probe_value_ = 0;
};

// ---------------------------------------------------------------- PgStore

PgStore::PgStore(const std::string& url, const Options& options)
    : conn_(std::make_unique<Connection>(url, options)), options_(options) {}

PgStore::~PgStore() = default;

int PgStore::latest_schema_version() { return latest_version; }

void PgStore::read(const std::function<void(StoreReader&)>& body) {
    run_with_retries(
        [&] {
            try {
                conn_->begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
                body(*conn_);
                conn_->finish(true);
            } catch (...) {
                conn_->recover();
                throw;
            }
        },
        options_.retry, options_.log);
}

void PgStore::write(const std::function<void(StoreWriter&)>& body, Finish finish, Lock lock) {
    run_with_retries(
        [&] {
            try {
                conn_->reset_lock();
                conn_->begin("BEGIN");
                if (lock == Lock::at_start) conn_->lock_gallery();
                body(*conn_);
                if (finish == Finish::commit && ++writes_ % 256 == 0) conn_->trim_change_log();
                conn_->finish(finish == Finish::commit);
            } catch (...) {
                conn_->recover();
                throw;
            }
        },
        options_.retry, options_.log);
}

int PgStore::schema_version() { return conn_->schema_version(); }

std::uint64_t PgStore::database_bytes() { return conn_->database_bytes(); }

std::string PgStore::description() const { return conn_->description(); }

}  // namespace faceq
