#include "faceq/base/error.hpp"

namespace faceq {

const char* to_string(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::usage:
            return "usage";
        case ErrorKind::not_found:
            return "not_found";
        case ErrorKind::invalid_input:
            return "invalid_input";
        case ErrorKind::too_large:
            return "too_large";
        case ErrorKind::io:
            return "io";
        case ErrorKind::network:
            return "network";
        case ErrorKind::checksum:
            return "checksum";
        case ErrorKind::model:
            return "model";
        case ErrorKind::database:
            return "database";
        case ErrorKind::interrupted:
            return "interrupted";
        case ErrorKind::internal:
            return "internal";
    }
    return "internal";
}

}  // namespace faceq
