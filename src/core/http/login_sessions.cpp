// login_sessions.cpp — in-memory login sessions, CSRF tokens and the wrong-key
// lockout (see login_sessions.hpp).
#include "http/login_sessions.hpp"

#include <fmt/format.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "http/header_text.hpp"

namespace faceq::detail {

std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    std::size_t got = 0;
    while (got < bytes) {
        const ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorKind::internal, fmt::format("getrandom failed: {}", std::strerror(errno)));
        }
        got += static_cast<std::size_t>(n);
    }
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes * 2);
    for (unsigned char c : raw) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string cookie_value(const std::string& header, const std::string& name) {
    std::size_t pos = 0;
    while (pos <= header.size()) {
        const auto end = std::min(header.find(';', pos), header.size());
        const std::string pair = trim(header.substr(pos, end - pos));
        const auto eq = pair.find('=');
        if (eq != std::string::npos && trim(pair.substr(0, eq)) == name) {
            std::string v = trim(pair.substr(eq + 1));
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
            return v;
        }
        pos = end + 1;
    }
    return {};
}

namespace {
std::string key_of(const std::string& id) { return sha256_hex(id.data(), id.size()); }
}  // namespace

LoginSessions::LoginSessions(std::int64_t lifetime_seconds, std::size_t capacity, int free_failures)
    : lifetime_(lifetime_seconds), capacity_(std::max<std::size_t>(1, capacity)), free_failures_(free_failures) {}

LoginSessions::Session LoginSessions::create(std::int64_t now) {
    Session s{random_hex(32), random_hex(32), now + lifetime_};
    std::lock_guard<std::mutex> lock(mu_);
    if (sessions_.size() >= capacity_) {
        for (auto it = sessions_.begin(); it != sessions_.end();)
            it = it->second.expires_at <= now ? sessions_.erase(it) : std::next(it);
        if (sessions_.size() >= capacity_)
            sessions_.erase(std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
                return a.second.expires_at < b.second.expires_at;
            }));
    }
    sessions_[key_of(s.id)] = Session{{}, s.csrf_token, s.expires_at};
    return s;
}

std::optional<LoginSessions::Session> LoginSessions::find(const std::string& id, std::int64_t now) {
    if (id.empty()) return std::nullopt;
    const std::string key = key_of(id);
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = sessions_.find(key);
    if (it == sessions_.end()) return std::nullopt;
    if (it->second.expires_at <= now) {
        sessions_.erase(it);
        return std::nullopt;
    }
    return it->second;
}

void LoginSessions::remove(const std::string& id) {
    if (id.empty()) return;
    const std::string key = key_of(id);
    std::lock_guard<std::mutex> lock(mu_);
    sessions_.erase(key);
}

std::size_t LoginSessions::size() {
    std::lock_guard<std::mutex> lock(mu_);
    return sessions_.size();
}

std::int64_t LoginSessions::locked_for(std::int64_t now) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::max<std::int64_t>(0, locked_until_ - now);
}

void LoginSessions::failed(std::int64_t now) {
    std::lock_guard<std::mutex> lock(mu_);
    ++failures_;
    if (failures_ < free_failures_) return;
    const int over = std::min(failures_ - free_failures_, 6);  // 1, 2, 4, ... 64 -> capped at 60 s
    locked_until_ = now + std::min<std::int64_t>(60, std::int64_t{1} << over);
}

void LoginSessions::succeeded() {
    std::lock_guard<std::mutex> lock(mu_);
    failures_ = 0;
    locked_until_ = 0;
}

}  // namespace faceq::detail
