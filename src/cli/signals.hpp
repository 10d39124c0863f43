// signals.hpp — SIGINT (Ctrl-C) and SIGTERM for the commands that must stop
// cleanly: prepare and train poll a flag between steps (through the core's
// `cancelled` callbacks) and leave their run FAILED; serve blocks in wait()
// on a watcher thread and stops the HTTP server when it returns.
//
// While a StopSignals lives, the first signal is only recorded: the handler
// sets the flag, writes the optional notice to stderr and writes one byte to
// a self-pipe that wakes wait(). A second signal restores the default action
// and re-raises it, ending the process at once (a run left RUNNING by a dead
// process reads as FAILED, see registry.hpp). Everything the handler does is
// async-signal-safe. The destructor restores the previous handlers.
//
// One StopSignals at a time (the handler state is process-wide); the
// constructor throws Error{internal} for a second one and Error{io} when the
// pipe cannot be made. received(), signal_number() and exit_code() may be
// called from any thread; wait() from one thread, wake() from any.
#pragma once

namespace faceq::cli {

struct StopSignalOptions {
    // Written to stderr by the handler on the first signal; must outlive the
    // StopSignals (a string literal). nullptr: say nothing.
    const char* notice = nullptr;
    // Ignore SIGPIPE meanwhile: a server's client that goes away mid-response
    // must not kill it.
    bool ignore_sigpipe = false;
};

// prepare, train: stop after the current step, saying so.
inline constexpr StopSignalOptions stop_between_steps{
    "\nfaceq: stopping after the current step (press again to stop at once)\n", false};
// serve: the watcher thread reports the signal itself.
inline constexpr StopSignalOptions stop_server{nullptr, true};

class StopSignals {
public:
    explicit StopSignals(const StopSignalOptions& options);
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    // True once SIGINT or SIGTERM arrived under the live StopSignals.
    static bool received() noexcept;
    // The signal that arrived, 0 when none.
    static int signal_number() noexcept;
    // The exit code for a command stopped by it: 128 + signal (130, SIGINT,
    // when the stop came from elsewhere).
    static int exit_code() noexcept;
    // Blocks until a signal arrives (returns its number) or wake() is called
    // (returns 0).
    static int wait();
    static void wake();
};

}  // namespace faceq::cli
