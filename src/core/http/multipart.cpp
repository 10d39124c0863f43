// multipart.cpp — parse_multipart (server.hpp): the multipart/form-data bodies
// of /analyze and /register. Apart from server.cpp so that the fuzzing build
// (fuzz/fuzz_multipart.cpp) can compile it alone.
#include <string>
#include <string_view>
#include <vector>

#include "faceq/http/server.hpp"
#include "http/header_text.hpp"

namespace faceq {

using detail::lower;
using detail::trim;

bool parse_multipart(std::string_view body, std::string_view content_type, std::vector<FormPart>& out) {
    const std::string type(content_type);
    const auto b = lower(type).find("boundary=");
    if (b == std::string::npos) return false;
    std::string boundary = type.substr(b + 9);
    if (const auto semi = boundary.find(';'); semi != std::string::npos) boundary.resize(semi);
    boundary = trim(boundary);
    if (boundary.size() >= 2 && boundary.front() == '"' && boundary.back() == '"')
        boundary = boundary.substr(1, boundary.size() - 2);
    if (boundary.empty() || boundary.size() > 70) return false;  // RFC 2046's limit
    const std::string delimiter = "--" + boundary;
    const std::string next_delimiter = "\r\n" + delimiter;
    std::size_t pos = body.find(delimiter);
    if (pos == std::string_view::npos) return false;
    for (;;) {
        pos += delimiter.size();
        if (body.substr(pos, 2) == "--") return true;  // the closing delimiter
        if (body.substr(pos, 2) != "\r\n") return false;
        pos += 2;
        const auto head_end = body.find("\r\n\r\n", pos);
        if (head_end == std::string_view::npos) return false;
        FormPart part;
        std::string_view head = body.substr(pos, head_end - pos);
        while (!head.empty()) {
            const auto eol = head.find("\r\n");
            const std::string_view line = head.substr(0, eol);
            head = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
            const auto colon = line.find(':');
            if (colon == std::string_view::npos) continue;
            const std::string key = lower(std::string(line.substr(0, colon)));
            const std::string value = trim(std::string(line.substr(colon + 1)));
            if (key == "content-type") part.content_type = value;
            if (key != "content-disposition") continue;
            // name="..." and filename="..." (quoted, as browsers and curl send them).
            const auto param = [&value](const std::string& name) -> std::string {
                for (std::size_t at = value.find(name + "=\""); at != std::string::npos;
                     at = value.find(name + "=\"", at + 1)) {
                    if (at > 0 && value[at - 1] != ' ' && value[at - 1] != ';') continue;  // "filename" for "name"
                    const auto start = at + name.size() + 2;
                    const auto end = value.find('"', start);
                    return value.substr(start, end == std::string::npos ? std::string::npos : end - start);
                }
                return {};
            };
            part.name = param("name");
            part.filename = param("filename");
        }
        const auto data = head_end + 4;
        const auto next = body.find(next_delimiter, data);
        if (next == std::string_view::npos) return false;
        part.content = body.substr(data, next - data);
        out.push_back(std::move(part));
        if (out.size() > 64) return false;
        pos = next + 2;
    }
}

}  // namespace faceq
