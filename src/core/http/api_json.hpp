// http/api_json.hpp — the JSON shapes of the page's /api routes (docs/api.md,
// "The page's API") and the small parsers they need: a request's JSON body,
// registry times, If-None-Match. The handlers in server.cpp call these over
// the core's values (Gallery, Registry), so the shapes live in one place.
//
// Errors: json_body and the field readers throw Error{invalid_input} naming
// the field and why. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "faceq/identity/gallery.hpp"
#include "faceq/models/registry.hpp"

namespace faceq::detail {

// The largest body a JSON route reads (admit() refuses larger ones from the head).
inline constexpr std::uint64_t max_json_body_bytes = 64 * 1024;

// The request's body as a JSON object; {} for an empty body.
nlohmann::json json_body(std::string_view body);
// Required fields of a JSON body, by type.
std::string string_field(const nlohmann::json& body, const char* name);
std::int64_t integer_field(const nlohmann::json& body, const char* name);
// An optional integer field (absent or null: std::nullopt).
std::optional<std::int64_t> optional_integer_field(const nlohmann::json& body, const char* name);
// A query parameter that must be an integer in [lo, hi] when given.
std::int64_t integer_param(const std::string* text, const char* name, std::int64_t fallback, std::int64_t lo,
                           std::int64_t hi);

// P: {"id", "name", "kind", "samples", "detections", "last_seen", "thumbnail"};
// `thumbnail` is the URL of the person's face, or null when it has none.
nlohmann::json api_person_json(const PersonInfo& info, bool has_thumbnail);

// {"id", "name", "distance", "margin"}: a stranger's "looks like".
nlohmann::json api_suggestion_json(const Suggestion& s);
// {"x", "y", "width", "height"}
nlohmann::json api_box_json(const Box& box);
// {"detection_id", "sample_id", "image", "detected_at", "box", "age", "gender", "distance",
//  "decision", "rejected", "thumbnail"}
nlohmann::json api_face_json(const PersonFace& face);
// {"sample_id", "source_path", "box", "created_at", "thumbnail"}
nlohmann::json api_sample_json(const SampleInfo& sample);

// "2026-11-28T09:45:00Z" -> unix seconds; std::nullopt for "" or another shape.
std::optional<std::int64_t> parse_iso_time(const std::string& text);

// {"run_id", "experiment", "status", "start_time", "end_time", "params", "metrics"} (times: unix seconds).
nlohmann::json api_run_json(const RunInfo& run);
// {"version", "run_id", "created_at", "metrics", "aliases"}.
nlohmann::json api_version_json(const ModelVersion& v);

// Whether an If-None-Match header ("\"abc\"", "W/\"abc\", \"def\"", "*") names `etag` (quoted).
bool etag_matches(const std::string& if_none_match, std::string_view etag);

}  // namespace faceq::detail
