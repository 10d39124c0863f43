// fuzz_manifest.cpp — libFuzzer harness for parse_manifest() (models/models.hpp),
// the reader of data/models.json, which decides which files `faceq download
// models` fetches and where it writes them.
//
// Besides crashes and sanitizer reports, it checks what a manifest that
// passes promises: names and files are plain (no '/', no leading '.'), names
// unique, and by_role() lists a role's entries best priority first.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "faceq/base/error.hpp"
#include "faceq/models/models.hpp"

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

bool plain(const std::string& name) {
    return !name.empty() && name.find('/') == std::string::npos && name.front() != '.';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    faceq::Manifest manifest;
    try {
        manifest = faceq::parse_manifest(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    } catch (const faceq::Error& e) {
        require(e.kind() == faceq::ErrorKind::invalid_input);
        return 0;
    }
    for (const auto& entry : manifest.models) {
        require(plain(entry.name) && plain(entry.file) && plain(entry.source_file));
        require(manifest.find(entry.name) == &entry);
        const auto ranked = manifest.by_role(entry.role);
        for (std::size_t i = 1; i < ranked.size(); ++i) require(ranked[i - 1]->priority < ranked[i]->priority);
    }
    return 0;
}
