// sqlite_store.hpp — the gallery in one SQLite file ($FACEQ_HOME/faceq.db):
// GalleryStore (faceq/identity/store.hpp) over base/sqlite_db.hpp. Private to
// the core; Gallery(path) builds one.
//
// The file: WAL journal (readers never wait for the writer), a busy timeout,
// foreign keys on, synchronous=NORMAL. Schema migrations are keyed by PRAGMA
// user_version; opening runs the missing ones in one BEGIN IMMEDIATE
// transaction, so two processes opening an old file migrate it once. A
// released migration is never edited: a change is a new one appended to the
// list (sqlite_store.cpp). write() is BEGIN IMMEDIATE (the writer lock of the
// stranger contract, retried with back-off while another process holds it
// for up to the busy timeout); read() is a deferred transaction. Change
// detection: PRAGMA data_version as the probe; a meta.generation counter and
// a person_changes log that triggers keep on every change to samples and to
// persons' identity columns (trimmed every 256th write). Every value
// goes through a bound parameter of a prepared statement; statements are
// prepared once per connection and kept.
//
// Errors: Error{not_found} for a missing file without `create`, Error{io} when
// its folder cannot be created, Error{invalid_input} for a newer schema,
// Error{database} "<operation> '<path>': <sqlite message>" for the rest.
// Thread-safety: one connection, used by one thread at a time (Gallery's
// mutex); several processes may open the same file at once.
#pragma once

#include <filesystem>
#include <memory>

#include "faceq/identity/store.hpp"

namespace faceq {

class SqliteStore final : public GalleryStore {
public:
    struct Options {
        int busy_timeout_ms = 30000;
        bool create = true;  // create the file (and its folder) when missing, else Error{not_found}
        RetryPolicy retry;
        LogFn log;  // says when a transaction is tried again
    };

    SqliteStore(const std::filesystem::path& path, const Options& options);
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    // The schema version this faceq creates and understands.
    static int latest_schema_version();

    void read(const std::function<void(StoreReader&)>& body) override;
    using GalleryStore::write;
    void write(const std::function<void(StoreWriter&)>& body, Finish finish, Lock lock) override;
    int schema_version() override;
    std::uint64_t database_bytes() override;
    std::string description() const override;

private:
    class Connection;
    std::unique_ptr<Connection> conn_;
    Options options_;
    std::uint64_t writes_ = 0;  // committed writes, to trim the change log now and then
};

}  // namespace faceq
