// download.cpp — verifying, unpacking (libarchive) and installing models;
// see faceq/models/download.hpp. Fetching is in fetch.cpp.
//
// Where a model comes from, in order (models/source.hpp): `<mirror>/<source_file>`
// when a mirror is set, then the entry's upstream URL. Each source is verified
// on its own, so a corrupt mirror copy falls through to upstream rather than
// being installed.
//
// Nothing half-done reaches the models directory under its final name: each
// entry is fetched and unpacked inside a private staging directory in
// <models_dir> (same file system, so the final rename is atomic), and the
// staging directory is removed whatever happens. Staging directories left by a
// killed process are swept at the next run.
#include "faceq/models/download.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <system_error>
#include <tuple>

#include "base/archive.hpp"
#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/models/source.hpp"
#include "models/download_impl.hpp"
#include "pipeline/convert_resnet.hpp"

namespace faceq {

using namespace download_impl;

namespace {

// Entries bigger than this inside the face-api.js tarball are not the files we
// want; the cap keeps a hostile archive from filling the disk.
constexpr std::int64_t max_extracted_bytes = 256LL << 20;

// ---------------------------------------------------------------- unpacking

// Copies the current archive entry's data into a new file `out`.
void extract_current(struct archive* a, const fs::path& source, const fs::path& out, std::int64_t max_bytes) {
    Fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0)
        throw Error(ErrorKind::io, fmt::format("cannot write '{}': {}", out.string(), std::strerror(errno)));
    std::vector<char> buf(1 << 16);
    std::int64_t total = 0;
    for (;;) {
        const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
        if (n == 0) break;
        if (n < 0) throw unpack_error(source, a);
        total += n;
        if (max_bytes > 0 && total > max_bytes)
            throw Error(ErrorKind::invalid_input, fmt::format("cannot unpack '{}': an entry is larger than {} bytes",
                                                              source.string(), max_bytes));
        write_all(fd.get(), buf.data(), static_cast<std::size_t>(n), out);
    }
    sync_and_close(fd, out);
}

ArchiveReader open_archive(const fs::path& path, bool bzip2_raw) {
    ArchiveReader a(archive_read_new());
    if (!a) throw Error(ErrorKind::internal, "libarchive: cannot create a reader");
    if (bzip2_raw) {
        archive_read_support_filter_bzip2(a.get());
        archive_read_support_format_raw(a.get());
    } else {
        archive_read_support_filter_gzip(a.get());
        archive_read_support_format_tar(a.get());
    }
    if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) throw unpack_error(path, a.get());
    return a;
}

void unpack_bz2(const fs::path& source, const fs::path& out) {
    ArchiveReader a = open_archive(source, true);
    struct archive_entry* entry = nullptr;
    const int rc = archive_read_next_header(a.get(), &entry);
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) throw unpack_error(source, a.get());
    // The raw format accepts any bytes; without this check an uncompressed
    // file would be "unpacked" into a copy of itself.
    if (archive_filter_code(a.get(), 0) != ARCHIVE_FILTER_BZIP2)
        throw Error(ErrorKind::invalid_input, fmt::format("cannot unpack '{}': not a bzip2 file", source.string()));
    extract_current(a.get(), source, out, 0);
}

void unpack_faceapi_resnet(const fs::path& source, const fs::path& work_dir, const fs::path& out, const LogFn& log) {
    static const std::string manifest_name = "package/model/face_recognition_model-weights_manifest.json";
    static const std::string weights_name = "package/model/face_recognition_model.bin";
    const fs::path manifest = work_dir / "face_recognition_model-weights_manifest.json";
    const fs::path weights = work_dir / "face_recognition_model.bin";
    {
        ArchiveReader a = open_archive(source, false);
        bool got_manifest = false, got_weights = false;
        struct archive_entry* entry = nullptr;
        int rc;
        while (!(got_manifest && got_weights) &&
               ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK || rc == ARCHIVE_WARN)) {
            std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
            if (starts_with(name, "./")) name = name.substr(2);
            const bool regular = archive_entry_filetype(entry) == AE_IFREG;
            if (regular && name == manifest_name && !got_manifest) {
                extract_current(a.get(), source, manifest, max_extracted_bytes);
                got_manifest = true;
            } else if (regular && name == weights_name && !got_weights) {
                extract_current(a.get(), source, weights, max_extracted_bytes);
                got_weights = true;
            } else if (archive_read_data_skip(a.get()) != ARCHIVE_OK) {
                throw unpack_error(source, a.get());
            }
        }
        if (!got_manifest || !got_weights)
            throw Error(ErrorKind::invalid_input, fmt::format("cannot unpack '{}': it does not hold '{}' and '{}'",
                                                              source.string(), manifest_name, weights_name));
    }
    if (log) log("converting face-api.js ResNet weights into dlib's format");
    try {
        convert_faceapi_resnet(manifest, weights, out);
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot convert the weights in '{}': {}", source.string(), e.what()));
    }
}

