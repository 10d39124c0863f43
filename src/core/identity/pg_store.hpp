// pg_store.hpp — the gallery in a PostgreSQL database, for many processes on
// many machines writing one gallery: GalleryStore (faceq/identity/store.hpp)
// over libpq. Private to the core; open_gallery() (session/identification.hpp)
// builds one for `--db URL` / FACEQ_DB.
//
// Connecting: the URL or key=value string goes to libpq as given, so
// everything libpq reads works as PostgreSQL users expect: sslmode and the
// other TLS settings, ~/.pgpass, service files (PGSERVICE), PGHOST & co. The
// password never appears in description() or in a message.
//
// The schema lives in the PostgreSQL schema `faceq` of that database (tables
// persons, images, detections, samples, meta, person_changes: the SQLite
// gallery's, with bigint ids, bytea descriptors of 512 bytes beside their
// embedder id, and text compared with COLLATE "C"). Migrations are keyed by
// faceq.meta's schema_version; opening runs the missing ones in one
// transaction under the gallery's advisory lock, so two processes opening an
// empty database create the schema once. A released migration is never
// edited. A database of a newer schema is refused (Error{invalid_input}); one
// without the schema is Error{not_found} when Options::create is off.
//
// Transactions: read() is REPEATABLE READ READ ONLY (one snapshot); write()
// is READ COMMITTED and takes pg_advisory_xact_lock(<faceq's key>) at its
// start (Lock::at_start) or when the body asks (lock_gallery()). A write's
// retried failures (TransientError): serialization failures and deadlocks
// (SQLSTATE class 40), lost or refused connections (class 08, 57P01-57P03;
// the connection is re-opened before the next attempt), too many connections
// (53300), and a foreign key violation (23503: a person deleted by another
// transaction since this one read it).
// Statements are prepared once per connection (again after a reconnection);
// every value travels as a parameter, descriptors in binary. Change
// detection: the probe is the generation itself, the last entry of the
// person_changes log that triggers keep (numbers from a sequence; every
// write that logs takes the advisory lock first, so the numbers commit in
// order).
//
// Errors: Error{database} "<what> (<description>): <server message>", the
// message's first line. Thread-safety: one connection, used by one thread at
// a time (Gallery's mutex); any number of processes may share the database.
#pragma once

#include <memory>
#include <string>

#include "faceq/identity/store.hpp"

namespace faceq {

class PgStore final : public GalleryStore {
public:
    struct Options {
        bool create = true;  // create the schema when missing, else Error{not_found}
        RetryPolicy retry;
        LogFn log;  // says when a transaction is tried again
    };

    PgStore(const std::string& url, const Options& options);
    ~PgStore() override;
    PgStore(const PgStore&) = delete;
    PgStore& operator=(const PgStore&) = delete;

    // The schema version this faceq creates and understands.
    static int latest_schema_version();

    void read(const std::function<void(StoreReader&)>& body) override;
    using GalleryStore::write;
    void write(const std::function<void(StoreWriter&)>& body, Finish finish, Lock lock) override;
    int schema_version() override;
    // The size of faceq's tables and their indexes.
    std::uint64_t database_bytes() override;
    // postgresql://user@host:port/dbname, without password or options.
    std::string description() const override;

private:
    class Connection;
    std::unique_ptr<Connection> conn_;
    Options options_;
    std::uint64_t writes_ = 0;
};

// True when `location` names a PostgreSQL database (a postgresql:// or
// postgres:// URL, or a libpq key=value string), not an SQLite file.
bool is_postgres_url(const std::string& location);

// A PostgreSQL URL or key=value string as postgresql://user@host:port/dbname
// (the parts it gives), without password or other options; "a PostgreSQL
// database" when libpq cannot parse it.
std::string describe_postgres_url(const std::string& url);

}  // namespace faceq
