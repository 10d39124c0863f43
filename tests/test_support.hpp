// tests/test_support.hpp — helpers shared by every test file.
//
// shared_dir()/data_dir() locate the research data in ../shared beside the
// source tree (read in place, never copied into the repository;
// FACEQ_SHARED_DIR points elsewhere). A test that needs data opens with
// REQUIRE_SHARED() (or REQUIRE_DATA()/REQUIRE_MODELS()): when the data is
// missing the test fails, naming what is missing and where it comes from,
// unless FACEQ_REQUIRE_DATA=0, which skips it instead and counts the skip, so
// that the run's summary (tests/test_main.cpp) says how many test cases did
// not run and why: a run without the data never looks like a full pass. TempDir is a
// fresh directory under /tmp removed, with everything in it, on destruction.
// run_command() runs a program without a shell (normally the real faceq binary,
// see run_faceq()), feeds it stdin and collects its exit code, stdout and
// stderr; it reads both pipes through poll(), so a child writing a lot to both
// never deadlocks against us, and kills it after a timeout.
//
// Errors: setup failures (mkdtemp, pipe, fork, exec) throw std::runtime_error,
// which Catch2 reports as a failed test. Everything lives in faceq::test.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace faceq::test {

// ../shared beside the source tree (or $FACEQ_SHARED_DIR): research data and
// reference material.
inline std::filesystem::path shared_dir() {
    if (const char* dir = std::getenv("FACEQ_SHARED_DIR"); dir != nullptr && *dir != '\0')
        return std::filesystem::path(dir).lexically_normal();
    return (std::filesystem::path(FACEQ_SOURCE_DIR) / ".." / "shared").lexically_normal();
}

// ../shared/data: the labelled photos (see its INDEX.md).
inline std::filesystem::path data_dir() { return shared_dir() / "data"; }

inline bool shared_available() {
    std::error_code ec;
    return std::filesystem::is_directory(data_dir(), ec);
}

// True unless FACEQ_REQUIRE_DATA=0: a test whose data is missing fails. The
// default is to fail so that nobody gets a green run without the data by
// accident; skipping is asked for.
inline bool data_required() {
    const char* v = std::getenv("FACEQ_REQUIRE_DATA");
    return v == nullptr || std::string(v) != "0";
}

// Something a test needs that this machine lacks.
struct MissingData {
    std::string what;             // "the shared test photos"
    std::filesystem::path where;  // where it was looked for
    std::string source;           // where it comes from, and how to provide it

    std::string message() const {
        return "missing test data: " + what + " not found at " + where.string() + ". It comes from " + source +
               ". Set FACEQ_REQUIRE_DATA=0 to skip the tests that need it (the run then says how many it skipped).";
    }
};

// The test cases that met missing data in this run, per kind of missing data
// (what + where), in the order met. Test cases run one at a time on the main
// thread; a test case with SECTIONs runs its opening once per section but is
// counted once.
struct MissingDataRecord {
    MissingData missing;
    bool skipped = false;  // skipped (FACEQ_REQUIRE_DATA=0) rather than failed
    std::vector<std::string> test_cases;
};

inline std::vector<MissingDataRecord>& missing_data_records() {
    static std::vector<MissingDataRecord> records;
    return records;
}

inline void record_missing_data(const MissingData& missing, bool skipped) {
    auto& records = missing_data_records();
    auto it = std::find_if(records.begin(), records.end(), [&](const MissingDataRecord& r) {
        return r.skipped == skipped && r.missing.what == missing.what && r.missing.where == missing.where;
    });
    if (it == records.end()) it = records.insert(records.end(), MissingDataRecord{missing, skipped, {}});
    const std::string name = Catch::getResultCapture().getCurrentTestName();
    if (std::find(it->test_cases.begin(), it->test_cases.end(), name) == it->test_cases.end())
        it->test_cases.push_back(name);
}

// Test cases skipped (or failed) for missing data, each counted once.
inline std::size_t count_missing_data_cases(bool skipped) {
    std::vector<std::string> names;
    for (const auto& r : missing_data_records())
        if (r.skipped == skipped) names.insert(names.end(), r.test_cases.begin(), r.test_cases.end());
    std::sort(names.begin(), names.end());
    return static_cast<std::size_t>(std::unique(names.begin(), names.end()) - names.begin());
}

