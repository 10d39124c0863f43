// xmp_regions.cpp — see faceq/photo/xmp_regions.hpp. exiv2 parses and
// serializes; this file only walks its flat keys
// ("Xmp.mwg-rs.Regions/mwg-rs:RegionList[2]/mwg-rs:Area/stArea:x").
#include "faceq/photo/xmp_regions.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exiv2/exiv2.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"

namespace faceq {
namespace {

constexpr const char* faceq_ns = "urn:faceq:xmp:1/";
constexpr const char* faceq_prefix = "faceq";
const std::string regions_key = "Xmp.mwg-rs.Regions";
const std::string list_key = "Xmp.mwg-rs.Regions/mwg-rs:RegionList";
const std::string item_prefix = list_key + "[";
const std::string dims_key = "Xmp.mwg-rs.Regions/mwg-rs:AppliedToDimensions";
const std::string marker_suffix = "/faceq:PersonId";

// exiv2's XMP toolkit keeps global state (namespace registry, the SDK's
// parser) and is not thread-safe: every call into it holds this.
std::mutex& exiv2_mutex() {
    static std::mutex mu;
    return mu;
}

// exiv2's last error or warning message (it logs why a decode failed, and
// returns only a code), kept instead of printed: ours name the file.
std::string& last_exiv2_message() {
    static std::string message;
    return message;
}

void keep_exiv2_message(int level, const char* message) {
    if (level < Exiv2::LogMsg::warn || message == nullptr) return;
    std::string m(message);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    last_exiv2_message() = m.substr(0, 200);
}

// Initializes exiv2 once (under exiv2_mutex): the toolkit, our namespace,
// and its log kept rather than printed.
void init_exiv2() {
    static bool done = false;
    last_exiv2_message().clear();
    if (done) return;
    Exiv2::LogMsg::setLevel(Exiv2::LogMsg::warn);
    Exiv2::LogMsg::setHandler(keep_exiv2_message);
    Exiv2::XmpParser::initialize();
    Exiv2::XmpProperties::registerNs(faceq_ns, faceq_prefix);
    done = true;
}

[[noreturn]] void unreadable(const std::filesystem::path& source, const std::string& why) {
    throw Error(ErrorKind::invalid_input, fmt::format("cannot read XMP '{}': {}", source.string(), why));
}

// The sidecar's bytes, refused over the cap before reading them.
std::optional<std::string> read_sidecar(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw Error(ErrorKind::io, fmt::format("cannot read XMP '{}': {}", path.string(), ec.message()));
    if (size > max_sidecar_bytes)
        throw Error(ErrorKind::too_large, fmt::format("cannot read XMP '{}': {} bytes, over the limit of {} bytes",
                                                      path.string(), size, max_sidecar_bytes));
    std::ifstream in(path, std::ios::binary);
    std::string bytes(static_cast<std::size_t>(size), '\0');
    if (!in || !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
        throw Error(ErrorKind::io, fmt::format("cannot read XMP '{}': read failed", path.string()));
    return bytes;
}

// Decodes a packet into `data` (exiv2_mutex held).
void decode(Exiv2::XmpData& data, const std::string& xml, const std::filesystem::path& source) {
    if (xml.size() > max_sidecar_bytes)
        throw Error(ErrorKind::too_large, fmt::format("cannot read XMP '{}': {} bytes, over the limit of {} bytes",
                                                      source.string(), xml.size(), max_sidecar_bytes));
    // The XMP toolkit stops at a NUL; a packet with one is not XMP.
    if (xml.find('\0') != std::string::npos) unreadable(source, "not XML (a NUL byte)");
    try {
        if (Exiv2::XmpParser::decode(data, xml) != 0)
            unreadable(source, last_exiv2_message().empty() ? std::string("not a valid XMP packet")
                                                            : "not a valid XMP packet (" + last_exiv2_message() + ")");
    } catch (const Exiv2::AnyError& e) {
        unreadable(source, e.what());
    }
}

// "<n>]<rest>" after item_prefix: the region's index and the rest of the key.
std::optional<std::pair<int, std::string>> split_item_key(const std::string& key) {
    if (key.compare(0, item_prefix.size(), item_prefix) != 0) return std::nullopt;
    const auto close = key.find(']', item_prefix.size());
    if (close == std::string::npos) return std::nullopt;
    int n = 0;
    const char* first = key.data() + item_prefix.size();
    const char* last = key.data() + close;
    const auto r = std::from_chars(first, last, n);
    if (r.ec != std::errc() || r.ptr != last) return std::nullopt;
    return std::make_pair(n, key.substr(close + 1));
}

std::optional<double> number(const std::string& text) {
    const auto begin = text.find_first_not_of(" \t\r\n");
    if (begin == std::string::npos) return std::nullopt;
    const auto end = text.find_last_not_of(" \t\r\n") + 1;
    double v = 0;
    const auto r = std::from_chars(text.data() + begin, text.data() + end, v);
    if (r.ec != std::errc() || r.ptr != text.data() + end || !std::isfinite(v)) return std::nullopt;
    return v;
}

// Why the area cannot be used, or "".
std::string check_area(const std::map<std::string, std::string>& f, NormalizedArea& area) {
    static const char* const names[] = {"x", "y", "w", "h"};
    double* const slots[] = {&area.x, &area.y, &area.w, &area.h};
    if (f.count("/mwg-rs:Area") == 0 && f.count("/mwg-rs:Area/stArea:x") == 0) return "no Area";
    if (auto unit = f.find("/mwg-rs:Area/stArea:unit"); unit != f.end() && unit->second != "normalized")
        return fmt::format("Area unit '{}' (only normalized is defined for regions)", unit->second.substr(0, 40));
    for (int i = 0; i < 4; ++i) {
        const auto it = f.find(std::string("/mwg-rs:Area/stArea:") + names[i]);
        if (it == f.end()) return fmt::format("Area has no {}", names[i]);
        const auto v = number(it->second);
        if (!v) return fmt::format("Area {} '{}' is not a number", names[i], it->second.substr(0, 40));
        const bool size = i >= 2;
        if (*v < 0 || *v > 1 || (size && *v <= 0))
            return fmt::format("Area {} {} is outside {}", names[i], it->second.substr(0, 40),
                               size ? "(0, 1]" : "[0, 1]");
        *slots[i] = *v;
    }
    return "";
}

struct RegionItem {
    std::map<std::string, std::string> fields;  // key rest -> text
    bool by_faceq = false;
};

// The RegionList's items by index (exiv2_mutex held).
std::map<int, RegionItem> region_items(const Exiv2::XmpData& data) {
    std::map<int, RegionItem> items;
    for (const auto& d : data) {
        const auto split = split_item_key(d.key());
        if (!split) continue;
        auto& item = items[split->first];
        item.fields[split->second] = d.toString();
        if (split->second == marker_suffix) item.by_faceq = true;
    }
    return items;
}

XmpRegions collect(const Exiv2::XmpData& data, const std::filesystem::path& source) {
    XmpRegions out;
    out.source = source;
    for (const auto& [n, item] : region_items(data)) {
        const auto type = item.fields.find("/mwg-rs:Type");
        if (type == item.fields.end() || type->second != "Face") {
            ++out.other_regions;
            continue;
        }
        FaceRegion r;
        if (auto name = item.fields.find("/mwg-rs:Name"); name != item.fields.end()) r.name = name->second;
        r.by_faceq = item.by_faceq;
        if (r.by_faceq) r.person_id = item.fields.at(marker_suffix);
        r.problem = check_area(item.fields, r.area);
        out.faces.push_back(std::move(r));
    }
    return out;
}

void add_struct(Exiv2::XmpData& data, const std::string& key) {
    Exiv2::XmpTextValue v;
    v.setXmpStruct();
    data.add(Exiv2::XmpKey(key), &v);
}

void set_text(Exiv2::XmpData& data, const std::string& key, const std::string& text) {
    Exiv2::XmpTextValue v(text);
    data.add(Exiv2::XmpKey(key), &v);
}

// At most 6 decimals, trailing zeros dropped ("0.25", "0.333333", "0").
std::string fraction(double v) {
    std::string s = fmt::format("{:.6f}", std::clamp(v, 0.0, 1.0));
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
}

}  // namespace

std::filesystem::path sidecar_path(const std::filesystem::path& photo, SidecarNaming naming) {
    if (naming == SidecarNaming::stem) {
        auto p = photo;
        return p.replace_extension(".xmp");
    }
    auto p = photo;
    return p += ".xmp";
}

PhotoFrame read_photo_frame(const std::filesystem::path& photo) {
    std::lock_guard<std::mutex> lock(exiv2_mutex());
    init_exiv2();
    try {
        auto image = Exiv2::ImageFactory::open(photo.string());
        image->readMetadata();
        PhotoFrame f;
        f.stored_width = image->pixelWidth();
        f.stored_height = image->pixelHeight();
        const auto& exif = image->exifData();
        const auto it = exif.findKey(Exiv2::ExifKey("Exif.Image.Orientation"));
        if (it != exif.end() && it->count() > 0) {
            const long o = it->toLong();
            if (o >= 1 && o <= 8) f.orientation = static_cast<int>(o);
        }
        if (f.stored_width <= 0 || f.stored_height <= 0)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("cannot read the size of '{}' (exiv2 finds none)", photo.string()));
        return f;
    } catch (const Exiv2::AnyError& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("cannot read metadata of '{}': {}", photo.string(), e.what()));
    }
}

