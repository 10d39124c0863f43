// imgcodecs_lazy.hpp — OpenCV's imgcodecs, loaded with dlopen at first use.
//
// Loading libopencv_imgcodecs costs ~0.12 s per process: Debian's build pulls
// in ~140 shared libraries (GDAL, GDCM, HEIF, OpenEXR, ...), a third of what a
// one-photo `faceq analyze` should take. faceq decodes JPEG and PNG itself
// (image_io.cpp) and needs imgcodecs only for the other formats and for
// writing annotated images, so neither the core nor the binary links it: these
// functions resolve cv::imdecode and cv::imencode in the library named by
// FACEQ_IMGCODECS_SONAME (from CMake) on their first call.
//
// Errors: Error{internal} naming the library and dlerror()'s reason when it
// cannot be loaded or lacks the symbol; cv::Exception from OpenCV itself, as
// when linked. Thread-safety: the library is loaded once (a function-local
// static); the functions are as reentrant as OpenCV's.
#pragma once

#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

namespace faceq::imgcodecs {

// cv::imdecode(buf, flags) and cv::imencode(ext, img, buf, params).
cv::Mat imdecode(const cv::Mat& buf, int flags);
bool imencode(const std::string& ext, const cv::Mat& img, std::vector<unsigned char>& buf,
              const std::vector<int>& params);

// The library's resolved entry points; what the two functions above use,
// loaded from `soname` (not cached: for tests, whose binary links imgcodecs).
struct Codecs {
    cv::Mat (*imdecode)(cv::InputArray, int);
    bool (*imencode)(const cv::String&, cv::InputArray, std::vector<uchar>&, const std::vector<int>&);
};
Codecs load(const char* soname);

}  // namespace faceq::imgcodecs
