// fetch.cpp — fetch_file() (see faceq/models/download.hpp): HTTP(S) with
// libcurl (timeouts, retries with back-off, resuming a `.part` file by HTTP
// Range), `npm pack` for "npm:" sources, and copies of local files; plus the
// file helpers of download_impl.hpp.
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>

#include "base/fsutil.hpp"
#include "base/subprocess.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/home.hpp"  // version()
#include "faceq/models/download.hpp"
#include "faceq/models/source.hpp"
#include "models/download_impl.hpp"

namespace faceq {

namespace download_impl {

void write_all(int fd, const char* p, std::size_t left, const fs::path& path) {
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", path.string(), std::strerror(errno)));
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

void sync_and_close(Fd& fd, const fs::path& path) {
    if (::fsync(fd.get()) != 0 || fd.close() != 0)
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", path.string(), std::strerror(errno)));
}

void remove_quietly(const fs::path& path) {
    std::error_code ec;
    fs::remove(path, ec);
}

}  // namespace download_impl

using namespace download_impl;

namespace {

struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

void fsync_file(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0 || ::fsync(fd.get()) != 0)
        throw Error(ErrorKind::io, fmt::format("cannot sync '{}': {}", path.string(), std::strerror(errno)));
}

// ---------------------------------------------------------------- progress

// Limits progress reports to ~10 per second: curl calls back far more often,
// and every report redraws a terminal line.
class ProgressThrottle {
public:
    ProgressThrottle(const ProgressFn& fn, std::string label) : fn_(fn), label_(std::move(label)) {}
    void report(std::uint64_t done, std::uint64_t total) {
        if (!fn_) return;
        const auto now = std::chrono::steady_clock::now();
        const bool finished = total > 0 && done >= total;
        if (!finished && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        fn_(Progress{label_, done, total});
    }

private:
    const ProgressFn& fn_;
    std::string label_;
    std::chrono::steady_clock::time_point last_{};
};

// ---------------------------------------------------------------- local copies

void copy_local(const fs::path& src, const fs::path& dest, const FetchOptions& options) {
    std::error_code ec;
    if (!fs::is_regular_file(src, ec))
        throw Error(ErrorKind::io, fmt::format("cannot copy '{}': no such file", src.string()));
    const std::uint64_t total = fs::file_size(src, ec);
    Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0)
        throw Error(ErrorKind::io, fmt::format("cannot read '{}': {}", src.string(), std::strerror(errno)));

    // A local copy is fast and cannot be "resumed" meaningfully: start over.
    TempFile part(dest.string() + ".part");
    Fd out(::open(part.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out.get() < 0)
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", part.path().string(), std::strerror(errno)));

    ProgressThrottle progress(options.progress, dest.filename().string());
    std::vector<char> buf(1 << 20);
    std::uint64_t done = 0;
    for (;;) {
        const ssize_t n = ::read(in.get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorKind::io, fmt::format("cannot read '{}': {}", src.string(), std::strerror(errno)));
        }
        if (n == 0) break;
        write_all(out.get(), buf.data(), static_cast<std::size_t>(n), part.path());
        done += static_cast<std::uint64_t>(n);
        progress.report(done, total);
    }
    sync_and_close(out, part.path());
    rename_durable(part.path(), dest);
    part.release();
}

// ---------------------------------------------------------------- npm

// What npm said about its failure: its first "npm error" lines that carry a
// message (not a stack frame, errno detail or log-file pointer), else the last
// lines of its output.
std::string npm_failure(const std::string& output) {
    std::istringstream in(output);
    std::vector<std::string> all, errors;
    for (std::string line; std::getline(in, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        all.push_back(line);
        for (const char* prefix : {"npm error ", "npm ERR! "}) {
            if (!starts_with(line, prefix)) continue;
            const std::string msg = line.substr(std::strlen(prefix));
            const bool noise = msg.empty() || msg.front() == ' ' || starts_with(msg, "syscall ") ||
                               starts_with(msg, "errno ") || starts_with(msg, "A complete log") ||
                               starts_with(msg, "If you are behind a proxy");
            if (!noise) errors.push_back(msg);
        }
    }
    const auto& pick = errors.empty() ? all : errors;
    const std::size_t n = std::min<std::size_t>(pick.size(), errors.empty() ? 3 : 2);
    const std::size_t from = errors.empty() ? pick.size() - n : 0;
    std::string out;
    for (std::size_t i = from; i < from + n; ++i) out += (out.empty() ? "" : "; ") + pick[i];
    return out.empty() ? "no output" : out;
}

// `npm pack <spec>` fetches the registry tarball with npm's own configuration
// (registry, proxy, cache, integrity check); no shell is involved.
void fetch_npm(const std::string& url, const fs::path& dest, const FetchOptions& options) {
    const std::string spec = url.substr(4);
    TempDir tmp(temp_path_beside(dest));
    // npm prints the tarball name on stdout, which is ours for data: both of
    // its streams are captured, to quote from on failure.
    const ProgramResult npm =
        run_program({"npm", "pack", spec, "--pack-destination", tmp.path().string(), "--no-fund", "--no-audit"}, true);
    if (!npm.ran())
        throw Error(
            ErrorKind::network,
            fmt::format("cannot fetch '{}': cannot run npm: {}{}", url, std::strerror(npm.spawn_error),
                        npm.spawn_error == ENOENT ? " (npm is not installed; install it or use --mirror)" : ""));
    if (!npm.succeeded())
        throw Error(ErrorKind::network, fmt::format("cannot fetch '{}': `npm pack {}` failed ({}): {}", url, spec,
                                                    npm.how(), npm_failure(npm.output)));

    fs::path tarball;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(tmp.path(), ec))
        if (e.path().extension() == ".tgz") tarball = e.path();
    if (tarball.empty())
        throw Error(ErrorKind::network, fmt::format("cannot fetch '{}': `npm pack {}` wrote no .tgz: {}", url, spec,
                                                    npm_failure(npm.output)));
    fsync_file(tarball);
    rename_durable(tarball, dest);
    if (options.progress) {
        const auto size = fs::file_size(dest, ec);
        options.progress(Progress{dest.filename().string(), size, size});
    }
}

// ---------------------------------------------------------------- http(s)

void ensure_curl_initialised() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            throw Error(ErrorKind::internal, "libcurl: global initialisation failed");
    });
}

