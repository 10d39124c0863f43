// base/archive.hpp (private) — libarchive's reader as an RAII handle, and the
// one way faceq reports an archive it cannot unpack. Used by the model
// installer (bz2 and face-api.js tarballs) and the dataset download (UTKFace
// tar/zip).
#pragma once

#include <archive.h>
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <string>

#include "faceq/base/error.hpp"

namespace faceq {

struct ArchiveDeleter {
    void operator()(struct archive* a) const { archive_read_free(a); }
};
using ArchiveReader = std::unique_ptr<struct archive, ArchiveDeleter>;

// libarchive's message for the last failure of `a`.
inline std::string archive_why(struct archive* a) {
    const char* s = archive_error_string(a);
    return s ? s : "unknown libarchive error";
}

// Error{invalid_input} "cannot unpack '<path>': <libarchive's reason>".
inline Error unpack_error(const std::filesystem::path& path, struct archive* a) {
    return Error(ErrorKind::invalid_input, fmt::format("cannot unpack '{}': {}", path.string(), archive_why(a)));
}

}  // namespace faceq
