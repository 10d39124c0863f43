#include "base/fsutil.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>

#include "faceq/base/error.hpp"

namespace faceq {
namespace {

struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

std::string to_hex(const unsigned char* digest, unsigned int len) {
    static const char* hex = "0123456789abcdef";
    std::string out(len * 2, '0');
    for (unsigned int i = 0; i < len; ++i) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    return out;
}

void fsync_dir(const std::filesystem::path& dir) {
    UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY));
    if (fd.get() >= 0) ::fsync(fd.get());
}

}  // namespace

UniqueFd::~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
}

int UniqueFd::release() noexcept {
    const int f = fd_;
    fd_ = -1;
    return f;
}

int UniqueFd::close() noexcept {
    const int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc;
}

std::string sha256_hex(const void* data, std::size_t size) {
    MdCtx ctx(EVP_MD_CTX_new());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), data, size) != 1 || EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1)
        throw Error(ErrorKind::internal, "sha256: OpenSSL digest failed");
    return to_hex(digest, len);
}

std::string sha256_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorKind::io, fmt::format("cannot read '{}': {}", path.string(), std::strerror(errno)));
    MdCtx ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
        throw Error(ErrorKind::internal, "sha256: OpenSSL digest failed");
    std::vector<char> buf(1 << 16);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto got = in.gcount();
        if (got > 0 && EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(got)) != 1)
            throw Error(ErrorKind::internal, "sha256: OpenSSL digest failed");
    }
    if (in.bad()) throw Error(ErrorKind::io, fmt::format("cannot read '{}'", path.string()));
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1)
        throw Error(ErrorKind::internal, "sha256: OpenSSL digest failed");
    return to_hex(digest, len);
}

std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
    // Sized from fstat and read in large blocks: photos and model files are
    // megabytes, and a byte-wise stream read with a growing buffer cost ~30 ms
    // for the ResNet's 22 MB. A file that grows meanwhile is read to its end.
    const auto fail = [&path](int err) {
        return Error(ErrorKind::io, fmt::format("cannot read '{}': {}", path.string(), std::strerror(err)));
    };
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw fail(errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw fail(errno);
    if (S_ISDIR(st.st_mode)) throw fail(EISDIR);
    std::vector<std::uint8_t> bytes(st.st_size > 0 ? static_cast<std::size_t>(st.st_size) : 0);
    std::size_t got = 0;
    for (;;) {
        if (got == bytes.size()) bytes.resize(std::max<std::size_t>(bytes.size() * 2, 1 << 16));
        const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw fail(errno);
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    bytes.resize(got);
    return bytes;
}

std::filesystem::path temp_path_beside(const std::filesystem::path& target) {
    static std::atomic<unsigned> counter{0};
    return target.parent_path() / fmt::format(".{}.tmp.{}.{}", target.filename().string(), ::getpid(), counter++);
}

void rename_durable(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        throw Error(ErrorKind::io,
                    fmt::format("cannot rename '{}' to '{}': {}", from.string(), to.string(), std::strerror(errno)));
    fsync_dir(to.parent_path());
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
    const auto tmp = temp_path_beside(path);
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0)
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(errno)));
    const char* p = contents.data();
    std::size_t left = contents.size();
    while (left > 0) {
        const ssize_t n = ::write(fd.get(), p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::unlink(tmp.c_str());
            throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(err)));
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0 || fd.close() != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", tmp.string(), std::strerror(err)));
    }
    try {
        rename_durable(tmp, path);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
}

}  // namespace faceq
