// gallery_json.cpp — see faceq/gallery_json.hpp.
#include "faceq/identity/gallery_json.hpp"

#include <cmath>
#include <ctime>

namespace faceq {

using json = nlohmann::json;

namespace {
json opt_time(const std::optional<std::int64_t>& t) { return t ? json(iso_time(*t)) : json(nullptr); }
}  // namespace

json person_json(const PersonInfo& info) {
    const auto& p = info.person;
    return {{"person_id", p.public_id},
            {"name", p.name ? json(*p.name) : json(nullptr)},
            {"kind", p.kind},
            {"samples", info.samples},
            {"detections", info.detections},
            {"last_seen", opt_time(info.last_seen)},
            {"created_at", iso_time(info.created_at)},
            {"updated_at", iso_time(info.updated_at)}};
}

json face_json(const PersonFace& f, const std::string& person_id) {
    auto opt_round = [](const std::optional<float>& v, double scale) {
        return v ? json(std::round(*v * scale) / scale) : json(nullptr);
    };
    return {{"person_id", person_id},
            {"detection_id", f.detection_id},
            {"sample_id", f.sample_id ? json(*f.sample_id) : json(nullptr)},
            {"image", f.image_path},
            {"detected_at", iso_time(f.detected_at)},
            {"box", {{"x", f.box.x}, {"y", f.box.y}, {"width", f.box.width}, {"height", f.box.height}}},
            {"age", opt_round(f.age, 10)},
            {"gender", f.gender ? json(*f.gender) : json(nullptr)},
            {"distance", opt_round(f.distance, 1e4)},
            {"decision", f.decision},
            {"rejected", f.rejected}};
}

json candidate_json(const MergeCandidate& c) {
    return {{"stranger", c.stranger.public_id},
            {"known", c.known.public_id},
            {"name", c.known.name ? json(*c.known.name) : json(nullptr)},
            {"distance", std::round(c.distance * 1e4) / 1e4},
            {"samples", c.samples},
            {"merge", "faceq persons merge " + c.stranger.public_id + " " + c.known.public_id}};
}

json stats_json(const GalleryStats& s, const std::string& db_path, const std::optional<std::string>& embedder) {
    json days = json::array();
    for (const auto& [day, n] : s.detections_per_day) days.push_back({{"date", day}, {"detections", n}});
    json gallery_embedders = json::array();
    bool foreign = false;
    for (const auto& e : s.embedders) {
        gallery_embedders.push_back({{"embedder", e.embedder}, {"samples", e.samples}, {"persons", e.persons}});
        foreign = foreign || !embedder || e.embedder != *embedder;
    }
    return {
        {"persons",
         {{"total", s.persons_known + s.persons_unknown}, {"known", s.persons_known}, {"unknown", s.persons_unknown}}},
        {"samples", s.samples},
        {"images", s.images},
        {"detections",
         {{"total", s.detections},
          {"known", s.detections_known},
          {"unknown", s.detections_unknown},
          {"ambiguous", s.detections_ambiguous},
          {"last", opt_time(s.last_detection)}}},
        {"detections_per_day", std::move(days)},
        {"database",
         {{"path", db_path},
          {"engine", Gallery::is_database_url(db_path) ? "postgresql" : "sqlite"},
          {"bytes", s.database_bytes},
          {"schema_version", s.schema_version}}},
        {"embedder",
         {{"installed", embedder ? json(*embedder) : json(nullptr)},
          {"gallery", std::move(gallery_embedders)},
          {"mismatch", foreign}}}};
}

}  // namespace faceq
