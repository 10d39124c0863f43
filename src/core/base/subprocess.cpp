// subprocess.cpp — see base/subprocess.hpp.
#include "base/subprocess.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"

extern char** environ;

namespace faceq {
namespace {

struct SpawnActions {
    posix_spawn_file_actions_t actions;
    SpawnActions() { posix_spawn_file_actions_init(&actions); }
    ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
    SpawnActions(const SpawnActions&) = delete;
    SpawnActions& operator=(const SpawnActions&) = delete;
};

}  // namespace

bool ProgramResult::succeeded() const { return ran() && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

std::string ProgramResult::how() const {
    return WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status)) : fmt::format("signal {}", WTERMSIG(status));
}

ProgramResult run_program(const std::vector<std::string>& args, bool merge_stderr) {
    int fds[2];
    // Both ends close on exec; the child's stdout is a dup2() copy, which
    // does not inherit the flag.
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw Error(ErrorKind::internal, fmt::format("cannot create a pipe: {}", std::strerror(errno)));
    UniqueFd read_end(fds[0]), write_end(fds[1]);

    SpawnActions sa;
    posix_spawn_file_actions_addopen(&sa.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&sa.actions, write_end.get(), STDOUT_FILENO);
    if (merge_stderr)
        posix_spawn_file_actions_adddup2(&sa.actions, STDOUT_FILENO, STDERR_FILENO);
    else
        posix_spawn_file_actions_addopen(&sa.actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);

    std::vector<std::string> copies = args;  // posix_spawn wants char*, not const char*
    std::vector<char*> argv;
    for (auto& a : copies) argv.push_back(a.data());
    argv.push_back(nullptr);

    ProgramResult result;
    pid_t pid = -1;
    result.spawn_error = posix_spawnp(&pid, argv[0], &sa.actions, nullptr, argv.data(), environ);
    write_end.close();  // else the read below never sees the end of the output
    if (!result.ran()) return result;

    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
        if (n > 0) result.output.append(buf, static_cast<std::size_t>(n));
        if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    while (::waitpid(pid, &result.status, 0) < 0) {
        if (errno != EINTR)
            throw Error(ErrorKind::internal, fmt::format("waiting for {}: {}", args[0], std::strerror(errno)));
    }
    return result;
}

}  // namespace faceq
