// tests/test_gallery_db.hpp — the gallery tests run on both engines: one test
// case, run once per engine by Catch2's GENERATE (GALLERY_ENGINE()), each run
// with a fresh database (TestGalleryDb).
//
// SQLite: a file in the test's folder. PostgreSQL: a new database on the
// server FACEQ_TEST_PG names (an administrator's URL ending in /<dbname>;
// tools/test.sh starts a throw-away server with tools/pg_cluster.sh and sets
// it), created for the test and dropped after it. Without FACEQ_TEST_PG the
// PostgreSQL run of a test is missing test data (test_support.hpp): it fails,
// or with FACEQ_REQUIRE_DATA=0 is skipped and counted.
#pragma once

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "faceq/identity/gallery.hpp"
#include "test_sqlite.hpp"
#include "test_support.hpp"

namespace faceq::test {

// The administrator URL of the test server, or "" when none is set.
inline std::string test_pg_url() {
    const char* v = std::getenv("FACEQ_TEST_PG");
    return v ? v : "";
}

// Runs one SQL command on the test server's administrator database.
inline void pg_admin(const std::string& sql) {
    PGconn* c = PQconnectdb(test_pg_url().c_str());
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);  // "database ... does not exist, skipping"
    const bool connected = PQstatus(c) == CONNECTION_OK;
    std::string error = connected ? "" : PQerrorMessage(c);
    if (connected) {
        PGresult* r = PQexec(c, sql.c_str());
        if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
        PQclear(r);
    }
    PQfinish(c);
    if (!error.empty()) FAIL("PostgreSQL test server (" << sql << "): " << error);
}

// FACEQ_TEST_PG with its database name replaced by `db`.
inline std::string test_pg_url_for(const std::string& db) {
    const std::string admin = test_pg_url();
    const auto query = admin.find('?');
    const auto slash = admin.rfind('/', query);
    return admin.substr(0, slash + 1) + db + (query == std::string::npos ? "" : admin.substr(query));
}

// One test's gallery database; dropped (PostgreSQL) when it goes.
class TestGalleryDb {
public:
    TestGalleryDb(const std::string& engine, const std::filesystem::path& dir) : engine_(engine) {
        if (engine_ == "sqlite") {
            location_ = (dir / "faceq.db").string();
            return;
        }
        static std::atomic<int> counter{0};
        name_ = "faceq_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
        pg_admin("DROP DATABASE IF EXISTS " + name_);
        pg_admin("CREATE DATABASE " + name_);
        location_ = test_pg_url_for(name_);
    }
    ~TestGalleryDb() {
        if (name_.empty()) return;
        // Every connection of the test is closed by now (galleries are
        // scoped inside the test); FORCE ends a leaked one.
        PGconn* c = PQconnectdb(test_pg_url().c_str());
        if (PQstatus(c) == CONNECTION_OK)
            PQclear(PQexec(c, ("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)").c_str()));
        PQfinish(c);
    }
    TestGalleryDb(const TestGalleryDb&) = delete;
    TestGalleryDb& operator=(const TestGalleryDb&) = delete;

    bool postgres() const { return engine_ == "postgresql"; }
    const std::string& engine() const { return engine_; }
    // The path or URL Gallery::open takes (and --db / FACEQ_DB for PostgreSQL).
    const std::string& location() const { return location_; }
    std::unique_ptr<Gallery> open(bool create = true) const {
        Gallery::Options options;
        options.create = create;
        return Gallery::open(location_, options);
    }
    // The CLI's environment for this gallery: FACEQ_DB for PostgreSQL (the
    // SQLite gallery is the home's file, which must be this one's folder).
    std::vector<std::string> env() const {
        return postgres() ? std::vector<std::string>{"FACEQ_DB=" + location_} : std::vector<std::string>{};
    }

private:
    std::string engine_, location_, name_;
};