struct Transfer {
    int fd = -1;
    std::uint64_t offset = 0;  // bytes already in the .part when this attempt began
    int write_errno = 0;
    ProgressThrottle* progress = nullptr;
    std::exception_ptr error;  // from the progress callback; C code must not unwind
};

size_t on_curl_write(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const std::size_t len = size * count;
    const char* p = data;
    std::size_t left = len;
    while (left > 0) {
        const ssize_t n = ::write(t->fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            t->write_errno = errno;
            return 0;  // makes curl stop with CURLE_WRITE_ERROR
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    return len;
}

int on_curl_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(user);
    try {
        const auto now = t->offset + static_cast<std::uint64_t>(dlnow);
        const auto total = dltotal > 0 ? t->offset + static_cast<std::uint64_t>(dltotal) : 0;
        t->progress->report(now, total);
        return 0;
    } catch (...) {
        t->error = std::current_exception();
        return 1;
    }
}

struct Attempt {
    CURLcode code = CURLE_OK;
    long http_status = 0;
    std::uint64_t offset = 0;
    std::string message;
};

Attempt attempt_http(const std::string& url, const fs::path& part, const FetchOptions& options,
                     ProgressThrottle& progress) {
    std::error_code ec;
    Attempt result;
    result.offset = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
    if (ec) result.offset = 0;

    Fd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd.get() < 0)
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", part.string(), std::strerror(errno)));

    CurlHandle curl(curl_easy_init());
    if (!curl) throw Error(ErrorKind::internal, "libcurl: cannot create a handle");
    char errbuf[CURL_ERROR_SIZE] = {0};
    Transfer t;
    t.fd = fd.get();
    t.offset = result.offset;
    t.progress = &progress;
    const std::string agent = fmt::format("faceq/{}", faceq::version());

    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, options.low_speed_time_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_curl_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    if (result.offset > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(result.offset));

    result.code = curl_easy_perform(c);
    if (t.error) std::rethrow_exception(t.error);
    if (t.write_errno != 0)
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", part.string(), std::strerror(t.write_errno)));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.http_status);
    result.message = errbuf[0] ? errbuf : curl_easy_strerror(result.code);
    if (result.code == CURLE_OK) sync_and_close(fd, part);
    return result;
}

// Failures worth another attempt: the network or the server may recover.
// A host that does not resolve or a 404 will not, so we fail fast on those.
bool is_transient(const Attempt& a) {
    switch (a.code) {
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_COULDNT_CONNECT:
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
            return true;
        case CURLE_HTTP_RETURNED_ERROR:
            return a.http_status >= 500 || a.http_status == 408 || a.http_status == 429;
        default:
            return false;
    }
}

void fetch_http(const std::string& url, const fs::path& dest, const FetchOptions& options) {
    ensure_curl_initialised();
    const fs::path part = dest.string() + ".part";
    ProgressThrottle progress(options.progress, dest.filename().string());
    long delay_ms = std::max(0L, options.retry_delay_ms);
    int failures = 0;
    bool restarted = false;
    for (;;) {
        const Attempt a = attempt_http(url, part, options, progress);
        if (a.code == CURLE_OK) {
            rename_durable(part, dest);
            return;
        }
        // A server that ignores Range answers 200 (curl: RANGE_ERROR); a .part
        // longer than the file gets 416. Either way the .part is useless: start
        // over once, without counting it as a failed attempt.
        const bool bad_resume = a.offset > 0 && (a.code == CURLE_RANGE_ERROR ||
                                                 (a.code == CURLE_HTTP_RETURNED_ERROR && a.http_status == 416));
        if (bad_resume && !restarted) {
            restarted = true;
            remove_quietly(part);
            continue;
        }
        ++failures;
        if (!is_transient(a) || failures > options.retries) {
            std::error_code ec;
            if (fs::exists(part, ec) && fs::file_size(part, ec) == 0) remove_quietly(part);
            throw Error(ErrorKind::network,
                        fmt::format("cannot download '{}': {}{}", url, a.message,
                                    failures > 1 ? fmt::format(" (gave up after {} attempts)", failures) : ""));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        delay_ms *= 2;
    }
}

}  // namespace

void fetch_file(const std::string& url, const fs::path& dest, const FetchOptions& options) {
    switch (location_kind(url)) {
        case LocationKind::http:
            return fetch_http(url, dest, options);
        case LocationKind::npm:
            return fetch_npm(url, dest, options);
        case LocationKind::file_url:
            return copy_local(file_url_path(url), dest, options);
        case LocationKind::local_path:
            return copy_local(url, dest, options);
        case LocationKind::unsupported:
            break;
    }
    throw Error(ErrorKind::network, fmt::format("cannot download '{}': unsupported URL scheme", url));
}

}  // namespace faceq
