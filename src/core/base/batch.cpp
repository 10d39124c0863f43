#include "faceq/base/batch.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <istream>
#include <system_error>

#include "faceq/pipeline/image_io.hpp"

namespace faceq {
namespace fs = std::filesystem;

namespace {

// Collects the images under `dir` into `found`, with an error item (in its
// place by name) for each entry that cannot be read: a subdirectory that does
// not open, a link that leads nowhere or in a loop. Symbolic links to
// directories are not followed, so a walk cannot loop. `rel` is `dir`'s path
// below the folder argument (empty for the argument itself): the keys are
// built from it, not by taking paths apart, so "photos", "photos/" and
// "./photos" give the same keys.
void walk_directory(const fs::path& dir, const fs::path& rel, bool recursive, std::vector<InputItem>& found) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    for (const fs::directory_iterator end; !ec && it != end; it.increment(ec)) {
        const fs::directory_entry& e = *it;
        const fs::path key = rel / e.path().filename();
        std::error_code ec2;
        const bool is_link = e.is_symlink(ec2);
        if (recursive && !is_link && e.is_directory(ec2)) {
            walk_directory(e.path(), key, recursive, found);
            continue;
        }
        if (!has_image_extension(e.path())) continue;
        const fs::file_status st = e.status(ec2);
        if (ec2 || !fs::exists(st)) {
            const std::string why = ec2 ? ec2.message() : "a symbolic link to nothing";
            found.push_back(
                {e.path().string(), fmt::format("cannot read '{}': {}", e.path().string(), why), key.generic_string()});
        } else if (fs::is_regular_file(st)) {
            found.push_back({e.path().string(), std::nullopt, key.generic_string()});
        }
    }
    if (ec)
        found.push_back({dir.string(), fmt::format("cannot read directory '{}': {}", dir.string(), ec.message()),
                         rel.empty() ? dir.string() : rel.generic_string()});
}

void add_directory(const fs::path& dir, bool recursive, std::vector<InputItem>& out) {
    std::vector<InputItem> found;
    walk_directory(dir, fs::path(), recursive, found);
    if (found.empty()) {
        out.push_back({dir.string(),
                       fmt::format("no images in directory '{}'{}", dir.string(),
                                   recursive ? "" : " (use -r to descend into subdirectories)"),
                       dir.string()});
        return;
    }
    std::stable_sort(found.begin(), found.end(),
                     [](const InputItem& a, const InputItem& b) { return a.path < b.path; });
    for (auto& f : found) out.push_back(std::move(f));
}

void add_path(const std::string& arg, bool recursive, std::vector<InputItem>& out) {
    std::error_code ec;
    if (fs::is_directory(arg, ec))
        add_directory(arg, recursive, out);
    else
        out.push_back({arg, std::nullopt, arg});  // missing files are reported by the decoder
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