// The first column of the first row of `sql` run on the gallery (plain
// sqlite3 or libpq, with PostgreSQL's search_path at faceq's schema: the
// same SQL for both where it is portable), as text; "" for NULL.
inline std::string db_text(const TestGalleryDb& db, const std::string& sql) {
    if (!db.postgres()) return db_text(std::filesystem::path(db.location()), sql);
    PGconn* c = PQconnectdb(db.location().c_str());
    INFO(sql);
    std::string error, value;
    bool row = false;
    if (PQstatus(c) != CONNECTION_OK) {
        error = PQerrorMessage(c);
    } else {
        PQclear(PQexec(c, "SET search_path = faceq"));
        PGresult* r = PQexec(c, sql.c_str());
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            error = PQresultErrorMessage(r);
        else if ((row = PQntuples(r) > 0))
            value = PQgetvalue(r, 0, 0);
        PQclear(r);
    }
    PQfinish(c);
    INFO(error);
    REQUIRE(error.empty());
    REQUIRE(row);
    return value;
}

inline std::int64_t db_int(const TestGalleryDb& db, const std::string& sql) {
    if (!db.postgres()) return db_int(std::filesystem::path(db.location()), sql);
    const std::string v = db_text(db, sql);
    return v == "t" ? 1 : v == "f" ? 0 : std::stoll(v);
}

// A count from the database, or -1 while it cannot be read (not created yet).
inline std::int64_t try_query(const TestGalleryDb& db, const std::string& sql) {
    std::int64_t v = -1;
    if (db.postgres()) {
        PGconn* c = PQconnectdb(db.location().c_str());
        if (PQstatus(c) == CONNECTION_OK) {
            PQclear(PQexec(c, "SET search_path = faceq"));
            PGresult* r = PQexec(c, sql.c_str());
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) v = std::stoll(PQgetvalue(r, 0, 0));
            PQclear(r);
        }
        PQfinish(c);
        return v;
    }
    sqlite3* h = nullptr;
    if (sqlite3_open_v2(db.location().c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
            v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(h);
    return v;
}

// Runs `sql` for its effect on the gallery.
inline void db_exec(const TestGalleryDb& db, const std::string& sql) {
    if (!db.postgres()) return db_exec(std::filesystem::path(db.location()), sql);
    PGconn* c = PQconnectdb(db.location().c_str());
    std::string error;
    if (PQstatus(c) != CONNECTION_OK) {
        error = PQerrorMessage(c);
    } else {
        PQclear(PQexec(c, "SET search_path = faceq"));
        PGresult* r = PQexec(c, sql.c_str());
        const auto status = PQresultStatus(r);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) error = PQresultErrorMessage(r);
        PQclear(r);
    }
    PQfinish(c);
    INFO(sql << ": " << error);
    REQUIRE(error.empty());
}

}  // namespace faceq::test

// Runs the rest of the test case once per engine: "sqlite", then
// "postgresql" (which needs FACEQ_TEST_PG: see the header comment). Use at
// the top of a TEST_CASE, outside SECTIONs; `var` gets the engine's name.
#define GALLERY_ENGINE(var)                                                                                \
    const std::string var = GENERATE(as<std::string>{}, "sqlite", "postgresql");                           \
    INFO("gallery engine: " << var);                                                                       \
    REQUIRE_DATA(var != "postgresql" || !::faceq::test::test_pg_url().empty(), "a PostgreSQL test server", \
                 "FACEQ_TEST_PG",                                                                          \
                 "tools/pg_cluster.sh start DIR, which prints the URL to set (tools/test.sh does "         \
                 "this itself)")

// A CLI test's engines (the faceq processes it starts): both, but in the
// sanitizer build (FACEQ_TEST_SANITIZED) SQLite only — there the PostgreSQL
// store's code is sanitized by the in-process gallery tests and by the CLI
// tests about processes at once and kill -9, which keep GALLERY_ENGINE; the
// others would run the same store code a second time through a process
// (~1.5 of CI's 60 minutes). The release build runs them on both.
#ifdef FACEQ_TEST_SANITIZED
#define CLI_GALLERY_ENGINE(var)       \
    const std::string var = "sqlite"; \
    INFO("gallery engine: " << var)
#else
#define CLI_GALLERY_ENGINE(var) GALLERY_ENGINE(var)
#endif
