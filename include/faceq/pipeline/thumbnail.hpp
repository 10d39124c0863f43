// faceq/pipeline/thumbnail.hpp — a face's thumbnail: the small JPEG the
// gallery keeps beside each recorded face and sample, so a page can show
// faces without the photos (which may have moved, or be on another machine).
//
// make_face_thumbnail() crops the square centred on the face box whose side is
// the box's longer side plus thumbnail_margin of it on each side (parts
// outside the photo are mid-grey), shrinks it to thumbnail_side pixels square
// (OpenCV's area interpolation) and encodes it with libjpeg at
// thumbnail_quality, Huffman tables optimised, 4:2:0 chroma. The quality was
// chosen by measurement on real faces (docs/benchmarks.md, "Face
// thumbnails"): the best one whose 99th percentile stays within
// thumbnail_max_bytes on WIDER FACE and LFW photos. The few faces above it
// (0.3% of WIDER's: crowds, fine textures) are encoded again at lower
// qualities until they fit, so every thumbnail is within thumbnail_max_bytes.
// The same pixels and quality always give the same bytes (libjpeg is
// deterministic), so a thumbnail made again from the photo is identical.
// libjpeg is what image_io.cpp decodes with already, so
// making thumbnails loads no library (OpenCV's imgcodecs is loaded lazily,
// and only for other formats).
//
// Requires a CV_8UC3 BGR image (as image_io decodes it) and a box with a
// positive width and height; the box may reach outside the image.
// Errors: Error{invalid_input} for an empty image or box, Error{internal} when
// libjpeg fails (it does not on valid input). Thread-safety: reentrant.
#pragma once

#include <cstddef>
#include <opencv2/core/mat.hpp>
#include <string>

#include "faceq/pipeline/analyzer.hpp"

namespace faceq {

inline constexpr int thumbnail_side = 112;                    // pixels, square
inline constexpr double thumbnail_margin = 0.25;              // of the box's longer side, on each side
inline constexpr int thumbnail_quality = 92;                  // libjpeg quality, see above
inline constexpr std::size_t thumbnail_max_bytes = 6 * 1024;  // the target per face

// The JPEG bytes of the face at `box` in `bgr`, within thumbnail_max_bytes.
std::string make_face_thumbnail(const cv::Mat& bgr, const Box& box);
// The same at one `quality` (1..100), whatever its size: for measuring.
std::string encode_face_thumbnail(const cv::Mat& bgr, const Box& box, int quality);

}  // namespace faceq
