// faceq/base/error.hpp — the one exception type the core throws.
//
// Failures that abort an operation throw faceq::Error{kind, message}; expected
// outcomes (no face in a photo, an empty search) are values, not exceptions.
// Adapters around OpenCV, dlib, SQLite, libcurl and libarchive catch their
// library's exceptions and rethrow them as Error, adding the path and the
// operation, so no third-party exception escapes the core. The message is one
// line meant for people: "<what> '<path>': <why>".
#pragma once

#include <stdexcept>
#include <string>

namespace faceq {

enum class ErrorKind {
    usage,          // a bad option value or combination
    not_found,      // a file, model, person or run that does not exist
    invalid_input,  // bad bytes: not an image, truncated, malformed labels
    too_large,      // over a size or pixel limit
    io,             // the file system failed us
    network,        // a download failed
    checksum,       // a file is not the file we expected
    model,          // a model file is missing, corrupt or of the wrong kind
    database,       // SQLite failed
    interrupted,    // the user stopped the operation (SIGINT/SIGTERM)
    internal,       // a bug in faceq
};

// Stable lowercase name for machine-readable records ("invalid_input", ...).
const char* to_string(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

private:
    ErrorKind kind_;
};

}  // namespace faceq
