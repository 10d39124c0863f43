#include "base/sqlite_db.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "faceq/base/error.hpp"

namespace faceq::detail {

// ---------------------------------------------------------------- Db

Db::Db(const std::filesystem::path& path, OpenMode mode, int busy_timeout_ms)
    : path_(path), busy_timeout_ms_(busy_timeout_ms) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (mode == OpenMode::read_write_create) flags |= SQLITE_OPEN_CREATE;
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        const std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw Error(ErrorKind::database, fmt::format("cannot open database '{}': {}", path.string(), why));
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    try {
        // journal_mode=WAL is persistent in the file; asking again is a cheap read.
        {
            Stmt wal(*this, "PRAGMA journal_mode=WAL");
            if (!wal.step() || wal.text(0) != "wal")
                throw Error(
                    ErrorKind::database,
                    fmt::format("cannot use WAL journal for database '{}' (a network file system?)", path.string()));
        }
        exec("PRAGMA foreign_keys=ON");
        // NORMAL is durable across application crashes in WAL mode; only a power
        // loss may lose the last transactions (never corrupt the file).
        exec("PRAGMA synchronous=NORMAL");
    } catch (...) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw;
    }
}

Db::~Db() {
    if (db_) sqlite3_close_v2(db_);
}

void Db::fail(int rc, const std::string& what) const {
    const std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    throw Error(ErrorKind::database, fmt::format("{} '{}': {}", what, path_.string(), why));
}

void Db::check(int rc, const char* what) const {
    if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) fail(rc, what);
}

void Db::exec(const char* sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        const std::string why = message ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        throw Error(ErrorKind::database, fmt::format("database '{}': {}", path_.string(), why));
    }
}

std::int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }

std::int64_t Db::data_version() {
    Stmt s(*this, "PRAGMA data_version");
    s.step();
    return s.int64(0);
}

// ---------------------------------------------------------------- Stmt

Stmt::Stmt(Db& db, const char* sql) : db_(&db) {
    const int rc = sqlite3_prepare_v2(db.handle(), sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail(rc, "cannot prepare a statement for database");
}

Stmt::~Stmt() {
    if (stmt_) sqlite3_finalize(stmt_);
}

Stmt::Stmt(Stmt&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }

Stmt& Stmt::bind(int index, std::int64_t value) {
    db_->check(sqlite3_bind_int64(stmt_, index, value), "cannot bind a value for database");
    return *this;
}

Stmt& Stmt::bind(int index, double value) {
    db_->check(sqlite3_bind_double(stmt_, index, value), "cannot bind a value for database");
    return *this;
}

Stmt& Stmt::bind(int index, const std::string& value) {
    db_->check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT),
               "cannot bind a value for database");
    return *this;
}

Stmt& Stmt::bind_blob(int index, const void* data, std::size_t size) {
    db_->check(sqlite3_bind_blob(stmt_, index, data, static_cast<int>(size), SQLITE_TRANSIENT),
               "cannot bind a value for database");
    return *this;
}

Stmt& Stmt::bind_null(int index) {
    db_->check(sqlite3_bind_null(stmt_, index), "cannot bind a value for database");
    return *this;
}

bool Stmt::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    const std::string what = fmt::format("cannot run \"{:.60}\" on database", sqlite3_sql(stmt_));
    sqlite3_reset(stmt_);
    db_->fail(rc, what);
}

void Stmt::run() {
    while (step()) {
    }
    reset();
}

void Stmt::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

bool Stmt::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
std::int64_t Stmt::int64(int column) const { return sqlite3_column_int64(stmt_, column); }
double Stmt::real(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Stmt::text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    const int n = sqlite3_column_bytes(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

std::optional<std::string> Stmt::opt_text(int column) const {
    if (is_null(column)) return std::nullopt;
    return text(column);
}

std::optional<double> Stmt::opt_real(int column) const {
    if (is_null(column)) return std::nullopt;
    return real(column);
}

std::optional<std::int64_t> Stmt::opt_int64(int column) const {
    if (is_null(column)) return std::nullopt;
    return int64(column);
}

const void* Stmt::blob(int column, std::size_t& size) const {
    const void* p = sqlite3_column_blob(stmt_, column);
    size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
    return p;
}

// ---------------------------------------------------------------- Transaction

Transaction::Transaction(Db& db) : db_(db) {
    // The busy handler waits up to the busy timeout inside sqlite3_exec; SQLite
    // skips it in a few WAL situations (another connection running recovery),
    // so BUSY is retried here too, for as long again.
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(db.busy_timeout_ms());
    auto pause = std::chrono::milliseconds(2);
    for (;;) {
        const int rc = sqlite3_exec(db.handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
        if (rc == SQLITE_OK) return;
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) db.fail(rc, "cannot start a write on database");
        if (Clock::now() >= deadline) db.fail(rc, "cannot start a write on database (busy for too long)");
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(100));
    }
}

Transaction::~Transaction() {
    if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    // COMMIT in WAL mode needs no further lock: it cannot be BUSY once the
    // write lock is held, but check anyway.
    const int rc = sqlite3_exec(db_.handle(), "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) db_.fail(rc, "cannot commit to database");
    done_ = true;
}

ReadTransaction::ReadTransaction(Db& db) : db_(db), owner_(sqlite3_get_autocommit(db.handle()) != 0) {
    if (owner_) db.exec("BEGIN");
}

ReadTransaction::~ReadTransaction() {
    if (owner_) sqlite3_exec(db_.handle(), "COMMIT", nullptr, nullptr, nullptr);
}

}  // namespace faceq::detail
