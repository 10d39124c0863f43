// faceq/session/records.hpp — the records faceq prints, and the one writer for them.
//
// Every record goes through nlohmann-json; field names follow the reference
// system's /analyze response (bbox {x, y, width, height}, confidence, age,
// gender, gender_confidence). One analysis record per image:
//   {"file", "width", "height", "faces": [...], "models": {...}, "elapsed_ms"}
// and one error record per image that could not be analysed:
//   {"file", "error": {"kind", "message"}}.
// Every record on stdout has a "type" naming its kind ("analysis", "error",
// "skipped", "enrollment", "person", ...; the list: docs/records.md) and goes
// through RecordWriter, which prints JSON Lines (one object per line, flushed per record so
// pipes see progress), a JSON array, or CSV (one row per face; an image
// without faces or with an error is one row with the face columns empty).
//
// Identity fields (when a gallery was consulted), as the reference's
// /analyze plus what explains the answer: "identity" (the person's name, or
// "unknown"), "person_id" (public id, null for a stranger not stored),
// "decision" (known | unknown | ambiguous), "distance" (to the nearest
// person), "margin" (to the runner-up), "candidates" for ambiguous faces, and
// "detection_id" when the face was stored (what `faceq persons reject` takes).
//
// Thread-safety: the record builders are pure functions. A RecordWriter is
// NOT safe for concurrent calls: one thread writes (faceq delivers results in
// input order on the main thread, base/batch.hpp).
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "faceq/base/error.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

nlohmann::json face_to_json(const Face& face, bool with_embedding);
nlohmann::json models_to_json(const ModelVersions& versions);
nlohmann::json analysis_record(const std::string& file, const AnalysisResult& result, const ModelVersions& versions,
                               double elapsed_ms, bool with_embedding);
// Adds the identity fields to one face object of an analysis record.
void add_identity(nlohmann::json& face, const Identity& identity);
// An error as every record carries it: {"kind", "message"}.
nlohmann::json error_json(ErrorKind kind, const std::string& message);
// {"file", "error": error_json(kind, message)}.
nlohmann::json error_record(const std::string& file, ErrorKind kind, const std::string& message);

enum class RecordFormat { jsonl, json, csv };
RecordFormat parse_record_format(const std::string& name);  // throws Error{usage}

class RecordWriter {
public:
    RecordWriter(std::ostream& out, RecordFormat format);
    ~RecordWriter();  // finishes the JSON array if finish() was not called
    RecordWriter(const RecordWriter&) = delete;
    RecordWriter& operator=(const RecordWriter&) = delete;

    // Writes one record of kind `type` (docs/records.md): JSON records get a
    // "type" field; CSV rows (analysis and error records only) do not.
    void write(std::string_view type, nlohmann::json record);
    void finish();

private:
    void write_row(const nlohmann::json& record);

    std::ostream& out_;
    RecordFormat format_;
    bool first_ = true;
    bool finished_ = false;
};

// Quotes one CSV field when needed (RFC 4180).
std::string csv_field(const std::string& value);

}  // namespace faceq