// stored -> displayed for a point (x, y) in fractions, per image_io's apply_orientation:
// 2 flips left-right, 3 turns 180°, 4 flips top-bottom, 5 transposes,
// 6 transposes then flips left-right (90° clockwise), 7 transposes then
// turns 180°, 8 transposes then flips top-bottom (90° anticlockwise).
NormalizedArea to_displayed(const NormalizedArea& s, int orientation) {
    switch (orientation) {
        case 2:
            return {1 - s.x, s.y, s.w, s.h};
        case 3:
            return {1 - s.x, 1 - s.y, s.w, s.h};
        case 4:
            return {s.x, 1 - s.y, s.w, s.h};
        case 5:
            return {s.y, s.x, s.h, s.w};
        case 6:
            return {1 - s.y, s.x, s.h, s.w};
        case 7:
            return {1 - s.y, 1 - s.x, s.h, s.w};
        case 8:
            return {s.y, 1 - s.x, s.h, s.w};
        default:
            return s;
    }
}

NormalizedArea to_stored(const NormalizedArea& d, int orientation) {
    switch (orientation) {
        case 6:
            return {d.y, 1 - d.x, d.h, d.w};
        case 8:
            return {1 - d.y, d.x, d.h, d.w};
        default:
            return to_displayed(d, orientation);  // 1-5 and 7 are their own inverses
    }
}

