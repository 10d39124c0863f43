// source.cpp — see faceq/models/source.hpp.
#include "faceq/models/source.hpp"

#include <fmt/format.h>

#include <system_error>

#include "faceq/base/error.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// A mirror given as a directory: its path ("file:" URLs accepted).
fs::path mirror_directory(const std::string& mirror) {
    return location_kind(mirror) == LocationKind::file_url ? file_url_path(mirror) : fs::path(mirror);
}

}  // namespace

LocationKind location_kind(const std::string& location) {
    if (starts_with(location, "http://") || starts_with(location, "https://")) return LocationKind::http;
    if (starts_with(location, "npm:")) return LocationKind::npm;
    if (starts_with(location, "file:")) return LocationKind::file_url;
    if (location.find("://") != std::string::npos) return LocationKind::unsupported;
    return LocationKind::local_path;
}

fs::path file_url_path(const std::string& url) {
    std::string rest = url.substr(5);
    if (starts_with(rest, "//")) rest = rest.substr(2);
    return rest;
}

void check_mirror(const std::string& mirror) {
    if (mirror.empty() || is_http_url(mirror)) return;
    std::error_code ec;
    if (!fs::is_directory(mirror_directory(mirror), ec))
        throw Error(
            ErrorKind::usage,
            fmt::format("mirror '{}': not a directory nor an http(s) URL (from --mirror or FACEQ_MIRROR)", mirror));
}

std::vector<Source> sources_for(const std::string& what, const std::string& file_name, const std::string& upstream,
                                const std::string& mirror, const LogFn& log) {
    std::vector<Source> out;
    if (!mirror.empty() && location_kind(upstream) != LocationKind::file_url) {
        if (is_http_url(mirror)) {
            std::string base = mirror;
            while (!base.empty() && base.back() == '/') base.pop_back();
            out.push_back({base + "/" + file_name, true});
        } else {
            const fs::path dir = mirror_directory(mirror);
            const fs::path candidate = dir / file_name;
            std::error_code ec;
            if (fs::is_regular_file(candidate, ec))
                out.push_back({candidate.string(), true});
            else if (log)
                log(fmt::format("{}: '{}' is not in the mirror '{}'", what, file_name, dir.string()));
        }
    }
    if (!upstream.empty()) out.push_back({upstream, false});
    return out;
}

}  // namespace faceq
