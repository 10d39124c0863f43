// recorded_photos.cpp — see recorded_photos.hpp.
#include "session/recorded_photos.hpp"

#include <filesystem>
#include <system_error>

namespace faceq::detail {

std::variant<DecodedImage, std::string> load_recorded_photo(const std::string& path, const std::string& sha256) {
    if (path.empty()) return std::string("no path was recorded");
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::string("missing");
    DecodedImage image;
    try {
        image = load_image_file(path);
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
    if (image.sha256 != sha256) return std::string("changed since it was recorded");
    return image;
}

}  // namespace faceq::detail
