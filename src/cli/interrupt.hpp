// interrupt.hpp — Ctrl-C (SIGINT) and SIGTERM for long-running commands
// (prepare, train). While an InterruptGuard lives, the first signal only sets
// a flag that the command polls (through the core's `cancelled` callbacks), so
// it can stop between steps and leave its run FAILED; a second signal
// restores the default action and re-raises, ending the process at once (a
// run left RUNNING by a dead process reads as FAILED, see registry.hpp).
#pragma once

namespace faceq::cli {

class InterruptGuard {
public:
    InterruptGuard();
    ~InterruptGuard();
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// True once SIGINT or SIGTERM arrived under a guard.
bool interrupted() noexcept;
// The signal that arrived (0 when none): exit code 128 + signal by convention.
int interrupt_signal() noexcept;

}  // namespace faceq::cli
