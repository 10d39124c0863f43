// imgcodecs_lazy.cpp — dlopen/dlsym of OpenCV's imgcodecs (see the header for why).
#include "pipeline/imgcodecs_lazy.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include "faceq/base/error.hpp"

namespace faceq::imgcodecs {
namespace {

// The Itanium C++ ABI names of the two overloads we call, with libstdc++'s
// C++11 std::string (cv::String is std::string since OpenCV 4). dlsym needs
// them spelled out; tests/test_image_io.cpp checks they resolve to the very
// functions the test binary links.
constexpr const char* imdecode_symbol = "_ZN2cv8imdecodeERKNS_11_InputArrayEi";
constexpr const char* imencode_symbol =
    "_ZN2cv8imencodeERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERKNS_11_InputArrayERSt6vectorIhSaIhEERKSB_"
    "IiSaIiEE";

const Codecs& codecs() {
    static const Codecs loaded = load(FACEQ_IMGCODECS_SONAME);
    return loaded;
}

}  // namespace

Codecs load(const char* soname) {
    // RTLD_LOCAL: nothing else needs its symbols; the handle is never closed,
    // as OpenCV keeps decoders registered in static storage.
    void* handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr)
        throw Error(ErrorKind::internal, fmt::format("cannot load OpenCV's image codecs ({}): {}", soname, dlerror()));
    Codecs c{};
    c.imdecode = reinterpret_cast<decltype(c.imdecode)>(dlsym(handle, imdecode_symbol));
    c.imencode = reinterpret_cast<decltype(c.imencode)>(dlsym(handle, imencode_symbol));
    if (c.imdecode == nullptr || c.imencode == nullptr)
        throw Error(ErrorKind::internal,
                    fmt::format("cannot load OpenCV's image codecs ({}): no cv::imdecode/cv::imencode in it", soname));
    return c;
}

cv::Mat imdecode(const cv::Mat& buf, int flags) { return codecs().imdecode(buf, flags); }

bool imencode(const std::string& ext, const cv::Mat& img, std::vector<unsigned char>& buf,
              const std::vector<int>& params) {
    return codecs().imencode(ext, img, buf, params);
}

}  // namespace faceq::imgcodecs
