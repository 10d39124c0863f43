// xmp_options.hpp — the XMP options `analyze --xmp` and `export xmp` share
// (one definition, so that both spell them alike).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "faceq/session/xmp_faces.hpp"

namespace faceq::cli {

struct XmpCliOptions {
    std::string sidecar = "photo.jpg.xmp";
    std::string persons = "known";

    XmpWriteOptions options() const {
        return {sidecar == "photo.xmp" ? SidecarNaming::stem : SidecarNaming::full_name, persons == "all"};
    }
};

// `needs`: the flag they go with (analyze's --xmp), or nullptr.
inline void add_xmp_options(CLI::App* sub, XmpCliOptions& o, CLI::Option* needs = nullptr) {
    auto* sidecar =
        sub->add_option("--sidecar", o.sidecar,
                        "Sidecar name: photo.jpg.xmp (digiKam, darktable) or photo.xmp (Lightroom, exiftool)")
            ->check(CLI::IsMember({"photo.jpg.xmp", "photo.xmp"}))
            ->capture_default_str();
    auto* persons =
        sub->add_option("--persons", o.persons,
                        "Faces to write: known (named persons) or all (strangers too, named by their id unknown_...)")
            ->check(CLI::IsMember({"known", "all"}))
            ->capture_default_str();
    if (needs != nullptr) {
        sidecar->needs(needs);
        persons->needs(needs);
    }
}

}  // namespace faceq::cli
