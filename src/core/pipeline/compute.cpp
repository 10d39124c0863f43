// compute.cpp — see faceq/pipeline/compute.hpp.
#include "faceq/pipeline/compute.hpp"

#include "base/sysinfo.hpp"

namespace faceq {

bool set_compute_threads(int threads) { return set_blas_threads(threads); }

std::string compute_description() { return blas_description(); }

}  // namespace faceq
