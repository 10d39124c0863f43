// faceq/http/api_key.hpp — where `faceq serve` gets its API key, and what a
// key may be.
//
// The key comes from a file (`--api-key-file`: its whole content) or, when no
// file is given, from the FACEQ_API_KEY environment variable; neither means
// the API is open. Surrounding white space (a file's trailing newline) is
// dropped; what is left must be non-empty printable ASCII without spaces, so
// that it travels unchanged in an `X-API-Key` or `Authorization: Bearer`
// header.
//
// Errors: Error{usage} for an unreadable file, an empty key or a character
// outside 0x21..0x7e, naming where the key came from (never the key).
// A key file that other users can read gives a warning through `log`.
// Thread-safety: reads the environment; call it before starting threads.
#pragma once

#include <optional>
#include <string>

#include "faceq/base/progress.hpp"

namespace faceq {

struct ApiKey {
    std::string value;
    std::string source;  // "--api-key-file '<path>'" or "FACEQ_API_KEY"
};

// `key_file`: empty = read FACEQ_API_KEY. Returns nullopt when neither gives a key.
std::optional<ApiKey> read_api_key(const std::string& key_file, const LogFn& log);

}  // namespace faceq
