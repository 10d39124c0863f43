// faceq/pipeline/compute.hpp — the threads the numeric libraries use inside
// one call. faceq's parallelism is across images (one worker thread per
// core, each with its own networks), so analysis runs one BLAS thread per
// worker; training, which is one big computation, uses every core.
//
// Thread-safety: set_compute_threads() changes process-wide settings: call it
// before starting worker threads. Throws nothing.
#pragma once

#include <string>

namespace faceq {

// Threads OpenBLAS (dlib's convolutions and training's matrix products) and
// OpenCV (YuNet's network, resizing) use per call. Returns false when the
// process does not run OpenBLAS.
bool set_compute_threads(int threads);

// The BLAS in use, e.g. "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
// (OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64)".
std::string compute_description();

}  // namespace faceq