// Catch2 v2 has no SKIP. When `available` is false: fail the test case with
// MissingData{...}.message(), or with FACEQ_REQUIRE_DATA=0 record the skip and
// leave the test case. Use at the top of a TEST_CASE, outside SECTIONs.
#define REQUIRE_DATA(available, ...)                                                        \
    do {                                                                                    \
        if (!(available)) {                                                                 \
            const ::faceq::test::MissingData faceq_missing_data_{__VA_ARGS__};              \
            const bool faceq_data_required_ = ::faceq::test::data_required();               \
            ::faceq::test::record_missing_data(faceq_missing_data_, !faceq_data_required_); \
            if (faceq_data_required_) FAIL(faceq_missing_data_.message());                  \
            return;                                                                         \
        }                                                                                   \
    } while (false)

// Where ../shared/data and ../shared/mirror come from, for MissingData.
inline const char* const shared_data_source =
    "the project's shared folder laid beside the source tree as ../shared (research data, never in the "
    "repository; see ../shared/data/INDEX.md); FACEQ_SHARED_DIR=DIR reads it from DIR";
inline const char* const model_mirror_source =
    "the project's shared folder laid beside the source tree as ../shared: ../shared/mirror holds offline "
    "copies of the upstream model files (see its README.md)";

#define REQUIRE_SHARED()                                                                                 \
    REQUIRE_DATA(::faceq::test::shared_available(), "the shared test photos", ::faceq::test::data_dir(), \
                 ::faceq::test::shared_data_source)

// A directory under /tmp for one test, removed recursively when destroyed.
class TempDir {
public:
    TempDir() {
        std::string pattern = "/tmp/faceq-test-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
        if (ec) {
            // A test may have taken write permission away from a subdirectory.
            for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
                 !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
                std::error_code ignored;
                if (it->is_directory(ignored))
                    std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                                 std::filesystem::perm_options::add, ignored);
            }
            std::filesystem::remove_all(path_, ec);
        }
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& path, const void* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
    write_bytes(path, bytes.data(), bytes.size());
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
    write_bytes(path, text.data(), text.size());
}

struct CommandResult {
    int exit_code = -1;      // exit status, or 128 + signal number when killed by a signal
    std::string out;         // everything the program wrote to stdout
    std::string err;         // everything it wrote to stderr
    bool timed_out = false;  // killed (SIGKILL) after the timeout
};

namespace detail {

// Owns one file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

struct Pipe {
    Fd read;
    Fd write;
    Pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
        read.reset(fds[0]);
        write.reset(fds[1]);
    }
};

// The environment for the child: ours, with "NAME=value" entries set or
// replaced and bare "NAME" entries removed.
inline std::vector<std::string> child_environment(const std::vector<std::string>& changes) {
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
    for (const std::string& change : changes) {
        const std::string name = change.substr(0, change.find('='));
        env.erase(std::remove_if(
                      env.begin(), env.end(),
                      [&name](const std::string& entry) { return entry.compare(0, name.size() + 1, name + "=") == 0; }),
                  env.end());
        if (change.find('=') != std::string::npos) env.push_back(change);
    }
    return env;
}

// Blocks SIGPIPE for this thread while we write to a child that may have
// exited, and discards the SIGPIPE we caused before unblocking.
class SigpipeGuard {
public:
    SigpipeGuard() {
        sigemptyset(&set_);
        sigaddset(&set_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &set_, &old_);
    }
    ~SigpipeGuard() {
        if (!was_pending_) {
            const timespec zero{};
            while (sigtimedwait(&set_, nullptr, &zero) > 0) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

private:
    sigset_t set_{};
    sigset_t old_{};
    bool was_pending_ = false;
};

}  // namespace detail

// Runs argv[0] (searched in PATH when it has no '/') with the given stdin,
// without a shell. `env` changes the inherited environment: "NAME=value" sets,
// "NAME" unsets. Throws std::runtime_error when the program cannot be started.
inline CommandResult run_command(const std::vector<std::string>& argv, const std::string& stdin_text = {},
                                 const std::vector<std::string>& env = {},
                                 std::chrono::milliseconds timeout = std::chrono::minutes(5)) {
    if (argv.empty()) throw std::runtime_error("run_command: empty argv");
    // Everything the child needs is built before fork: after fork only
    // async-signal-safe calls are allowed.
    std::vector<char*> c_argv;
    for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
    c_argv.push_back(nullptr);
    const std::vector<std::string> env_strings = detail::child_environment(env);
    std::vector<char*> c_env;
    for (const std::string& e : env_strings) c_env.push_back(const_cast<char*>(e.c_str()));
    c_env.push_back(nullptr);

    detail::Pipe in, out, err, exec_status;
    detail::SigpipeGuard sigpipe_guard;
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        if (::dup2(in.read.get(), 0) < 0 || ::dup2(out.write.get(), 1) < 0 || ::dup2(err.write.get(), 2) < 0) {
            const int e = errno;
            (void)!::write(exec_status.write.get(), &e, sizeof e);
            ::_exit(127);
        }
        ::execvpe(c_argv[0], c_argv.data(), c_env.data());
        const int e = errno;
        (void)!::write(exec_status.write.get(), &e, sizeof e);
        ::_exit(127);
    }

