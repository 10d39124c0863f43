// dataset_download.cpp — download_dataset(): choosing the archive's source,
// fetching and verifying it, and unpacking its images (libarchive) into
// <home>/datasets/<name>/images; see faceq/training/datasets.hpp.
#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>

#include "base/archive.hpp"
#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/models/source.hpp"
#include "faceq/training/datasets.hpp"
#include "training/datasets_impl.hpp"

namespace faceq {

using namespace datasets_impl;

namespace {

constexpr std::int64_t max_image_entry_bytes = 32ll << 20;  // a face photo is far smaller

// ---------------------------------------------------------------- libarchive

ArchiveReader open_tar(const fs::path& path) {
    ArchiveReader a(archive_read_new());
    if (!a) throw Error(ErrorKind::internal, "libarchive: cannot create a reader");
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    archive_read_support_format_zip(a.get());
    if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) throw unpack_error(path, a.get());
    return a;
}

// The image file name an archive entry contributes, or "" to skip it: only
// regular files with an image extension, flattened to their base name (an
// archive cannot write outside the images folder), no hidden files.
std::string image_entry_name(struct archive_entry* entry) {
    if (archive_entry_filetype(entry) != AE_IFREG) return {};
    const char* raw = archive_entry_pathname(entry);
    if (!raw) return {};
    const std::string name = fs::path(raw).filename().string();
    if (name.empty() || name.front() == '.' || name.find('\0') != std::string::npos) return {};
    const std::string l = lower(name);
    if (!ends_with(l, ".jpg") && !ends_with(l, ".jpeg") && !ends_with(l, ".png")) return {};
    return name;
}

// Walks the archive; `visit(name, archive)` is called for every image entry
// (the first of duplicate names only) and may read its data.
template <typename Visit>
void for_each_image(const fs::path& archive_path, Visit visit) {
    ArchiveReader a = open_tar(archive_path);
    std::set<std::string> seen;
    struct archive_entry* entry = nullptr;
    int rc;
    while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
        const std::string name = image_entry_name(entry);
        if (!name.empty() && seen.insert(name).second) {
            visit(name, a.get());
        } else if (archive_read_data_skip(a.get()) != ARCHIVE_OK) {
            throw unpack_error(archive_path, a.get());
        }
    }
    if (rc != ARCHIVE_EOF) throw unpack_error(archive_path, a.get());
}

void extract_to(struct archive* a, const fs::path& archive_path, const fs::path& out) {
    std::string data;
    std::vector<char> buf(1 << 16);
    for (;;) {
        const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
        if (n == 0) break;
        if (n < 0) throw unpack_error(archive_path, a);
        data.append(buf.data(), static_cast<std::size_t>(n));
        if (static_cast<std::int64_t>(data.size()) > max_image_entry_bytes)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("cannot unpack '{}': entry '{}' is larger than {} MB", archive_path.string(),
                                    out.filename().string(), max_image_entry_bytes >> 20));
    }
    std::ofstream f(out, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", out.string(), std::strerror(errno)));
}

void remove_tree_quietly(const fs::path& p) {
    std::error_code ec;
    fs::remove_all(p, ec);
}

// ---------------------------------------------------------------- download steps

// Where the archive comes from: --from, else the mirror, else upstream.
// Only the first is tried: unlike a model, a dataset does not fall back to
// upstream when the mirror's copy fails. A local file is made absolute.
std::string choose_source(const DatasetEntry& entry, const DatasetDownloadOptions& options) {
    std::string source = options.from;
    if (source.empty()) {
        const auto sources = sources_for(entry.name, entry.source_file, entry.url, options.mirror, options.log);
        if (!sources.empty()) source = sources.front().location;
    }
    if (source.empty())
        throw Error(ErrorKind::not_found,
                    fmt::format("no source for dataset '{}': it has no public URL; give --from URL|FILE, or a mirror "
                                "holding '{}' (--mirror or FACEQ_MIRROR)",
                                entry.name, entry.source_file));
    if (const auto kind = location_kind(source); kind != LocationKind::http && kind != LocationKind::file_url) {
        std::error_code ec;
        if (!fs::is_regular_file(source, ec))
            throw Error(ErrorKind::not_found, fmt::format("dataset archive '{}' not found", source));
        source = fs::absolute(source).lexically_normal().string();
    }
    return source;
}

// True (and `result` filled from dataset.json) when the same subset of the
// same archive is unpacked already.
bool is_installed(const fs::path& info_path, const fs::path& images, const DatasetDownloadOptions& options,
                  DatasetDownloadResult& result) {
    const auto info = read_json_file(info_path);
    if (!info) return false;
    std::error_code ec;
    if (info->value("source", "") != result.source || info->value("limit", std::size_t{0}) != options.limit ||
        info->value("seed", std::uint64_t{0}) != options.seed || !fs::is_directory(images, ec))
        return false;
    result.status = "already installed";
    result.sha256 = info->value("sha256", "");
    result.verified = info->value("verified", false);
    result.images = info->value("images", std::size_t{0});
    result.images_in_archive = info->value("images_in_archive", std::size_t{0});
    return true;
}

