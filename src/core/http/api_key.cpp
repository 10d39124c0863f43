// api_key.cpp — reading `faceq serve`'s API key (see faceq/http/api_key.hpp).
#include "faceq/http/api_key.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "faceq/base/error.hpp"

namespace faceq {

std::optional<ApiKey> read_api_key(const std::string& key_file, const LogFn& log) {
    ApiKey key;
    if (!key_file.empty()) {
        key.source = fmt::format("--api-key-file '{}'", key_file);
        std::ifstream in(key_file, std::ios::binary);
        if (!in) throw Error(ErrorKind::usage, fmt::format("cannot read API key file '{}'", key_file));
        std::ostringstream text;
        text << in.rdbuf();
        key.value = text.str();
        struct stat st {};
        if (log && ::stat(key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
            log(fmt::format("warning: API key file '{}' can be read by other users (chmod 600 it)", key_file));
    } else if (const char* env = std::getenv("FACEQ_API_KEY"); env && *env) {
        key.source = "FACEQ_API_KEY";
        key.value = env;
    } else {
        return std::nullopt;
    }
    std::string& v = key.value;
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(v.begin());
    if (v.empty()) throw Error(ErrorKind::usage, fmt::format("the API key from {} is empty", key.source));
    for (unsigned char c : v)
        if (c < 0x21 || c > 0x7e)
            throw Error(ErrorKind::usage,
                        fmt::format("the API key from {} must be printable ASCII without spaces", key.source));
    return key;
}

}  // namespace faceq
