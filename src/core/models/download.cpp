// download.cpp — fetching (libcurl, npm, local copies), verifying, unpacking
// (libarchive) and installing models; see faceq/download.hpp.
//
// Where a model comes from, in order (models/source.hpp): `<mirror>/<source_file>`
// when a mirror is set, then the entry's upstream URL. Each source is verified
// on its own, so a corrupt mirror copy falls through to upstream rather than
// being installed.
//
// Nothing half-done reaches the models directory under its final name: each
// entry is fetched and unpacked inside a private staging directory in
// <models_dir> (same file system, so the final rename is atomic), and the
// staging directory is removed whatever happens. Staging directories left by a
// killed process are swept at the next run.
#include "faceq/models/download.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>
#include <tuple>

#include "base/subprocess.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/fsutil.hpp"
#include "faceq/base/home.hpp"
#include "faceq/base/time.hpp"
#include "faceq/models/source.hpp"
#include "pipeline/convert_resnet.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;

// Entries bigger than this inside the face-api.js tarball are not the files we
// want; the cap keeps a hostile archive from filling the disk.
constexpr std::int64_t max_extracted_bytes = 256LL << 20;

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// ---------------------------------------------------------------- RAII handles

using Fd = UniqueFd;

struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct ArchiveDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchiveReader = std::unique_ptr<struct archive, ArchiveDeleter>;

// A directory removed with everything in it when the scope ends.
class TempDir {
public:
    explicit TempDir(fs::path path) : path_(std::move(path)) {
        std::error_code ec;
        fs::create_directories(path_, ec);
        if (ec)
            throw Error(ErrorKind::io, fmt::format("cannot create directory '{}': {}", path_.string(), ec.message()));
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// A file removed when the scope ends unless release()d (it was renamed into place).
class TempFile {
public:
    explicit TempFile(fs::path path) : path_(std::move(path)) {}
    ~TempFile() {
        if (armed_) {
            std::error_code ec;
            fs::remove(path_, ec);
        }
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const fs::path& path() const { return path_; }
    void release() { armed_ = false; }

private:
    fs::path path_;
    bool armed_ = true;
};

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

void fsync_file(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0 || ::fsync(fd.get()) != 0)
        throw Error(ErrorKind::io, fmt::format("cannot sync '{}': {}", path.string(), std::strerror(errno)));
}

void remove_quietly(const fs::path& path) {
    std::error_code ec;
    fs::remove(path, ec);
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

// ---------------------------------------------------------------- unpacking

std::string archive_why(struct archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

// Copies the current archive entry's data into a new file `out`.
void extract_current(struct archive* a, const fs::path& source, const fs::path& out, std::int64_t max_bytes) {
    Fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0)
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", out.string(), std::strerror(errno)));
    std::vector<char> buf(1 << 16);
    std::int64_t total = 0;
    for (;;) {
        const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
        if (n == 0) break;
        if (n < 0)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("cannot unpack '{}': {}", source.string(), archive_why(a)));
        total += n;
        if (max_bytes > 0 && total > max_bytes)
            throw Error(ErrorKind::invalid_input, fmt::format("cannot unpack '{}': an entry is larger than {} bytes",
                                                              source.string(), max_bytes));
        write_all(fd.get(), buf.data(), static_cast<std::size_t>(n), out);
    }
    sync_and_close(fd, out);
}

ArchiveReader open_archive(const fs::path& path, bool bzip2_raw) {
    ArchiveReader a(archive_read_new());
    if (!a) throw Error(ErrorKind::internal, "libarchive: cannot create a reader");
    if (bzip2_raw) {
        archive_read_support_filter_bzip2(a.get());
        archive_read_support_format_raw(a.get());
    } else {
        archive_read_support_filter_gzip(a.get());
        archive_read_support_format_tar(a.get());
    }
    if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot unpack '{}': {}", path.string(), archive_why(a.get())));
    return a;
}

void unpack_bz2(const fs::path& source, const fs::path& out) {
    ArchiveReader a = open_archive(source, true);
    struct archive_entry* entry = nullptr;
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot unpack '{}': {}", source.string(), archive_why(a.get())));
    // The raw format accepts any bytes; without this check an uncompressed
    // file would be "unpacked" into a copy of itself.
    if (archive_filter_code(a.get(), 0) != ARCHIVE_FILTER_BZIP2)
        throw Error(ErrorKind::invalid_input, fmt::format("cannot unpack '{}': not a bzip2 file", source.string()));
    extract_current(a.get(), source, out, 0);
}

void unpack_faceapi_resnet(const fs::path& source, const fs::path& work_dir, const fs::path& out, const LogFn& log) {
    static const std::string manifest_name = "package/model/face_recognition_model-weights_manifest.json";
    static const std::string weights_name = "package/model/face_recognition_model.bin";
    const fs::path manifest = work_dir / "face_recognition_model-weights_manifest.json";
    const fs::path weights = work_dir / "face_recognition_model.bin";
    {
        ArchiveReader a = open_archive(source, false);
        bool got_manifest = false, got_weights = false;
        struct archive_entry* entry = nullptr;
        int rc;
        while (!(got_manifest && got_weights) &&
               ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK || rc == ARCHIVE_WARN)) {
            std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
            if (starts_with(name, "./")) name = name.substr(2);
            const bool regular = archive_entry_filetype(entry) == AE_IFREG;
            if (regular && name == manifest_name && !got_manifest) {
                extract_current(a.get(), source, manifest, max_extracted_bytes);
                got_manifest = true;
            } else if (regular && name == weights_name && !got_weights) {
                extract_current(a.get(), source, weights, max_extracted_bytes);
                got_weights = true;
            } else if (archive_read_data_skip(a.get()) != ARCHIVE_OK) {
                throw Error(ErrorKind::invalid_input,
                            fmt::format("cannot unpack '{}': {}", source.string(), archive_why(a.get())));
            }
        }
        if (!got_manifest || !got_weights)
            throw Error(ErrorKind::invalid_input, fmt::format("cannot unpack '{}': it does not hold '{}' and '{}'",
                                                              source.string(), manifest_name, weights_name));
    }
    if (log) log("converting face-api.js ResNet weights into dlib's format");
    try {
        convert_faceapi_resnet(manifest, weights, out);
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot convert the weights in '{}': {}", source.string(), e.what()));
    }
}

// ---------------------------------------------------------------- installing

// Removes staging directories and temp files that a killed faceq left behind:
// names made by temp_path_beside() ("...tmp.<pid>.<n>") whose process is gone.
void sweep_stale_temps(const fs::path& models_dir) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(models_dir, ec)) {
        const std::string name = e.path().filename().string();
        const auto at = name.rfind(".tmp.");
        if (name.empty() || name.front() != '.' || at == std::string::npos) continue;
        const long pid = std::strtol(name.c_str() + at + 5, nullptr, 10);
        if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
        if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
        std::error_code rm;
        fs::remove_all(e.path(), rm);
    }
}

