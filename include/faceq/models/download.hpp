// faceq/models/download.hpp — fetching, verifying and installing models.
//
// fetch_file() downloads one URL with libcurl (connect and low-speed timeouts,
// retries with back-off, resume of a partial `<dest>.part` file by HTTP Range)
// or copies it from a local path / file: URL. install_models() walks the
// manifest role by role: for each wanted entry it finds the source (a mirror —
// a directory or base URL holding upstream files under their own names — else
// the entry's upstream URL; see source.hpp), verifies size and sha256 (a mismatch is refused and
// the bad file removed), unpacks it and renames the result into
// <home>/models atomically, then writes the sidecar (see models.hpp).
//
// Unpack rules: "none" (the file is the model), "bz2" (libarchive raw bzip2
// filter), "tgz-faceapi-resnet" (take face-api.js's ResNet weights out of the
// npm tarball and convert them into a dlib .dat, see convert_resnet.hpp).
// Upstream URLs of the form "npm:<spec>" are fetched with `npm pack <spec>`;
// "file:/abs/path" copies a file another package installed.
//
// Errors: Error{network} (unreachable host, HTTP error, timeout; names the URL),
// Error{checksum} (sha256 or size differs; names the file and both sums),
// Error{io}, Error{invalid_input} (an archive that does not unpack).
// Thread-safety: none needed; call from one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "faceq/base/progress.hpp"
#include "faceq/models/models.hpp"

namespace faceq {

struct FetchOptions {
    long connect_timeout_s = 15;
    long low_speed_time_s = 30;  // abort when under 1 KiB/s for this long
    int retries = 3;             // extra attempts after the first
    long retry_delay_ms = 500;   // doubled after each failed attempt
    ProgressFn progress;         // may be empty
};

// Downloads `url` (http, https, file:) or copies a local path to `dest`.
// Writes `<dest>.part` and resumes it when it exists; renames to `dest` when
// complete. Throws Error{network} / Error{io}.
void fetch_file(const std::string& url, const std::filesystem::path& dest, const FetchOptions& options);

struct DownloadOptions {
    std::string mirror;             // directory or base URL; empty = upstream
    std::vector<std::string> only;  // model names; empty = one model per role
    bool force = false;             // re-fetch even when installed
    FetchOptions fetch;
    LogFn log;  // may be empty
};

struct DownloadResult {
    std::string name;
    std::string role;
    std::string status;                       // "installed" | "already installed" | "failed" | "skipped"
    std::string source;                       // where it came from
    std::string message;                      // why it failed or was skipped
    std::optional<InstalledModel> installed;  // what is in place: set for "installed" and "already installed"
};

// Installs the wanted models into `models_dir`. Within a role, an entry that
// fails (e.g. upstream unreachable) falls through to the next priority; the
// role fails only when none can be had. Returns one result per entry tried.
std::vector<DownloadResult> install_models(const Manifest& manifest, const std::filesystem::path& models_dir,
                                           const DownloadOptions& options);

// What was asked for and is not in place after install_models(): each role
// (with `by_model`, i.e. --only, each model) none of whose entries installed,
// mapped to the last reason one of them failed. A role counts as done when
// any of its entries is in place. Empty when everything asked for is there.
std::map<std::string, std::string> unmet_requests(const std::vector<DownloadResult>& results, bool by_model);

}  // namespace faceq
