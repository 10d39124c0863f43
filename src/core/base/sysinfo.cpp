#include "base/sysinfo.hpp"

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace faceq {
namespace {

int find_blas(struct dl_phdr_info* info, size_t, void* data) {
    auto* out = static_cast<std::string*>(data);
    const char* name = info->dlpi_name;
    if (name && (std::strstr(name, "libblas") || std::strstr(name, "libopenblas"))) {
        // Prefer the libblas.so.3 that dlib links against over libopenblas.so.0.
        if (out->empty() || std::strstr(name, "libblas")) *out = name;
    }
    return 0;
}

std::uint64_t read_status_kb(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::size_t klen = std::strlen(key);
    while (std::getline(in, line)) {
        if (line.compare(0, klen, key) == 0) return std::strtoull(line.c_str() + klen, nullptr, 10) * 1024;
    }
    return 0;
}

}  // namespace

std::string blas_description() {
    std::string lib;
    dl_iterate_phdr(find_blas, &lib);
    if (lib.empty()) return "none loaded";
    char resolved[4096];
    std::string out = realpath(lib.c_str(), resolved) ? resolved : lib;
    using config_fn = char* (*)();
    if (auto fn = reinterpret_cast<config_fn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
        out += " (";
        out += fn();
        using threads_fn = int (*)();
        if (auto nt = reinterpret_cast<threads_fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")))
            out += ", threads=" + std::to_string(nt());
        out += ")";
    }
    return out;
}

bool set_blas_threads(int threads) {
    using set_fn = void (*)(int);
    if (auto fn = reinterpret_cast<set_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
        fn(threads);
        return true;
    }
    return false;
}

std::uint64_t peak_rss_bytes() { return read_status_kb("VmHWM:"); }
std::uint64_t current_rss_bytes() { return read_status_kb("VmRSS:"); }

}  // namespace faceq