NormalizedArea box_to_area(const Box& b, int width, int height) {
    const double w = std::max(1, width), h = std::max(1, height);
    return {(b.x + b.width / 2.0) / w, (b.y + b.height / 2.0) / h, b.width / w, b.height / h};
}

Box area_to_box(const NormalizedArea& a, int width, int height) {
    const double x0 = std::clamp(a.x - a.w / 2, 0.0, 1.0) * width, x1 = std::clamp(a.x + a.w / 2, 0.0, 1.0) * width;
    const double y0 = std::clamp(a.y - a.h / 2, 0.0, 1.0) * height, y1 = std::clamp(a.y + a.h / 2, 0.0, 1.0) * height;
    const int x = static_cast<int>(std::lround(x0)), y = static_cast<int>(std::lround(y0));
    return {x, y, static_cast<int>(std::lround(x1)) - x, static_cast<int>(std::lround(y1)) - y};
}

XmpRegions parse_face_regions(const std::string& xml, const std::filesystem::path& source) {
    std::lock_guard<std::mutex> lock(exiv2_mutex());
    init_exiv2();
    Exiv2::XmpData data;
    decode(data, xml, source);
    return collect(data, source);
}

std::optional<XmpRegions> read_face_regions(const std::filesystem::path& photo) {
    for (auto naming : {SidecarNaming::full_name, SidecarNaming::stem}) {
        const auto path = sidecar_path(photo, naming);
        if (auto xml = read_sidecar(path)) return parse_face_regions(*xml, path);
    }
    std::string packet;
    {
        std::lock_guard<std::mutex> lock(exiv2_mutex());
        init_exiv2();
        try {
            auto image = Exiv2::ImageFactory::open(photo.string());
            image->readMetadata();
            packet = image->xmpPacket();
        } catch (const Exiv2::AnyError& e) {
            throw Error(ErrorKind::invalid_input,
                        fmt::format("cannot read metadata of '{}': {}", photo.string(), e.what()));
        }
    }
    if (packet.empty()) return std::nullopt;
    return parse_face_regions(packet, photo);
}

