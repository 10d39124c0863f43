// signals.cpp — see signals.hpp.
#include "signals.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "faceq/base/error.hpp"

namespace faceq::cli {
namespace {

// The handler's state: plain globals, as a signal handler can reach nothing else.
volatile std::sig_atomic_t g_signal = 0;  // the first signal's number
volatile std::sig_atomic_t g_count = 0;   // signals so far
int g_pipe[2] = {-1, -1};                 // self-pipe: the handler writes, wait() reads
const char* g_notice = nullptr;
std::size_t g_notice_size = 0;
bool g_active = false;
struct sigaction g_old_int {
}, g_old_term{}, g_old_pipe{};
bool g_restore_pipe = false;

extern "C" void on_stop_signal(int sig) {
    if (g_count++ > 0) {
        // Second signal: the user means it.
        ::signal(sig, SIG_DFL);
        ::raise(sig);
        return;
    }
    const int saved = errno;
    g_signal = sig;
    if (g_notice) (void)!::write(STDERR_FILENO, g_notice, g_notice_size);
    const char c = static_cast<char>(sig);
    (void)!::write(g_pipe[1], &c, 1);
    errno = saved;
}

void install(int sig, void (*handler)(int), struct sigaction* old) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, old);
}

}  // namespace

StopSignals::StopSignals(const StopSignalOptions& options) {
    if (g_active) throw Error(ErrorKind::internal, "two StopSignals at once");
    if (::pipe2(g_pipe, O_CLOEXEC) != 0)
        throw Error(ErrorKind::io, fmt::format("cannot create a pipe: {}", std::strerror(errno)));
    // The handler must never block on a full pipe; wait() reads blocking.
    ::fcntl(g_pipe[1], F_SETFL, ::fcntl(g_pipe[1], F_GETFL) | O_NONBLOCK);
    g_active = true;
    g_signal = 0;
    g_count = 0;
    g_notice = options.notice;
    g_notice_size = options.notice ? std::strlen(options.notice) : 0;
    install(SIGINT, on_stop_signal, &g_old_int);
    install(SIGTERM, on_stop_signal, &g_old_term);
    g_restore_pipe = options.ignore_sigpipe;
    if (options.ignore_sigpipe) install(SIGPIPE, SIG_IGN, &g_old_pipe);
}

StopSignals::~StopSignals() {
    sigaction(SIGINT, &g_old_int, nullptr);
    sigaction(SIGTERM, &g_old_term, nullptr);
    if (g_restore_pipe) sigaction(SIGPIPE, &g_old_pipe, nullptr);
    ::close(g_pipe[0]);
    ::close(g_pipe[1]);
    g_pipe[0] = g_pipe[1] = -1;
    g_notice = nullptr;
    g_active = false;
}

bool StopSignals::received() noexcept { return g_signal != 0; }

int StopSignals::signal_number() noexcept { return g_signal; }

int StopSignals::exit_code() noexcept { return 128 + (g_signal != 0 ? g_signal : SIGINT); }

int StopSignals::wait() {
    char c = 0;
    while (true) {
        const ssize_t n = ::read(g_pipe[0], &c, 1);
        if (n == 1) return static_cast<unsigned char>(c);
        if (n < 0 && errno == EINTR) continue;
        return 0;
    }
}

void StopSignals::wake() {
    const char c = 0;
    (void)!::write(g_pipe[1], &c, 1);
}

}  // namespace faceq::cli