    in.read.reset();
    out.write.reset();
    err.write.reset();
    exec_status.write.reset();

    CommandResult result;
    // exec closes the status pipe (O_CLOEXEC): EOF means the program started.
    int exec_errno = 0;
    ssize_t got;
    do {
        got = ::read(exec_status.read.get(), &exec_errno, sizeof exec_errno);
    } while (got < 0 && errno == EINTR);
    if (got == static_cast<ssize_t>(sizeof exec_errno)) {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        throw std::runtime_error("cannot run '" + argv[0] + "': " + std::strerror(exec_errno));
    }

    if (stdin_text.empty()) {
        in.write.reset();
    } else {
        ::fcntl(in.write.get(), F_SETFL, ::fcntl(in.write.get(), F_GETFL) | O_NONBLOCK);
    }
    std::size_t written = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto remaining_ms = [&deadline] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    };
    char buf[65536];
    while (out.read.get() >= 0 || err.read.get() >= 0) {
        const auto left = remaining_ms();
        if (left <= 0) {
            ::kill(pid, SIGKILL);
            result.timed_out = true;
            break;
        }
        pollfd fds[3];
        nfds_t n = 0;
        detail::Fd* owners[3];
        for (detail::Fd* fd : {&out.read, &err.read}) {
            if (fd->get() < 0) continue;
            fds[n] = {fd->get(), POLLIN, 0};
            owners[n++] = fd;
        }
        if (in.write.get() >= 0) {
            fds[n] = {in.write.get(), POLLOUT, 0};
            owners[n++] = &in.write;
        }
        const int ready = ::poll(fds, n, static_cast<int>(std::min<long long>(left, 1000)));
        if (ready < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            errno = e;
            throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
        }
        for (nfds_t i = 0; i < n; ++i) {
            if (fds[i].revents == 0) continue;
            if (owners[i] == &in.write) {
                const std::size_t chunk = std::min<std::size_t>(stdin_text.size() - written, sizeof buf);
                const ssize_t w = ::write(in.write.get(), stdin_text.data() + written, chunk);
                if (w > 0) written += static_cast<std::size_t>(w);
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_text.size())
                    in.write.reset();  // done, or the child closed its stdin (EPIPE)
                continue;
            }
            const ssize_t r = ::read(owners[i]->get(), buf, sizeof buf);
            if (r > 0) {
                (owners[i] == &out.read ? result.out : result.err).append(buf, static_cast<std::size_t>(r));
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                owners[i]->reset();
            }
        }
    }
    in.write.reset();

    // The child may outlive its pipes (it closed them, or we timed out).
    int status = 0;
    while (true) {
        const pid_t done = ::waitpid(pid, &status, result.timed_out ? 0 : WNOHANG);
        if (done == pid) break;
        if (done < 0 && errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
        if (done == 0) {
            if (remaining_ms() <= 0) {
                ::kill(pid, SIGKILL);
                result.timed_out = true;
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        }
    }
    if (WIFEXITED(status))
        result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        result.exit_code = 128 + WTERMSIG(status);
    return result;
}

#ifdef FACEQ_BINARY
// Runs the faceq binary built with the tests: run_faceq({"analyze", path}).
inline CommandResult run_faceq(const std::vector<std::string>& args, const std::string& stdin_text = {},
                               const std::vector<std::string>& env = {},
                               std::chrono::milliseconds timeout = std::chrono::minutes(5)) {
    std::vector<std::string> argv{FACEQ_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, stdin_text, env, timeout);
}
#endif

}  // namespace faceq::test