// ---------------------------------------------------------------- installing

// Removes staging directories and temp files that a killed faceq left behind:
// names made by temp_path_beside() ("...tmp.<pid>.<n>") whose process is gone.
void sweep_stale_temps(const fs::path& models_dir) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(models_dir, ec)) {
        const std::string name = e.path().filename().string();
        const auto at = name.rfind(".tmp.");
        if (name.empty() || name.front() != '.' || at == std::string::npos) continue;
        const long pid = std::strtol(name.c_str() + at + 5, nullptr, 10);
        if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
        if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
        std::error_code rm;
        fs::remove_all(e.path(), rm);
    }
}

// Checks the fetched file against the manifest; returns its sha256. A file
// that does not match is deleted before the error is thrown.
std::string verify_fetched(const fs::path& fetched, const ModelEntry& entry, const std::string& source,
                           const LogFn& log) {
    std::error_code ec;
    const std::uint64_t size = fs::file_size(fetched, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot read '{}': {}", fetched.string(), ec.message()));
    if (entry.size > 0 && size != entry.size) {
        remove_quietly(fetched);
        throw Error(ErrorKind::checksum, fmt::format("size mismatch for '{}' from '{}': expected {} bytes, got {}",
                                                     entry.source_file, source, entry.size, size));
    }
    const std::string sha = sha256_file(fetched);
    if (!entry.sha256.empty() && sha != entry.sha256) {
        remove_quietly(fetched);
        throw Error(ErrorKind::checksum, fmt::format("checksum mismatch for '{}' from '{}': expected sha256 {}, got {}",
                                                     entry.source_file, source, entry.sha256, sha));
    }
    if (entry.sha256.empty() && log)
        log(fmt::format("warning: no checksum known for '{}' from '{}'; recorded its sha256 {}", entry.source_file,
                        source, sha));
    return sha;
}

// An installed model still matches the manifest unless the manifest now pins
// a different upstream file (a new release under the same name).
bool is_current(const InstalledModel& installed, const ModelEntry& entry) {
    if (installed.entry.unpack != entry.unpack) return false;
    return entry.sha256.empty() || installed.entry.sha256.empty() || installed.entry.sha256 == entry.sha256;
}

// Fetches, verifies, unpacks and installs one entry; returns where it came
// from and what is installed now.
std::pair<std::string, InstalledModel> install_one(const ModelEntry& entry, const fs::path& models_dir,
                                                   const DownloadOptions& options) {
    const LogFn& log = options.log;
    TempDir staging(temp_path_beside(models_dir / "download"));
    const fs::path fetched = staging.path() / entry.source_file;

    std::string used, fetched_sha;
    std::vector<Error> failures;
    for (const Source& src : sources_for(entry.name, entry.source_file, entry.url, options.mirror, log)) {
        try {
            if (log) log(fmt::format("{}: fetching {}", entry.name, src.location));
            fetch_file(src.location, fetched, options.fetch);
            fetched_sha = verify_fetched(fetched, entry, src.location, log);
            used = src.location;
            break;
        } catch (const Error& e) {
            remove_quietly(fetched);
            remove_quietly(fetched.string() + ".part");
            failures.push_back(e);
            if (log && src.from_mirror) log(fmt::format("{}: {}; trying upstream", entry.name, e.what()));
        }
    }
    if (used.empty()) {
        // Name every source's failure; the kind is the most telling one (a
        // checksum failure says more than the network error that followed it).
        std::string why;
        ErrorKind kind = failures.back().kind();
        for (const auto& f : failures) {
            why += (why.empty() ? "" : "; ") + std::string(f.what());
            if (f.kind() != ErrorKind::network) kind = f.kind();
        }
        throw Error(kind, why);
    }

    const fs::path target = models_dir / entry.file;
    TempFile unpacked(temp_path_beside(target));
    fs::path ready;
    if (entry.unpack == "none") {
        ready = fetched;
    } else if (entry.unpack == "bz2") {
        unpack_bz2(fetched, unpacked.path());
        ready = unpacked.path();
    } else if (entry.unpack == "tgz-faceapi-resnet") {
        unpack_faceapi_resnet(fetched, staging.path(), unpacked.path(), log);
        ready = unpacked.path();
    } else {
        throw Error(ErrorKind::internal, fmt::format("model '{}': unknown unpack '{}'", entry.name, entry.unpack));
    }
    const std::string installed_sha = entry.unpack == "none" ? fetched_sha : sha256_file(ready);

    // Drop the old sidecar first: between the two renames the model then
    // counts as not installed rather than as the old version.
    remove_quietly(models_dir / (entry.file + ".json"));
    rename_durable(ready, target);
    unpacked.release();

    InstalledModel installed;
    installed.entry = entry;
    installed.entry.sha256 = fetched_sha;  // record what was verified, also when upstream publishes none
    installed.path = target;
    installed.sha256 = installed_sha;
    installed.installed_at = utc_now_iso8601();
    write_installed(models_dir, installed);
    return {used, installed};
}

}  // namespace