// Checks the fetched file against the manifest; returns its sha256. A file
// that does not match is deleted before the error is thrown.
std::string verify_fetched(const fs::path& fetched, const ModelEntry& entry, const std::string& source,
                           const LogFn& log) {
    std::error_code ec;
    const std::uint64_t size = fs::file_size(fetched, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot read '{}': {}", fetched.string(), ec.message()));
    if (entry.size > 0 && size != entry.size) {
        remove_quietly(fetched);
        throw Error(ErrorKind::checksum, fmt::format("size mismatch for '{}' from '{}': expected {} bytes, got {}",
                                                     entry.source_file, source, entry.size, size));
    }
    const std::string sha = sha256_file(fetched);
    if (!entry.sha256.empty() && sha != entry.sha256) {
        remove_quietly(fetched);
        throw Error(ErrorKind::checksum, fmt::format("checksum mismatch for '{}' from '{}': expected sha256 {}, got {}",
                                                     entry.source_file, source, entry.sha256, sha));
    }
    if (entry.sha256.empty() && log)
        log(fmt::format("warning: no checksum known for '{}' from '{}'; recorded its sha256 {}", entry.source_file,
                        source, sha));
    return sha;
}

// An installed model still matches the manifest unless the manifest now pins
// a different upstream file (a new release under the same name).
bool is_current(const InstalledModel& installed, const ModelEntry& entry) {
    if (installed.entry.unpack != entry.unpack) return false;
    return entry.sha256.empty() || installed.entry.sha256.empty() || installed.entry.sha256 == entry.sha256;
}

// Fetches, verifies, unpacks and installs one entry; returns where it came
// from and what is installed now.
std::pair<std::string, InstalledModel> install_one(const ModelEntry& entry, const fs::path& models_dir,
                                                   const DownloadOptions& options) {
    const LogFn& log = options.log;
    TempDir staging(temp_path_beside(models_dir / "download"));
    const fs::path fetched = staging.path() / entry.source_file;

    std::string used, fetched_sha;
    std::vector<Error> failures;
    for (const Source& src : sources_for(entry.name, entry.source_file, entry.url, options.mirror, log)) {
        try {
            if (log) log(fmt::format("{}: fetching {}", entry.name, src.location));
            fetch_file(src.location, fetched, options.fetch);
            fetched_sha = verify_fetched(fetched, entry, src.location, log);
            used = src.location;
            break;
        } catch (const Error& e) {
            remove_quietly(fetched);
            remove_quietly(fetched.string() + ".part");
            failures.push_back(e);
            if (log && src.from_mirror) log(fmt::format("{}: {}; trying upstream", entry.name, e.what()));
        }
    }
    if (used.empty()) {
        // Name every source's failure; the kind is the most telling one (a
        // checksum failure says more than the network error that followed it).
        std::string why;
        ErrorKind kind = failures.back().kind();
        for (const auto& f : failures) {
            why += (why.empty() ? "" : "; ") + std::string(f.what());
            if (f.kind() != ErrorKind::network) kind = f.kind();
        }
        throw Error(kind, why);
    }

    const fs::path target = models_dir / entry.file;
    TempFile unpacked(temp_path_beside(target));
    fs::path ready;
    if (entry.unpack == "none") {
        ready = fetched;
    } else if (entry.unpack == "bz2") {
        unpack_bz2(fetched, unpacked.path());
        ready = unpacked.path();
    } else if (entry.unpack == "tgz-faceapi-resnet") {
        unpack_faceapi_resnet(fetched, staging.path(), unpacked.path(), log);
        ready = unpacked.path();
    } else {
        throw Error(ErrorKind::internal, fmt::format("model '{}': unknown unpack '{}'", entry.name, entry.unpack));
    }
    const std::string installed_sha = entry.unpack == "none" ? fetched_sha : sha256_file(ready);

    // Drop the old sidecar first: between the two renames the model then
    // counts as not installed rather than as the old version.
    remove_quietly(models_dir / (entry.file + ".json"));
    rename_durable(ready, target);
    unpacked.release();

    InstalledModel installed;
    installed.entry = entry;
    installed.entry.sha256 = fetched_sha;  // record what was verified, also when upstream publishes none
    installed.path = target;
    installed.sha256 = installed_sha;
    installed.installed_at = utc_now_iso8601();
    write_installed(models_dir, installed);
    return {used, installed};
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

std::vector<DownloadResult> install_models(const Manifest& manifest, const fs::path& models_dir,
                                           const DownloadOptions& options) {
    // Each group is one thing the user asked for: a role (its entries best
    // first; the first that installs wins) or one model named with --only.
    std::vector<std::vector<const ModelEntry*>> groups;
    if (options.only.empty()) {
        std::vector<std::string> roles{role::detector_cnn, role::landmarks, role::embedder, role::gender};
        for (const auto& m : manifest.models)
            if (std::find(roles.begin(), roles.end(), m.role) == roles.end()) roles.push_back(m.role);
        for (const auto& r : roles)
            if (auto entries = manifest.by_role(r); !entries.empty()) groups.push_back(std::move(entries));
    } else {
        std::set<std::string> seen;
        for (const auto& name : options.only) {
            const ModelEntry* e = manifest.find(name);
            if (!e) {
                std::string known;
                for (const auto& m : manifest.models) known += (known.empty() ? "" : ", ") + m.name;
                throw Error(ErrorKind::usage, fmt::format("unknown model '{}' (known: {})", name, known));
            }
            if (seen.insert(name).second) groups.push_back({e});
        }
    }

    std::error_code ec;
    fs::create_directories(models_dir, ec);
    if (ec)
        throw Error(ErrorKind::io, fmt::format("cannot create directory '{}': {}", models_dir.string(), ec.message()));
    sweep_stale_temps(models_dir);

    std::vector<DownloadResult> results;
    for (const auto& group : groups) {
        bool done = false;
        if (!options.force) {
            for (const ModelEntry* e : group) {
                const auto installed = read_installed(models_dir, *e);
                if (installed && is_current(*installed, *e)) {
                    results.push_back({e->name, e->role, "already installed", installed->path.string(), "", installed});
                    done = true;
                    break;
                }
            }
        }
        for (auto it = group.begin(); !done && it != group.end(); ++it) {
            const ModelEntry& e = **it;
            DownloadResult r{e.name, e.role, "", "", "", std::nullopt};
            try {
                std::tie(r.source, r.installed) = install_one(e, models_dir, options);
                r.status = "installed";
                done = true;
            } catch (const std::exception& err) {
                r.status = "failed";
                r.message = err.what();
                if (options.log && std::next(it) != group.end())
                    options.log(fmt::format("{}: not installed; trying {}", e.name, (*std::next(it))->name));
            }
            results.push_back(std::move(r));
        }
    }
    return results;
}

std::map<std::string, std::string> unmet_requests(const std::vector<DownloadResult>& results, bool by_model) {
    std::map<std::string, bool> done;
    std::map<std::string, std::string> last_failure;
    for (const auto& r : results) {
        const std::string& key = by_model ? r.name : r.role;
        done[key] = done[key] || r.installed.has_value();
        if (r.status == "failed") last_failure[key] = r.message;
    }
    std::map<std::string, std::string> unmet;
    for (const auto& [key, ok] : done)
        if (!ok) unmet[key] = last_failure[key];
    return unmet;
}

}  // namespace faceq