SidecarWrite write_face_regions(const std::filesystem::path& photo, SidecarNaming naming, const PhotoFrame& frame,
                                const std::vector<NamedFace>& faces) {
    SidecarWrite out;
    out.sidecar = sidecar_path(photo, naming);
    const auto existing = read_sidecar(out.sidecar);
    if (!existing && faces.empty()) return out;  // nothing to say, no file made
    out.created = !existing;

    std::string xml;
    {
        std::lock_guard<std::mutex> lock(exiv2_mutex());
        init_exiv2();
        Exiv2::XmpData data;
        if (existing) decode(data, *existing, out.sidecar);
        const auto items = region_items(data);

        // The regions by others, as they are (every property, in order), and
        // their Face areas in the displayed frame for the overlap rule.
        std::vector<std::vector<std::pair<std::string, std::unique_ptr<Exiv2::Value>>>> kept;
        std::vector<Box> kept_faces;
        for (const auto& [n, item] : items) {
            if (item.by_faceq) {
                ++out.replaced;
                continue;
            }
            auto& props = kept.emplace_back();
            for (const auto& d : data) {
                const auto split = split_item_key(d.key());
                if (split && split->first == n)
                    props.emplace_back(split->second, std::unique_ptr<Exiv2::Value>(d.getValue().release()));
            }
            NormalizedArea area;
            const auto type = item.fields.find("/mwg-rs:Type");
            if (type != item.fields.end() && type->second == "Face" && check_area(item.fields, area).empty())
                kept_faces.push_back(area_to_box(to_displayed(area, frame.orientation), frame.displayed_width(),
                                                 frame.displayed_height()));
        }
        out.kept = kept.size();
        for (auto it = data.begin(); it != data.end();) it = split_item_key(it->key()) ? data.erase(it) : std::next(it);

        if (data.findKey(Exiv2::XmpKey(regions_key)) == data.end()) add_struct(data, regions_key);
        if (data.findKey(Exiv2::XmpKey(list_key)) == data.end()) {
            Exiv2::XmpTextValue bag;
            bag.setXmpArrayType(Exiv2::XmpValue::xaBag);
            data.add(Exiv2::XmpKey(list_key), &bag);
        }
        for (auto it = data.begin(); it != data.end();)
            it = it->key().compare(0, dims_key.size(), dims_key) == 0 ? data.erase(it) : std::next(it);
        add_struct(data, dims_key);
        set_text(data, dims_key + "/stDim:w", std::to_string(frame.stored_width));
        set_text(data, dims_key + "/stDim:h", std::to_string(frame.stored_height));
        set_text(data, dims_key + "/stDim:unit", "pixel");

        int n = 0;
        for (const auto& props : kept) {
            const std::string item = fmt::format("{}{}]", item_prefix, ++n);
            for (const auto& [rest, value] : props) data.add(Exiv2::XmpKey(item + rest), value.get());
        }
        for (const auto& face : faces) {
            const bool covered = std::any_of(kept_faces.begin(), kept_faces.end(),
                                             [&](const Box& b) { return iou(b, face.box) >= match_iou; });
            if (covered) {
                ++out.overlapping;
                continue;
            }
            const auto area =
                to_stored(box_to_area(face.box, frame.displayed_width(), frame.displayed_height()), frame.orientation);
            const std::string item = fmt::format("{}{}]", item_prefix, ++n);
            add_struct(data, item);
            add_struct(data, item + "/mwg-rs:Area");
            set_text(data, item + "/mwg-rs:Area/stArea:x", fraction(area.x));
            set_text(data, item + "/mwg-rs:Area/stArea:y", fraction(area.y));
            set_text(data, item + "/mwg-rs:Area/stArea:w", fraction(area.w));
            set_text(data, item + "/mwg-rs:Area/stArea:h", fraction(area.h));
            set_text(data, item + "/mwg-rs:Area/stArea:unit", "normalized");
            set_text(data, item + "/mwg-rs:Name", face.name);
            set_text(data, item + "/mwg-rs:Type", "Face");
            set_text(data, item + marker_suffix, face.person_id);
            ++out.written;
        }
        try {
            if (Exiv2::XmpParser::encode(xml, data,
                                         Exiv2::XmpParser::omitPacketWrapper | Exiv2::XmpParser::useCompactFormat) != 0)
                throw Error(ErrorKind::internal,
                            fmt::format("cannot write XMP '{}': exiv2 cannot serialize it", out.sidecar.string()));
        } catch (const Exiv2::AnyError& e) {
            throw Error(ErrorKind::internal, fmt::format("cannot write XMP '{}': {}", out.sidecar.string(), e.what()));
        }
    }
    // The packet wrapper exiv2's own sidecar writer (XmpSidecar) puts around it.
    xml = "<?xpacket begin=\"\xef\xbb\xbf\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n" + xml + "<?xpacket end=\"w\"?>\n";
    write_file_atomic(out.sidecar, xml);
    return out;
}

}  // namespace faceq