std::vector<DownloadResult> install_models(const Manifest& manifest, const fs::path& models_dir,
                                           const DownloadOptions& options) {
    // Each group is one thing the user asked for: a role (its entries best
    // first; the first that installs wins) or one model named with --only.
    std::vector<std::vector<const ModelEntry*>> groups;
    if (options.only.empty()) {
        std::vector<std::string> roles{role::detector_cnn, role::detector_yunet, role::landmarks, role::embedder,
                                       role::gender};
        for (const auto& m : manifest.models)
            if (std::find(roles.begin(), roles.end(), m.role) == roles.end()) roles.push_back(m.role);
        for (const auto& r : roles)
            if (auto entries = manifest.by_role(r); !entries.empty()) groups.push_back(std::move(entries));
    } else {
        std::set<std::string> seen;
        for (const auto& name : options.only) {
            const ModelEntry* e = manifest.find(name);
            if (!e) {
                std::string known;
                for (const auto& m : manifest.models) known += (known.empty() ? "" : ", ") + m.name;
                throw Error(ErrorKind::usage, fmt::format("unknown model '{}' (known: {})", name, known));
            }
            if (seen.insert(name).second) groups.push_back({e});
        }
    }

    std::error_code ec;
    fs::create_directories(models_dir, ec);
    if (ec)
        throw Error(ErrorKind::io, fmt::format("cannot create directory '{}': {}", models_dir.string(), ec.message()));
    sweep_stale_temps(models_dir);

    std::vector<DownloadResult> results;
    for (const auto& group : groups) {
        bool done = false;
        if (!options.force) {
            for (const ModelEntry* e : group) {
                const auto installed = read_installed(models_dir, *e);
                if (!installed || !is_current(*installed, *e)) continue;
                // "Installed" is said only of bytes hashed now. A damaged file
                // loses its sidecar (it no longer counts as installed) and
                // the role is installed again in priority order.
                bool intact = false;
                try {
                    intact = installed_intact(*installed, Verify::rehash);
                } catch (const Error&) {
                }
                if (intact) {
                    results.push_back({e->name, e->role, "already installed", installed->path.string(), "", installed});
                    done = true;
                } else {
                    if (options.log)
                        options.log(fmt::format("{}: '{}' does not match its recorded sha256; installing it again",
                                                e->name, installed->path.string()));
                    fs::remove(models_dir / (e->file + ".json"), ec);
                }
                break;
            }
        }
        for (auto it = group.begin(); !done && it != group.end(); ++it) {
            const ModelEntry& e = **it;
            DownloadResult r{e.name, e.role, "", "", "", std::nullopt};
            try {
                std::tie(r.source, r.installed) = install_one(e, models_dir, options);
                r.status = "installed";
                done = true;
            } catch (const std::exception& err) {
                r.status = "failed";
                r.message = err.what();
                if (options.log && std::next(it) != group.end())
                    options.log(fmt::format("{}: not installed; trying {}", e.name, (*std::next(it))->name));
            }
            results.push_back(std::move(r));
        }
    }
    return results;
}

std::map<std::string, std::string> unmet_requests(const std::vector<DownloadResult>& results, bool by_model) {
    std::map<std::string, bool> done;
    std::map<std::string, std::string> last_failure;
    for (const auto& r : results) {
        const std::string& key = by_model ? r.name : r.role;
        done[key] = done[key] || r.installed.has_value();
        if (r.status == "failed") last_failure[key] = r.message;
    }
    std::map<std::string, std::string> unmet;
    for (const auto& [key, ok] : done)
        if (!ok) unmet[key] = last_failure[key];
    return unmet;
}

}  // namespace faceq
