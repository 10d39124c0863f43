// base/fsutil.hpp (private to the core and its tests) — small file-system helpers.
//
// sha256 of files and buffers (OpenSSL), atomic file writes (write a temp file
// in the same directory, fsync, rename, fsync the directory) and reading a
// whole file. All throw Error{io} with the path on failure.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace faceq {

// Owns a POSIX file descriptor; closes it when destroyed.
class UniqueFd {
public:
    explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
    ~UniqueFd();
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    int get() const noexcept { return fd_; }
    // Gives up ownership without closing.
    int release() noexcept;
    // Closes now, so that a failing close (NFS, full disk) can be reported;
    // returns close()'s result.
    int close() noexcept;

private:
    int fd_;
};

std::string sha256_hex(const void* data, std::size_t size);
std::string sha256_file(const std::filesystem::path& path);

std::vector<std::uint8_t> read_file(const std::filesystem::path& path);

// Replaces `path` with `contents` atomically: readers see the old file or the
// new one, never a partial one.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Renames `from` over `to` and fsyncs the directory of `to`.
void rename_durable(const std::filesystem::path& from, const std::filesystem::path& to);

// A unique temporary path beside `target` ("<target>.tmp.<pid>.<n>").
std::filesystem::path temp_path_beside(const std::filesystem::path& target);

}  // namespace faceq
