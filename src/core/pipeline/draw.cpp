#include "faceq/pipeline/draw.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "pipeline/imgcodecs_lazy.hpp"

namespace faceq {

cv::Mat draw_faces(const cv::Mat& bgr, const std::vector<Face>& faces) {
    cv::Mat out = bgr.clone();
    const int thick = std::max(1, std::min(bgr.cols, bgr.rows) / 300);
    const cv::Scalar box_color(0, 200, 0), point_color(0, 220, 255), text_color(255, 255, 255);
    for (const auto& f : faces) {
        const cv::Rect r(f.bbox.x, f.bbox.y, f.bbox.width, f.bbox.height);
        cv::rectangle(out, r, box_color, thick);
        for (const auto& p : f.landmarks)
            cv::circle(out, cv::Point(static_cast<int>(p.x), static_cast<int>(p.y)), thick, point_color, cv::FILLED);
        std::string label;
        if (f.gender) label = *f.gender;
        if (f.age) label += fmt::format("{}{:.0f}", label.empty() ? "" : ", ", *f.age);
        if (label.empty()) label = fmt::format("{:.2f}", f.confidence);
        const double scale = std::max(0.4, f.bbox.width / 200.0);
        int baseline = 0;
        const cv::Size ts = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, scale, thick, &baseline);
        const cv::Point org(r.x, std::max(ts.height + 2, r.y - 4));
        cv::rectangle(out, cv::Point(org.x, org.y - ts.height - 2), cv::Point(org.x + ts.width, org.y + baseline),
                      box_color, cv::FILLED);
        cv::putText(out, label, org, cv::FONT_HERSHEY_SIMPLEX, scale, text_color, thick, cv::LINE_AA);
    }
    return out;
}

std::filesystem::path save_annotated(const cv::Mat& bgr, const std::filesystem::path& path) {
    std::filesystem::path target = path;
    std::string ext = target.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") {
        target += ".png";
        ext = ".png";
    }
    std::vector<unsigned char> buf;
    try {
        if (!imgcodecs::imencode(ext, bgr, buf, {cv::IMWRITE_JPEG_QUALITY, 92}))
            throw Error(ErrorKind::io, fmt::format("cannot encode annotated image '{}'", target.string()));
    } catch (const cv::Exception& e) {
        throw Error(ErrorKind::io, fmt::format("cannot encode annotated image '{}': {}", target.string(), e.what()));
    }
    write_file_atomic(target, std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
    return target;
}

}  // namespace faceq
