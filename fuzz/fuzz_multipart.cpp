// fuzz_multipart.cpp — libFuzzer harness for parse_multipart() (http/server.hpp),
// which splits every /analyze and /register body a client sends.
//
// Input: the Content-Type header value, a newline, then the body. Besides
// crashes and sanitizer reports, it checks what the API promises: every part's
// content points into the body, and no more than 64 parts are kept (65 fail).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "faceq/http/server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto newline = input.find('\n');
    if (newline == std::string_view::npos) return 0;
    const std::string_view content_type = input.substr(0, newline);
    const std::string_view body = input.substr(newline + 1);

    std::vector<faceq::FormPart> parts;
    const bool ok = faceq::parse_multipart(body, content_type, parts);
    if (ok && parts.size() > 64) std::abort();
    for (const auto& part : parts) {
        const bool inside = part.content.data() >= body.data() &&
                            part.content.data() + part.content.size() <= body.data() + body.size();
        if (!inside) std::abort();
    }
    return 0;
}
