#include "interrupt.hpp"

#include <signal.h>
#include <unistd.h>

#include <csignal>

namespace faceq::cli {
namespace {

volatile std::sig_atomic_t g_signal = 0;
struct sigaction g_old_int {
}, g_old_term{};

extern "C" void on_signal(int sig) {
    if (g_signal != 0) {
        // Second signal: the user means it.
        ::signal(sig, SIG_DFL);
        ::raise(sig);
        return;
    }
    g_signal = sig;
    static const char msg[] = "\nfaceq: stopping after the current step (press again to stop at once)\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
}

}  // namespace

InterruptGuard::InterruptGuard() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &g_old_int);
    sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptGuard::~InterruptGuard() {
    sigaction(SIGINT, &g_old_int, nullptr);
    sigaction(SIGTERM, &g_old_term, nullptr);
}

bool interrupted() noexcept { return g_signal != 0; }
int interrupt_signal() noexcept { return g_signal; }

}  // namespace faceq::cli
