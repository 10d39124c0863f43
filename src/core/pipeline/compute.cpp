// compute.cpp — see faceq/pipeline/compute.hpp.
#include "faceq/pipeline/compute.hpp"

#include <opencv2/core/utility.hpp>

#include "base/sysinfo.hpp"

namespace faceq {

bool set_compute_threads(int threads) {
    // OpenCV's own pool (YuNet's dnn layers, resizing) follows the same rule.
    cv::setNumThreads(threads);
    return set_blas_threads(threads);
}

std::string compute_description() { return blas_description(); }

}  // namespace faceq
