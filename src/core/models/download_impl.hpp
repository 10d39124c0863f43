// download_impl.hpp (private) — the file handling that fetching (fetch.cpp)
// and installing models (download.cpp) share: scoped temporary files and
// directories, and writes that are complete and on disk before a rename.
//
// Errors: Error{io} naming the path and the system's reason.
// Thread-safety: none needed; each object belongs to one thread.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"

namespace faceq::download_impl {

namespace fs = std::filesystem;

using Fd = UniqueFd;

inline bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

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

// Writes all `left` bytes at `p` to `fd` (retrying short writes and EINTR).
void write_all(int fd, const char* p, std::size_t left, const fs::path& path);
// fsync()s and closes `fd`: its data is on disk before it is renamed.
void sync_and_close(Fd& fd, const fs::path& path);
void remove_quietly(const fs::path& path);

}  // namespace faceq::download_impl
