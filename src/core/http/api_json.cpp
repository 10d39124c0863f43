// api_json.cpp — the /api routes' JSON shapes and parsers (see api_json.hpp).
#include "http/api_json.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <ctime>

#include "faceq/base/error.hpp"
#include "http/header_text.hpp"

namespace faceq::detail {

using nlohmann::json;

json json_body(std::string_view body) {
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded()) throw Error(ErrorKind::invalid_input, "the request body is not valid JSON");
    if (!j.is_object()) throw Error(ErrorKind::invalid_input, "the request body must be a JSON object");
    return j;
}

std::string string_field(const json& body, const char* name) {
    const auto it = body.find(name);
    if (it == body.end() || !it->is_string())
        throw Error(ErrorKind::invalid_input, fmt::format("the request body needs a string field '{}'", name));
    return it->get<std::string>();
}

std::optional<std::int64_t> optional_integer_field(const json& body, const char* name) {
    const auto it = body.find(name);
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer())
        throw Error(ErrorKind::invalid_input, fmt::format("the field '{}' must be an integer", name));
    return it->get<std::int64_t>();
}

std::int64_t integer_field(const json& body, const char* name) {
    const auto v = optional_integer_field(body, name);
    if (!v) throw Error(ErrorKind::invalid_input, fmt::format("the request body needs an integer field '{}'", name));
    return *v;
}

std::int64_t integer_param(const std::string* text, const char* name, std::int64_t fallback, std::int64_t lo,
                           std::int64_t hi) {
    if (!text) return fallback;
    std::int64_t v = 0;
    std::size_t used = 0;
    try {
        v = std::stoll(*text, &used);
    } catch (...) {
        used = 0;
    }
    if (text->empty() || used != text->size() || v < lo || v > hi)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("query parameter '{}' must be an integer from {} to {}", name, lo, hi));
    return v;
}

json api_person_json(const PersonInfo& info, bool has_thumbnail) {
    const auto& p = info.person;
    return json{{"id", p.public_id},
                {"name", p.name ? json(*p.name) : json(nullptr)},
                {"kind", p.kind},
                {"samples", info.samples},
                {"detections", info.detections},
                {"last_seen", info.last_seen ? json(*info.last_seen) : json(nullptr)},
                {"thumbnail", has_thumbnail ? json("/api/persons/" + p.public_id + "/thumbnail") : json(nullptr)}};
}

namespace {
// Floats rounded to 4 decimals, as the analysis records show distances.
json rounded(std::optional<float> v) {
    return v ? json(std::round(static_cast<double>(*v) * 10000.0) / 10000.0) : json(nullptr);
}
}  // namespace

json api_suggestion_json(const Suggestion& s) {
    return json{{"id", s.known.public_id},
                {"name", s.known.name ? json(*s.known.name) : json(nullptr)},
                {"distance", rounded(s.distance)},
                {"margin", rounded(s.margin)}};
}

json api_box_json(const Box& box) {
    return json{{"x", box.x}, {"y", box.y}, {"width", box.width}, {"height", box.height}};
}

json api_face_json(const PersonFace& f) {
    return json{{"detection_id", f.detection_id},
                {"sample_id", f.sample_id ? json(*f.sample_id) : json(nullptr)},
                {"image", f.image_path},
                {"detected_at", f.detected_at},
                {"box", api_box_json(f.box)},
                {"age", rounded(f.age)},
                {"gender", f.gender ? json(*f.gender) : json(nullptr)},
                {"distance", rounded(f.distance)},
                {"decision", f.decision},
                {"rejected", f.rejected},
                {"thumbnail", "/api/thumbnails/detections/" + std::to_string(f.detection_id)}};
}

json api_sample_json(const SampleInfo& s) {
    return json{{"sample_id", s.id},
                {"source_path", s.source_path},
                {"box", api_box_json(s.box)},
                {"created_at", s.created_at},
                {"thumbnail", "/api/thumbnails/samples/" + std::to_string(s.id)}};
}

std::optional<std::int64_t> parse_iso_time(const std::string& text) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, used = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) != 6)
        return std::nullopt;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return static_cast<std::int64_t>(::timegm(&tm));
}

namespace {
json time_or_null(const std::string& text) {
    const auto t = parse_iso_time(text);
    return t ? json(*t) : json(nullptr);
}
}  // namespace

json api_run_json(const RunInfo& run) {
    return json{{"run_id", run.id},
                {"experiment", run.experiment},
                {"status", to_string(run.status)},
                {"start_time", time_or_null(run.start_time)},
                {"end_time", time_or_null(run.end_time)},
                {"params", run.params},
                {"metrics", run.metrics}};
}

json api_version_json(const ModelVersion& v) {
    return json{{"version", v.version},
                {"run_id", v.run_id},
                {"created_at", time_or_null(v.created_at)},
                {"metrics", v.metrics},
                {"aliases", v.aliases}};
}

bool etag_matches(const std::string& if_none_match, std::string_view etag) {
    std::size_t pos = 0;
    while (pos <= if_none_match.size()) {
        const auto end = std::min(if_none_match.find(',', pos), if_none_match.size());
        std::string tag = trim(if_none_match.substr(pos, end - pos));
        if (tag == "*") return true;
        if (tag.rfind("W/", 0) == 0) tag = tag.substr(2);  // weak comparison, as RFC 9110 asks for If-None-Match
        if (!tag.empty() && tag == etag) return true;
        pos = end + 1;
    }
    return false;
}

}  // namespace faceq::detail
