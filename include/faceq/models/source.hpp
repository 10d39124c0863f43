// faceq/models/source.hpp — where a file comes from: the one reading of the
// location strings that models.json, data/datasets.json, --from and --mirror
// (or FACEQ_MIRROR) hold, shared by model downloads, dataset downloads and the
// CLI's check of --mirror.
//
// A location is one of
//   http://... | https://...   fetched with libcurl
//   npm:<spec>                 fetched with `npm pack <spec>` (models only)
//   file:/abs/path | file:///abs/path
//                              a local file named by URL (another package's)
//   anything else without "://": a local path
// A mirror holds upstream files under their own names (models.json's and
// datasets.json's `source_file`): an http(s) base URL, or a directory (given
// as a path or a file: URL). A mirror stands in for the network only, so an
// upstream file: location is never looked up under it; a mirror directory
// that lacks the file is skipped without any I/O beyond a stat().
//
// Errors: check_mirror throws Error{usage} for a mirror that is neither an
// existing directory nor an http(s) URL (a typo must not read as six failed
// downloads). Nothing else here throws.
// Thread-safety: free functions, safe from any thread.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "faceq/base/progress.hpp"

namespace faceq {

enum class LocationKind {
    http,         // http:// or https://
    npm,          // npm:<spec>
    file_url,     // file:/abs/path, file:///abs/path
    local_path,   // a path
    unsupported,  // another scheme ("ftp://...")
};

LocationKind location_kind(const std::string& location);

inline bool is_http_url(const std::string& location) { return location_kind(location) == LocationKind::http; }

// The path a file: URL names: "file:///a/b" and "file:/a/b" both name /a/b.
// Requires location_kind(url) == LocationKind::file_url.
std::filesystem::path file_url_path(const std::string& url);

// Throws Error{usage} "mirror '<mirror>': not a directory nor an http(s) URL
// (from --mirror or FACEQ_MIRROR)" unless `mirror` is empty, an http(s) URL,
// or a directory (path or file: URL) that exists.
void check_mirror(const std::string& mirror);

struct Source {
    std::string location;  // a URL or path for fetch_file()
    bool from_mirror = false;
};

// The places to fetch one file from, in the order to try them:
//   1. the mirror's copy, when `mirror` is set and `upstream` is not a file:
//      URL: "<base URL>/<file_name>" (trailing slashes of the base dropped),
//      or "<dir>/<file_name>" when the mirror directory holds it — when it
//      does not, `log` gets "<what>: '<file_name>' is not in the mirror
//      '<dir>'" and the mirror is skipped;
//   2. `upstream`, unless it is empty.
// `what` names the file for people (a model or dataset name).
std::vector<Source> sources_for(const std::string& what, const std::string& file_name, const std::string& upstream,
                                const std::string& mirror, const LogFn& log);

}  // namespace faceq
