#include "faceq/base/batch.hpp"

#include <fmt/format.h>

#include <istream>
#include <system_error>

#include "faceq/pipeline/image_io.hpp"

namespace faceq {
namespace fs = std::filesystem;

namespace {

void add_directory(const fs::path& dir, bool recursive, std::vector<InputItem>& out) {
    std::vector<std::string> found;
    std::error_code ec;
    auto visit = [&](const fs::directory_entry& e) {
        std::error_code ec2;
        if (e.is_regular_file(ec2) && has_image_extension(e.path())) found.push_back(e.path().string());
    };
    if (recursive) {
        for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
             !ec && it != end; it.increment(ec))
            visit(*it);
    } else {
        for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
             it.increment(ec))
            visit(*it);
    }
    if (ec) {
        out.push_back({dir.string(), fmt::format("cannot read directory '{}': {}", dir.string(), ec.message())});
        return;
    }
    if (found.empty()) {
        out.push_back({dir.string(), fmt::format("no images in directory '{}'{}", dir.string(),
                                                 recursive ? "" : " (use -r to descend into subdirectories)")});
        return;
    }
    std::sort(found.begin(), found.end());
    for (auto& f : found) out.push_back({std::move(f), std::nullopt});
}

void add_path(const std::string& arg, bool recursive, std::vector<InputItem>& out) {
    std::error_code ec;
    if (fs::is_directory(arg, ec))
        add_directory(arg, recursive, out);
    else
        out.push_back({arg, std::nullopt});  // missing files are reported by the decoder
}

}  // namespace

std::vector<InputItem> expand_inputs(const std::vector<std::string>& args, bool recursive, std::istream* stdin_paths) {
    std::vector<InputItem> out;
    for (const auto& arg : args) {
        if (arg == "-") {
            if (!stdin_paths) continue;
            std::string line;
            while (std::getline(*stdin_paths, line)) {
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (!line.empty()) add_path(line, recursive, out);
            }
        } else {
            add_path(arg, recursive, out);
        }
    }
    return out;
}

}  // namespace faceq
