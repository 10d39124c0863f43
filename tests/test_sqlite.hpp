// tests/test_sqlite.hpp — reading and poking a gallery database from tests
// with plain sqlite3 (independent of the code under test): one value of a
// query, or a statement run for its effect. Queries open the file read-only
// with a busy timeout, so they can run while faceq processes write it.
#pragma once

#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>

namespace faceq::test {

namespace detail {
// Runs `sql` read-only and hands its first row's statement to `read`.
template <typename Read>
auto first_row(const std::filesystem::path& db, const std::string& sql, Read read) {
    sqlite3* h = nullptr;
    INFO(sql);
    REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const auto v = read(s);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return v;
}
}  // namespace detail

// The first column of the first row, as an integer (counts, pragmas).
inline std::int64_t db_int(const std::filesystem::path& db, const std::string& sql) {
    return detail::first_row(db, sql, [](sqlite3_stmt* s) { return sqlite3_column_int64(s, 0); });
}

// The first column of the first row, as text.
inline std::string db_text(const std::filesystem::path& db, const std::string& sql) {
    return detail::first_row(db, sql, [](sqlite3_stmt* s) {
        const auto* text = sqlite3_column_text(s, 0);
        return std::string(text ? reinterpret_cast<const char*>(text) : "");
    });
}

// Runs `sql` (read-write) for its effect; fails the test with SQLite's message.
inline void db_exec(const std::filesystem::path& db, const std::string& sql) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
    INFO(sql << ": " << (err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(h);
    REQUIRE(rc == SQLITE_OK);
}

}  // namespace faceq::test
