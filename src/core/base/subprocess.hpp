// base/subprocess.hpp — running a helper program (npm, git) without a shell:
// the arguments reach it exactly as given, so no file name, URL or package
// spec can be read as shell syntax. The program is looked up in PATH, gets
// /dev/null as stdin, and its stdout (with stderr too, or stderr discarded)
// is captured into a string; run_program() waits for it to end.
//
// Errors: Error{internal} when the pipe cannot be made or waiting fails. A
// program that cannot be started (not installed) or that fails is a value:
// ProgramResult says which. Thread-safety: reentrant (posix_spawn).
// Private to the core: include as "base/subprocess.hpp".
#pragma once

#include <string>
#include <vector>

namespace faceq {

struct ProgramResult {
    int spawn_error = 0;  // errno from posix_spawnp (ENOENT: not in PATH); 0 when it ran
    int status = 0;       // as waitpid() reports it
    std::string output;   // what it wrote to stdout (and stderr, when merged)

    bool ran() const { return spawn_error == 0; }
    bool succeeded() const;   // ran and exited with code 0
    std::string how() const;  // "exit <code>" | "signal <number>", for messages
};

// Runs args[0] (searched in PATH) with `args`; requires a non-empty `args`.
ProgramResult run_program(const std::vector<std::string>& args, bool merge_stderr);

}  // namespace faceq
