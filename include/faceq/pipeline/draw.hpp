// faceq/pipeline/draw.hpp — annotated copies of analysed photos (`analyze --draw DIR`).
//
// draw_faces() paints each face's box, landmarks and a label (gender, age when
// known) onto a copy of the image. save_annotated() encodes it with the
// extension of `path` (JPEG or PNG; anything else is written as PNG) and writes
// it atomically. Throws Error{io} when the file cannot be written.
#pragma once

#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <vector>

#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

cv::Mat draw_faces(const cv::Mat& bgr, const std::vector<Face>& faces);
std::filesystem::path save_annotated(const cv::Mat& bgr, const std::filesystem::path& path);

}  // namespace faceq
