// web_assets.cpp — find_web_asset() over the table cmake/embed_web.cmake
// generates from web/ (see web_assets.hpp).
#include "http/web_assets.hpp"

#include <algorithm>

namespace faceq::detail {

const WebAsset* find_web_asset(std::string_view path) noexcept {
    const WebAsset* end = web_assets + web_asset_count;
    const WebAsset* it =
        std::lower_bound(web_assets, end, path, [](const WebAsset& a, std::string_view p) { return a.path < p; });
    return it != end && it->path == path ? it : nullptr;
}

}  // namespace faceq::detail
