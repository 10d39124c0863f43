#include "faceq/base/home.hpp"

#include <system_error>

namespace faceq {

std::filesystem::path resolve_data_dir(const std::filesystem::path& explicit_dir,
                                       const std::filesystem::path& executable) {
    if (!explicit_dir.empty()) return explicit_dir;
    std::error_code ec;
    if (!executable.empty()) {
        const auto installed = executable.parent_path().parent_path() / "share" / "faceq";
        if (std::filesystem::exists(installed / "models.json", ec)) return installed;
    }
    return FACEQ_SOURCE_DATA_DIR;
}

const char* version() noexcept { return FACEQ_VERSION; }

}  // namespace faceq
