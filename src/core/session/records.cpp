#include "faceq/session/records.hpp"

#include <fmt/format.h>

#include <cmath>
#include <ostream>

namespace faceq {
namespace {

double round_to(double v, int digits) {
    const double p = std::pow(10.0, digits);
    return std::round(v * p) / p;
}

template <typename T>
std::string opt_str(const std::optional<T>& v) {
    if (!v) return "";
    if constexpr (std::is_same_v<T, std::string>)
        return *v;
    else
        return fmt::format("{:.4g}", *v);
}

}  // namespace

nlohmann::json face_to_json(const Face& face, bool with_embedding) {
    nlohmann::json j;
    j["bbox"] = {{"x", face.bbox.x}, {"y", face.bbox.y}, {"width", face.bbox.width}, {"height", face.bbox.height}};
    j["confidence"] = round_to(face.confidence, 4);
    j["detector_score"] = round_to(face.detector_score, 4);
    j["age"] = face.age ? nlohmann::json(round_to(*face.age, 1)) : nlohmann::json(nullptr);
    j["gender"] = face.gender ? nlohmann::json(*face.gender) : nlohmann::json(nullptr);
    j["gender_confidence"] =
        face.gender_confidence ? nlohmann::json(round_to(*face.gender_confidence, 4)) : nlohmann::json(nullptr);
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& p : face.landmarks) pts.push_back({std::lround(p.x), std::lround(p.y)});
    j["landmarks"] = std::move(pts);
    if (with_embedding && face.has_descriptor) {
        nlohmann::json e = nlohmann::json::array();
        for (float v : face.descriptor) e.push_back(round_to(v, 6));
        j["embedding"] = std::move(e);
    }
    return j;
}

nlohmann::json models_to_json(const ModelVersions& v) {
    nlohmann::json j;
    j["detector"] = v.detector;
    j["landmarks"] = v.landmarks;
    j["embedder"] = v.embedder;
    j["gender"] = v.gender.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.gender);
    j["age"] = v.age.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.age);
    return j;
}

nlohmann::json analysis_record(const std::string& file, const AnalysisResult& result, const ModelVersions& versions,
                               double elapsed_ms, bool with_embedding) {
    nlohmann::json j;
    j["file"] = file;
    j["width"] = result.width;
    j["height"] = result.height;
    nlohmann::json faces = nlohmann::json::array();
    for (const auto& f : result.faces) faces.push_back(face_to_json(f, with_embedding));
    j["faces"] = std::move(faces);
    j["models"] = models_to_json(versions);
    j["elapsed_ms"] = round_to(elapsed_ms, 2);
    return j;
}

void add_identity(nlohmann::json& face, const Identity& id) {
    const bool named = id.person && id.person->name && id.decision == Decision::known;
    face["identity"] = named ? *id.person->name : std::string("unknown");
    face["person_id"] = id.person ? nlohmann::json(id.person->public_id) : nlohmann::json(nullptr);
    face["decision"] = to_string(id.decision);
    face["distance"] = id.distance ? nlohmann::json(round_to(*id.distance, 4)) : nlohmann::json(nullptr);
    face["margin"] = id.margin ? nlohmann::json(round_to(*id.margin, 4)) : nlohmann::json(nullptr);
    if (id.detection_id) face["detection_id"] = *id.detection_id;  // stored: `faceq persons reject` takes it
    if (id.decision == Decision::ambiguous) {
        nlohmann::json candidates = nlohmann::json::array();
        for (const auto* c : {&id.nearest, &id.runner_up}) {
            if (!*c) continue;
            const auto& p = (*c)->person;
            candidates.push_back({{"person_id", p.public_id},
                                  {"identity", p.name ? *p.name : std::string("unknown")},
                                  {"distance", round_to((*c)->distance, 4)}});
        }
        face["candidates"] = std::move(candidates);
    }
}

nlohmann::json error_json(ErrorKind kind, const std::string& message) {
    return {{"kind", to_string(kind)}, {"message", message}};
}

nlohmann::json error_record(const std::string& file, ErrorKind kind, const std::string& message) {
    return {{"file", file}, {"error", error_json(kind, message)}};
}

RecordFormat parse_record_format(const std::string& name) {
    if (name == "jsonl") return RecordFormat::jsonl;
    if (name == "json") return RecordFormat::json;
    if (name == "csv") return RecordFormat::csv;
    throw Error(ErrorKind::usage, fmt::format("unknown format '{}' (jsonl, json or csv)", name));
}

std::string csv_field(const std::string& value) {
    if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
    std::string out = "\"";
    for (char c : value) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

RecordWriter::RecordWriter(std::ostream& out, RecordFormat format) : out_(out), format_(format) {
    if (format_ == RecordFormat::csv)
        out_ << "file,width,height,face,x,y,width_px,height_px,confidence,gender,gender_confidence,age,error\n";
}

RecordWriter::~RecordWriter() {
    if (!finished_) finish();
}

void RecordWriter::write(std::string_view type, nlohmann::json record) {
    if (format_ != RecordFormat::csv) record["type"] = type;
    write_row(record);
}

void RecordWriter::write_row(const nlohmann::json& record) {
    switch (format_) {
        case RecordFormat::jsonl:
            out_ << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            break;
        case RecordFormat::json:
            out_ << (first_ ? "[\n" : ",\n") << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            break;
        case RecordFormat::csv: {
            const std::string file = csv_field(record.value("file", ""));
            if (record.contains("error")) {
                out_ << file << ",,,,,,,,,,,," << csv_field(record["error"].value("message", "")) << '\n';
                break;
            }
            const auto& faces = record["faces"];
            const std::string size = fmt::format("{},{}", record.value("width", 0), record.value("height", 0));
            if (faces.empty()) out_ << file << ',' << size << ",,,,,,,,,,\n";
            for (std::size_t i = 0; i < faces.size(); ++i) {
                const auto& f = faces[i];
                const auto& b = f["bbox"];
                auto num = [](const nlohmann::json& v) { return v.is_null() ? std::string() : v.dump(); };
                out_ << file << ',' << size << ',' << i << ',' << b["x"] << ',' << b["y"] << ',' << b["width"] << ','
                     << b["height"] << ',' << num(f["confidence"]) << ','
                     << (f["gender"].is_null() ? "" : f["gender"].get<std::string>()) << ','
                     << num(f["gender_confidence"]) << ',' << num(f["age"]) << ",\n";
            }
            break;
        }
    }
    first_ = false;
    out_.flush();
}

void RecordWriter::finish() {
    if (finished_) return;
    finished_ = true;
    if (format_ == RecordFormat::json) out_ << (first_ ? "[]\n" : "\n]\n");
    out_.flush();
}

}  // namespace faceq
