// faceq/identity/gallery_json.hpp — the JSON shapes of the gallery that the CLI
// (`faceq search --name`, `faceq stats --format json`, `faceq persons`) and
// the HTTP API (`GET /search`, `GET /stats`) both print: one definition, so
// the two cannot drift apart.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "faceq/base/time.hpp"
#include "faceq/identity/gallery.hpp"

namespace faceq {

// {"person_id", "name", "kind", "samples", "detections", "last_seen", "created_at", "updated_at"}
nlohmann::json person_json(const PersonInfo& info);

// {"person_id", "detection_id", "sample_id", "image", "detected_at", "box",
// "age", "gender", "distance", "decision", "rejected"}: one face of a person
// (Gallery::person_faces), as `faceq persons faces` prints it.
nlohmann::json face_json(const PersonFace& face, const std::string& person_id);

// {"stranger", "known", "name", "distance", "samples"}: a stranger that is
// probably a known person (Gallery::merge_candidates), and the command that
// merges them ("merge": "faceq persons merge <stranger> <known>").
nlohmann::json candidate_json(const MergeCandidate& candidate);

// {"persons", "samples", "images", "detections", "detections_per_day", "database", "embedder"};
// `embedder` is the installed embedder's version (nullopt: none installed,
// so every sample counts as foreign).
nlohmann::json stats_json(const GalleryStats& stats, const std::string& db_path,
                          const std::optional<std::string>& embedder);

}  // namespace faceq
