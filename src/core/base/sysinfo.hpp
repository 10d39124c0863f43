// base/sysinfo.hpp (private) — facts about the running process that users and
// benchmarks need: which BLAS dlib's convolutions run through, how many
// threads it uses, and the peak resident set size.
#pragma once

#include <cstdint>
#include <string>

namespace faceq {

// The shared object that provides BLAS in this process (resolved through the
// libblas.so.3 alternative), and OpenBLAS's own config string when it is
// OpenBLAS, e.g. "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
// (OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64)".
std::string blas_description();

// Sets OpenBLAS's thread count when OpenBLAS is loaded; returns false otherwise.
// faceq runs one BLAS thread per worker: its parallelism is across images.
bool set_blas_threads(int threads);

// Peak resident set size of this process in bytes (VmHWM).
std::uint64_t peak_rss_bytes();
// Current resident set size in bytes (VmRSS).
std::uint64_t current_rss_bytes();

}  // namespace faceq
