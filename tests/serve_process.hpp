// tests/serve_process.hpp — a real `faceq serve` for tests: a home whose
// models/ is a symlink to the test models, and the binary started in the
// background (stdout and stderr in files, the port read from its log,
// SIGKILLed if the test ends first). Used by test_serve.cpp and
// test_serve_hostile.cpp.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_models.hpp"

namespace faceq::test {

inline std::string file_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A home for one server: models/ points at the test models (never copied).
struct ServeHome {
    TempDir dir;
    ServeHome() { std::filesystem::create_directory_symlink(test_home().models_dir(), dir / "models"); }
    std::string root() const { return dir.path().string(); }
};

// `faceq --home HOME serve ARGS...` in the background, stdout and stderr in
// files. Killed (SIGKILL) if still running when destroyed.
class ServeProcess {
public:
    ServeProcess(const std::filesystem::path& home, const std::vector<std::string>& args,
                 const std::vector<std::string>& env = {})
        : out_(log_dir_ / "stdout"), err_(log_dir_ / "stderr") {
        std::vector<std::string> argv{FACEQ_BINARY, "--home", home.string(), "serve"};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> c_argv;
        for (auto& a : argv) c_argv.push_back(a.data());
        c_argv.push_back(nullptr);
        auto env_strings = detail::child_environment(env);
        std::vector<char*> c_env;
        for (auto& e : env_strings) c_env.push_back(e.data());
        c_env.push_back(nullptr);
        const std::string out = out_.string(), err = err_.string();
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int n = ::open("/dev/null", O_RDONLY);
            if (o < 0 || e < 0 || n < 0 || ::dup2(n, 0) < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) ::_exit(127);
            ::execve(c_argv[0], c_argv.data(), c_env.data());
            ::_exit(127);
        }
    }
    ~ServeProcess() {
        if (pid_ > 0 && exit_code_ < 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    ServeProcess(const ServeProcess&) = delete;
    ServeProcess& operator=(const ServeProcess&) = delete;

    std::string log() const { return file_text(err_); }
    std::string out() const { return file_text(out_); }

    // The port from "listening on http://HOST:PORT"; 0 when the server exited
    // or did not say within the timeout.
    int port(std::chrono::seconds timeout = std::chrono::seconds(60)) {
        static const std::regex listening(R"(listening on http://[^ ]+:(\d+))");
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            std::smatch m;
            const std::string text = log();
            if (std::regex_search(text, m, listening)) return std::stoi(m[1]);
            if (exited()) return 0;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return 0;
    }

    bool exited() {
        if (exit_code_ >= 0) return true;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return true;
        }
        return false;
    }

    // Waits for the process to end; its exit code, or -1 after the timeout.
    int wait(std::chrono::seconds timeout = std::chrono::seconds(60)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!exited()) {
            if (std::chrono::steady_clock::now() > deadline) return -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return exit_code_;
    }

    pid_t pid() const { return pid_; }

    int stop(int signal) {
        ::kill(pid_, signal);
        return wait();
    }

private:
    TempDir log_dir_;
    std::filesystem::path out_, err_;
    pid_t pid_ = -1;
    int exit_code_ = -1;
};

}  // namespace faceq::test
