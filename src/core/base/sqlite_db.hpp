// sqlite_db.hpp — a small RAII adapter over SQLite's C API, private to the
// core (the SQLite gallery store, identity/sqlite_store.cpp, is its only user;
// no sqlite3 type leaves src/core).
//
// Db owns one connection: opened with foreign keys on, WAL journal, a busy
// timeout, and extended result codes. Stmt owns one prepared statement;
// values are bound by position (1-based) and read by column (0-based). There
// is no way to run SQL with values pasted into it: every value goes through
// bind(). Transaction is BEGIN IMMEDIATE ... COMMIT, rolled back by the
// destructor unless committed; BEGIN IMMEDIATE takes the write lock up front,
// so two writers queue on the busy timeout instead of failing with
// SQLITE_BUSY when a read transaction would have to be upgraded. The begin is
// also retried (with back-off, up to `busy_timeout_ms` more) for the cases
// where SQLite reports BUSY without waiting (WAL recovery by another process).
//
// Errors: every SQLite failure throws Error{database} "<operation> '<db path>':
// <sqlite message>". Thread-safety: none; one thread uses a Db at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace faceq::detail {

class Db;

class Stmt {
public:
    Stmt(Db& db, const char* sql);
    ~Stmt();
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    Stmt(Stmt&& other) noexcept;
    Stmt& operator=(Stmt&&) = delete;

    Stmt& bind(int index, std::int64_t value);
    Stmt& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
    Stmt& bind(int index, double value);
    Stmt& bind(int index, const std::string& value);
    Stmt& bind(int index, const char* value) { return bind(index, std::string(value)); }
    Stmt& bind_blob(int index, const void* data, std::size_t size);
    Stmt& bind_null(int index);
    template <typename T>
    Stmt& bind(int index, const std::optional<T>& value) {
        return value ? bind(index, *value) : bind_null(index);
    }

    // Advances: true when a row is ready, false when done. Throws on error.
    bool step();
    // Runs a statement that returns no rows (or ignores them) and resets it.
    void run();
    // Ready for another run with new bindings.
    void reset();

    bool is_null(int column) const;
    std::int64_t int64(int column) const;
    double real(int column) const;
    std::string text(int column) const;
    std::optional<std::string> opt_text(int column) const;
    std::optional<double> opt_real(int column) const;
    std::optional<std::int64_t> opt_int64(int column) const;
    // Pointer valid until the next step/reset; size in bytes.
    const void* blob(int column, std::size_t& size) const;

private:
    Db* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

enum class OpenMode { read_write_create, read_write };

class Db {
public:
    Db(const std::filesystem::path& path, OpenMode mode, int busy_timeout_ms);
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    // Runs SQL without parameters (schema, pragmas). Never for values.
    void exec(const char* sql);
    std::int64_t last_insert_rowid() const;
    int changes() const;
    // PRAGMA data_version: changes when another connection commits.
    std::int64_t data_version();
    int busy_timeout_ms() const { return busy_timeout_ms_; }

    const std::filesystem::path& path() const { return path_; }
    sqlite3* handle() const { return db_; }
    // Throws Error{database} naming `what` and the database when rc is an error.
    void check(int rc, const char* what) const;
    [[noreturn]] void fail(int rc, const std::string& what) const;

private:
    sqlite3* db_ = nullptr;
    std::filesystem::path path_;
    int busy_timeout_ms_;
};

class Transaction {
public:
    explicit Transaction(Db& db);  // BEGIN IMMEDIATE, retried while busy
    ~Transaction();                // ROLLBACK unless committed
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    Db& db_;
    bool done_ = false;
};

// A deferred (read) transaction: one consistent snapshot for several
// SELECTs. Inside another transaction it does nothing (that one already is).
class ReadTransaction {
public:
    explicit ReadTransaction(Db& db);
    ~ReadTransaction();
    ReadTransaction(const ReadTransaction&) = delete;
    ReadTransaction& operator=(const ReadTransaction&) = delete;

private:
    Db& db_;
    bool owner_;
};

}  // namespace faceq::detail