// Fetches (or copies) the archive into datasets/downloads, keeping it so
// another --limit does not fetch it again, and verifies it when it is the
// catalogued file (a mismatch is removed). Sets result.sha256 and .verified;
// returns the archive's path.
fs::path fetch_archive(const Home& home, const DatasetEntry& entry, const DatasetDownloadOptions& options,
                       DatasetDownloadResult& result) {
    const LogFn& log = options.log;
    const std::string& source = result.source;
    std::string name = fs::path(source).filename().string();
    if (name.empty() || name == "." || name == "..") name = entry.source_file;
    const fs::path downloads = home.datasets_dir() / "downloads";
    std::error_code ec;
    fs::create_directories(downloads, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", downloads.string(), ec.message()));
    const fs::path archive = downloads / name;
    const bool catalogued = name == entry.source_file && !entry.sha256.empty();
    bool have = false;
    if (fs::is_regular_file(archive, ec) && catalogued && !options.force) {
        have = sha256_file(archive) == entry.sha256;
        if (have && log) log(fmt::format("{}: using the archive already in '{}'", entry.name, archive.string()));
    }
    if (!have) {
        fs::remove(archive, ec);
        if (log) log(fmt::format("{}: fetching {}", entry.name, source));
        fetch_file(source, archive, options.fetch);
    }
    result.sha256 = sha256_file(archive);
    if (catalogued) {
        if (entry.size > 0 && fs::file_size(archive, ec) != entry.size) {
            fs::remove(archive, ec);
            throw Error(ErrorKind::checksum, fmt::format("size mismatch for '{}' from '{}': expected {} bytes",
                                                         entry.source_file, source, entry.size));
        }
        if (result.sha256 != entry.sha256) {
            fs::remove(archive, ec);
            throw Error(ErrorKind::checksum,
                        fmt::format("checksum mismatch for '{}' from '{}': expected sha256 {}, got {}",
                                    entry.source_file, source, entry.sha256, result.sha256));
        }
        result.verified = true;
    } else if (log) {
        log(fmt::format("warning: '{}' is not the catalogued '{}'; its sha256 {} is recorded but not verified", name,
                        entry.source_file, result.sha256));
    }
    return archive;
}

// Pass 1 over the archive: the image names to unpack (all, or the --limit
// subset with the smallest seeded hashes). Sets result.images_in_archive.
std::set<std::string> choose_images(const fs::path& archive, const DatasetDownloadOptions& options,
                                    DatasetDownloadResult& result) {
    std::vector<std::string> names;
    for_each_image(archive, [&](const std::string& n, struct archive* a) {
        names.push_back(n);
        archive_read_data_skip(a);
    });
    if (names.empty())
        throw Error(ErrorKind::invalid_input, fmt::format("archive '{}' holds no images", archive.string()));
    result.images_in_archive = names.size();
    std::set<std::string> keep;
    if (options.limit > 0 && options.limit < names.size()) {
        std::vector<std::pair<std::uint64_t, std::string>> order;
        for (const auto& n : names) order.push_back({seeded_hash(n, options.seed), n});
        std::sort(order.begin(), order.end());
        for (std::size_t i = 0; i < options.limit; ++i) keep.insert(order[i].second);
    } else {
        keep.insert(names.begin(), names.end());
    }
    return keep;
}

// Pass 2: unpacks the `keep` images into a fresh folder beside <dir>/images,
// then swaps it in, so the images appear all at once.
void unpack_images(const fs::path& archive, const std::set<std::string>& keep, const fs::path& dir,
                   const DatasetEntry& entry, const DatasetDownloadOptions& options) {
    const fs::path images = dir / "images";
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
    const fs::path staging = temp_path_beside(images);
    struct Cleanup {
        fs::path p;
        ~Cleanup() { remove_tree_quietly(p); }
    } cleanup{staging};
    fs::create_directories(staging, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot create '{}': {}", staging.string(), ec.message()));
    std::uint64_t done = 0;
    for_each_image(archive, [&](const std::string& n, struct archive* a) {
        if (!keep.count(n)) {
            archive_read_data_skip(a);
            return;
        }
        extract_to(a, archive, staging / n);
        if (options.fetch.progress) options.fetch.progress({"unpack " + entry.name, ++done, keep.size()});
    });
    const fs::path old = temp_path_beside(images);
    if (fs::exists(images, ec)) fs::rename(images, old, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot replace '{}': {}", images.string(), ec.message()));
    rename_durable(staging, images);
    remove_tree_quietly(old);
}

}  // namespace

DatasetDownloadResult download_dataset(const Home& home, const DatasetEntry& entry,
                                       const DatasetDownloadOptions& options) {
    DatasetDownloadResult result;
    result.dir = home.datasets_dir() / entry.name;
    result.source = choose_source(entry, options);

    const fs::path images = result.dir / "images";
    const fs::path info_path = result.dir / "dataset.json";
    if (!options.force && is_installed(info_path, images, options, result)) return result;

    const fs::path archive = fetch_archive(home, entry, options, result);
    const std::set<std::string> keep = choose_images(archive, options, result);
    unpack_images(archive, keep, result.dir, entry, options);
    result.images = keep.size();

    const std::string& source = result.source;
    json info{{"name", entry.name},
              {"source", source},
              {"archive", archive.string()},
              {"sha256", result.sha256},
              {"verified", result.verified},
              {"limit", options.limit},
              {"seed", options.seed},
              {"images", result.images},
              {"images_in_archive", result.images_in_archive},
              {"license", entry.license},
              {"installed_at", utc_now_iso8601()}};
    write_file_atomic(info_path, info.dump(2) + "\n");
    result.status = "installed";
    return result;
}

}  // namespace faceq
