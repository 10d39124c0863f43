// http/login_sessions.hpp — the page's login sessions (POST /api/login) and
// their CSRF tokens, kept in memory by one `faceq serve` process.
//
// A session id is 32 random bytes (getrandom(2), the kernel's CSPRNG) in hex,
// sent once in an HttpOnly, SameSite=Strict cookie; the server keeps only its
// SHA-256, so the map's lookup time says nothing about a guessed id and a
// memory dump shows no usable cookie. Each session has its own CSRF token
// (32 random bytes too) and a fixed lifetime (no sliding renewal): after it
// the page logs in again. At most `capacity` sessions live at once; a new one
// beyond that first drops the expired ones, then the one expiring soonest.
// A server restart ends every session.
//
// Wrong keys: after `free_failures` wrong keys in a row, login is refused for
// 1 s, then 2, 4, ... up to 60 s per further failure, process-wide (faceq
// serves one user or a few; a per-address count would be evaded by changing
// address). A right key resets the count. Scripts with X-API-Key are not
// affected: only POST /api/login looks at it.
//
// Thread-safety: every method locks an internal mutex.
// Errors: random_hex throws Error{internal} when the kernel gives no randomness.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace faceq::detail {

// `bytes` random bytes from getrandom(2), as lower-case hex.
std::string random_hex(std::size_t bytes);

// The value of cookie `name` in a Cookie header ("a=1; faceq_session=..."), or "".
std::string cookie_value(const std::string& header, const std::string& name);

class LoginSessions {
public:
    struct Session {
        std::string id;  // the cookie's value (returned by create() only)
        std::string csrf_token;
        std::int64_t expires_at = 0;  // unix seconds
    };

    LoginSessions(std::int64_t lifetime_seconds, std::size_t capacity, int free_failures = 5);

    std::int64_t lifetime() const { return lifetime_; }
    Session create(std::int64_t now);
    // The live session for a cookie value (id empty in the answer); an expired one is dropped.
    std::optional<Session> find(const std::string& id, std::int64_t now);
    void remove(const std::string& id);
    std::size_t size();

    // Seconds until login may be tried again; 0 when it may now.
    std::int64_t locked_for(std::int64_t now);
    void failed(std::int64_t now);
    void succeeded();

private:
    std::mutex mu_;
    std::int64_t lifetime_;
    std::size_t capacity_;
    int free_failures_;
    std::map<std::string, Session> sessions_;  // by SHA-256 of the id
    int failures_ = 0;
    std::int64_t locked_until_ = 0;
};

}  // namespace faceq::detail
