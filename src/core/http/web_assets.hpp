// http/web_assets.hpp — the web page served by `faceq serve` at `/` and
// `/ui/<file>`: every file under the repository's web/ folder, compiled into
// the binary at build time (cmake/embed_web.cmake writes the table; any file
// added under web/ is embedded on the next build), so the page works offline
// and from any working directory.
//
// Lookup is by exact path in that table only: a request can never reach the
// file system through it, whatever its `..`, `%2e` or `//`.
// Thread-safety: read-only data.
#pragma once

#include <cstddef>
#include <string_view>

namespace faceq::detail {

struct WebAsset {
    std::string_view path;          // relative to web/: "index.html", "app.js", "views/people.js"
    std::string_view bytes;         // the file's content
    std::string_view content_type;  // from its extension ("text/javascript; charset=utf-8")
    std::string_view etag;          // quoted, from the SHA-256 of its bytes
};

// The asset at `path` (relative to web/), or nullptr.
const WebAsset* find_web_asset(std::string_view path) noexcept;

// The whole table, sorted by path (the generated file defines them).
extern const WebAsset web_assets[];
extern const std::size_t web_asset_count;

}  // namespace faceq::detail
