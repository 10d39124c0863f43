// dnn_nets.cpp — the only translation unit that instantiates dlib's DNN
// templates: network definitions, loading, inference, and the face-api.js ->
// dlib ResNet weight conversion.
//
// The network definitions are those dlib's published models were trained with
// (dlib's dnn_face_recognition_ex.cpp, dnn_mmod_face_detection_ex.cpp and
// dlib-models' dnn_gender_classifier_v1_ex.cpp); a .dat file deserializes only
// into exactly the type that wrote it.
#include "pipeline/dnn_nets.hpp"

#include <dlib/dnn.h>
#include <dlib/image_transforms.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "pipeline/convert_resnet.hpp"

namespace faceq::detail {
namespace {

using namespace dlib;

// ------------------------------------------------------------- ResNet (128-D)
template <template <int, template <typename> class, int, typename> class block, int N, template <typename> class BN,
          typename SUBNET>
using residual = add_prev1<block<N, BN, 1, tag1<SUBNET>>>;

template <template <int, template <typename> class, int, typename> class block, int N, template <typename> class BN,
          typename SUBNET>
using residual_down = add_prev2<avg_pool<2, 2, 2, 2, skip1<tag2<block<N, BN, 2, tag1<SUBNET>>>>>>;

template <int N, template <typename> class BN, int stride, typename SUBNET>
using block = BN<con<N, 3, 3, 1, 1, relu<BN<con<N, 3, 3, stride, stride, SUBNET>>>>>;

template <int N, typename SUBNET>
using ares = relu<residual<block, N, affine, SUBNET>>;
template <int N, typename SUBNET>
using ares_down = relu<residual_down<block, N, affine, SUBNET>>;

template <typename SUBNET>
using alevel0 = ares_down<256, SUBNET>;
template <typename SUBNET>
using alevel1 = ares<256, ares<256, ares_down<256, SUBNET>>>;
template <typename SUBNET>
using alevel2 = ares<128, ares<128, ares_down<128, SUBNET>>>;
template <typename SUBNET>
using alevel3 = ares<64, ares<64, ares<64, ares_down<64, SUBNET>>>>;
template <typename SUBNET>
using alevel4 = ares<32, ares<32, ares<32, SUBNET>>>;

using resnet_type =
    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<max_pool<
                                    3, 3, 2, 2, relu<affine<con<32, 7, 7, 2, 2, input_rgb_image_sized<150>>>>>>>>>>>>>;

// ------------------------------------------------------------- MMOD detector
template <long num_filters, typename SUBNET>
using con5d = con<num_filters, 5, 5, 2, 2, SUBNET>;
template <long num_filters, typename SUBNET>
using con5 = con<num_filters, 5, 5, 1, 1, SUBNET>;
template <typename SUBNET>
using downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, SUBNET>>>>>>>>>;
template <typename SUBNET>
using rcon5 = relu<affine<con5<45, SUBNET>>>;
using mmod_type =
    loss_mmod<con<1, 9, 9, 1, 1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>;

// ------------------------------------------------------------- gender CNN
template <int N, template <typename> class BN, int stride, typename SUBNET>
using gblock = BN<con<N, 3, 3, stride, stride, relu<BN<con<N, 3, 3, stride, stride, SUBNET>>>>>;
template <int N, typename SUBNET>
using gares = relu<gblock<N, affine, 1, SUBNET>>;
template <typename SUBNET>
using glevel1 = avg_pool<2, 2, 2, 2, gares<64, SUBNET>>;
template <typename SUBNET>
using glevel2 = avg_pool<2, 2, 2, 2, gares<32, SUBNET>>;
using gender_type =
    loss_multiclass_log<fc<2, multiply<relu<fc<16, multiply<glevel1<glevel2<input_rgb_image_sized<32>>>>>>>>>;

// ------------------------------------------------------------- loading
// dlib's .dat files store every float in a portable encoding that is decoded
// value by value: the ResNet's 5.6 million weights take ~0.25 s to read, half
// of a one-photo `faceq analyze`. So after a network is first read from its
// .dat, it is cached beside it as ".<file>.fastload": a header naming the
// .dat's size and modification time, dlib's own serialization of the network
// with its weight tensors emptied (the layer settings, a few kB), then each
// weight tensor's shape and its raw floats, read back straight into each
// tensor (one read per tensor). A cache that is stale (the .dat was
// replaced), truncated or not this network's is ignored and written again;
// it is written atomically, and not at all when the directory is read-only
// (the .dat is then read every time). The cache is derived data: deleting it
// costs one slow load.
constexpr char fastload_magic[8] = {'F', 'Q', 'N', 'E', 'T', 'v', '1', '\n'};

struct DatStamp {
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
};

std::optional<DatStamp> stamp_of(const std::filesystem::path& dat) {
    struct stat st {};
    if (::stat(dat.c_str(), &st) != 0) return std::nullopt;
    return DatStamp{static_cast<std::uint64_t>(st.st_size),
                    static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::filesystem::path fastload_path(const std::filesystem::path& dat) {
    return dat.parent_path() / ("." + dat.filename().string() + ".fastload");
}

template <typename T>
void put(std::string& out, T value) {
    out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// Reads a file front to back; every read is checked against the file's size
// (a short cache is refused, never read past).
class FileReader {
public:
    FileReader(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
    template <typename T>
    bool get(T& value) {
        return bytes(&value, sizeof value);
    }
    bool bytes(void* dst, std::uint64_t n) {
        if (n > size_ - pos_) return false;
        auto* p = static_cast<char*>(dst);
        while (n > 0) {
            const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(pos_));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return false;
            p += got;
            pos_ += static_cast<std::uint64_t>(got);
            n -= static_cast<std::uint64_t>(got);
        }
        return true;
    }
    bool at_end() const { return pos_ == size_; }
    std::uint64_t remaining() const { return size_ - pos_; }

private:
    int fd_;
    std::uint64_t size_;
    std::uint64_t pos_ = 0;
};

template <typename Net>
std::vector<resizable_tensor*> weight_tensors(Net& net) {
    std::vector<resizable_tensor*> out;
    visit_layer_parameters(net, [&out](tensor& t) { out.push_back(&dynamic_cast<resizable_tensor&>(t)); });
    return out;
}

template <typename Net>
void write_fastload(Net& net, const std::filesystem::path& dat, const DatStamp& stamp) {
    Net skeleton = net;
    skeleton.clean();  // no cached outputs or gradients in the settings
    for (resizable_tensor* t : weight_tensors(skeleton)) t->clear();
    std::ostringstream settings;
    serialize(skeleton, settings);
    const std::string layers = settings.str();

    std::string out(fastload_magic, sizeof fastload_magic);
    put(out, stamp.size);
    put(out, stamp.mtime_ns);
    put(out, static_cast<std::uint64_t>(layers.size()));
    out += layers;
    const auto tensors = weight_tensors(net);
    put(out, static_cast<std::uint64_t>(tensors.size()));
    for (const resizable_tensor* t : tensors) {
        for (const long long d : {t->num_samples(), t->k(), t->nr(), t->nc()}) put(out, static_cast<std::int64_t>(d));
        out.append(reinterpret_cast<const char*>(t->host()), t->size() * sizeof(float));
    }
    write_file_atomic(fastload_path(dat), out);
}

// True when `net` was filled from a cache that matches `stamp`.
template <typename Net>
bool read_fastload(Net& net, const std::filesystem::path& dat, const DatStamp& stamp) {
    // The floats are read straight into the tensors: no second copy.
    const UniqueFd fd(::open(fastload_path(dat).c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || st.st_size <= 0) return false;
    FileReader in(fd.get(), static_cast<std::uint64_t>(st.st_size));
    char magic[sizeof fastload_magic];
    DatStamp cached;
    std::uint64_t layers_size = 0;
    if (!in.bytes(magic, sizeof magic) || std::memcmp(magic, fastload_magic, sizeof magic) != 0 ||
        !in.get(cached.size) || !in.get(cached.mtime_ns) || cached.size != stamp.size ||
        cached.mtime_ns != stamp.mtime_ns || !in.get(layers_size) || layers_size > (1u << 24))
        return false;
    std::string layers(layers_size, '\0');
    if (!in.bytes(layers.data(), layers_size)) return false;
    // `net` is filled in place; when the cache turns out bad half-way, the
    // caller's deserialization of the .dat replaces all of it.
    try {
        std::istringstream settings(std::move(layers));
        deserialize(net, settings);
    } catch (const std::exception&) {
        return false;
    }
    const auto tensors = weight_tensors(net);
    std::uint64_t count = 0;
    if (!in.get(count) || count != tensors.size()) return false;
    for (resizable_tensor* t : tensors) {
        // No more floats than the file has left (nothing is allocated for
        // a shape the file cannot fill), the product checked factor by factor
        // so that no shape can overflow it.
        const std::uint64_t max_floats = in.remaining() / sizeof(float);
        std::int64_t shape[4];
        std::uint64_t n = 1;
        for (auto& d : shape) {
            if (!in.get(d) || d < 0 || (d > 0 && n > max_floats / static_cast<std::uint64_t>(d))) return false;
            n *= static_cast<std::uint64_t>(d);
        }
        t->set_size(shape[0], shape[1], shape[2], shape[3]);
        if (n > 0 && !in.bytes(t->host_write_only(), n * sizeof(float))) return false;
    }
    return in.at_end();
}

template <typename Net>
void load_net(Net& net, const std::filesystem::path& dat, const char* what) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(dat, ec))
        throw Error(ErrorKind::model, fmt::format("{} model '{}' is missing", what, dat.string()));
    const auto stamp = stamp_of(dat);
    if (stamp && read_fastload(net, dat, *stamp)) return;
    try {
        deserialize(dat.string()) >> net;
    } catch (const std::exception& e) {
        throw Error(ErrorKind::model, fmt::format("{} model '{}' cannot be loaded: {}", what, dat.string(), e.what()));
    }
    if (!stamp) return;
    try {
        write_fastload(net, dat, *stamp);
    } catch (const std::exception&) {
        // A read-only or full models directory: the .dat is read next time too.
    }
}

// Copies a tensor's host values into a std::vector.
std::vector<float> flatten(const tensor& t, long sample) {
    const long per = t.k() * t.nr() * t.nc();
    const float* p = t.host() + sample * per;
    return std::vector<float>(p, p + per);
}

}  // namespace

// ============================================================= EmbedderNet
struct EmbedderNet::Impl {
    resnet_type net;
};

EmbedderNet::EmbedderNet(const std::filesystem::path& dat) : impl_(std::make_unique<Impl>()) {
    load_net(impl_->net, dat, "face descriptor");
}
EmbedderNet::EmbedderNet(const EmbedderNet& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
EmbedderNet& EmbedderNet::operator=(const EmbedderNet& other) {
    if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
    return *this;
}
EmbedderNet::~EmbedderNet() = default;

std::vector<Descriptor> EmbedderNet::embed(const std::vector<RgbImage>& chips, int jitter, int batch_size) {
    std::vector<Descriptor> out;
    out.reserve(chips.size());
    if (chips.empty()) return out;
    auto to_array = [](const matrix<float, 0, 1>& m) {
        Descriptor d{};
        for (long i = 0; i < 128; ++i) d[static_cast<std::size_t>(i)] = m(i);
        return d;
    };
    if (jitter <= 0) {
        const auto descs = impl_->net(chips, static_cast<std::size_t>(batch_size));
        for (const auto& m : descs) out.push_back(to_array(m));
        return out;
    }
    for (std::size_t c = 0; c < chips.size(); ++c) {
        dlib::rand rnd(static_cast<unsigned long>(c) + 1);  // fixed seeds: same input, same output
        std::vector<RgbImage> copies;
        copies.reserve(static_cast<std::size_t>(jitter));
        for (int j = 0; j < jitter; ++j) copies.push_back(jitter_image(chips[c], rnd));
        const auto descs = impl_->net(copies, static_cast<std::size_t>(batch_size));
        matrix<float, 0, 1> sum = zeros_matrix<float>(128, 1);
        for (const auto& m : descs) sum += m;
        out.push_back(to_array(sum / static_cast<float>(descs.size())));
    }
    return out;
}

std::vector<Descriptor> EmbedderNet::embed_with_features(const std::vector<RgbImage>& chips,
                                                         std::vector<std::vector<float>>& features, int batch_size) {
    std::vector<Descriptor> out;
    features.clear();
    out.reserve(chips.size());
    features.reserve(chips.size());
    for (std::size_t start = 0; start < chips.size(); start += static_cast<std::size_t>(batch_size)) {
        const std::size_t end = std::min(chips.size(), start + static_cast<std::size_t>(batch_size));
        resizable_tensor x;
        impl_->net.to_tensor(chips.begin() + static_cast<long>(start), chips.begin() + static_cast<long>(end), x);
        impl_->net.subnet().forward(x);
        const tensor& desc = impl_->net.subnet().get_output();    // fc output: n x 128
        const tensor& block = layer<3>(impl_->net).get_output();  // last residual block
        for (long s = 0; s < static_cast<long>(end - start); ++s) {
            Descriptor d{};
            const float* p = desc.host() + s * 128;
            std::copy(p, p + 128, d.begin());
            out.push_back(d);
            features.push_back(flatten(block, s));
        }
    }
    return out;
}

std::size_t EmbedderNet::feature_size() {
    // 256 channels of the last residual block at its spatial size for a
    // 150x150 input; computed once from the network itself.
    static const std::size_t size = [] {
        resnet_type net;
        std::vector<RgbImage> one(1, RgbImage(150, 150));
        for (auto& p : one[0]) p = rgb_pixel(0, 0, 0);
        resizable_tensor x;
        net.to_tensor(one.begin(), one.end(), x);
        net.subnet().forward(x);
        const tensor& t = layer<3>(net).get_output();
        return static_cast<std::size_t>(t.k() * t.nr() * t.nc());
    }();
    return size;
}

// ============================================================= CnnDetectorNet
struct CnnDetectorNet::Impl {
    mmod_type net;
};

CnnDetectorNet::CnnDetectorNet(const std::filesystem::path& dat) : impl_(std::make_unique<Impl>()) {
    load_net(impl_->net, dat, "CNN face detector");
}
CnnDetectorNet::CnnDetectorNet(const CnnDetectorNet& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
CnnDetectorNet& CnnDetectorNet::operator=(const CnnDetectorNet& other) {
    if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
    return *this;
}
CnnDetectorNet::~CnnDetectorNet() = default;

std::vector<CnnDetection> CnnDetectorNet::detect(const RgbImage& image, int upsample) {
    RgbImage img = image;
    double scale = 1.0;
    for (int i = 0; i < upsample; ++i) {
        pyramid_up(img);
        scale *= 2.0;
    }
    std::vector<CnnDetection> out;
    for (const auto& d : impl_->net(img)) {
        const rectangle r = d.rect;
        out.push_back({rectangle(static_cast<long>(std::lround(r.left() / scale)),
                                 static_cast<long>(std::lround(r.top() / scale)),
                                 static_cast<long>(std::lround(r.right() / scale)),
                                 static_cast<long>(std::lround(r.bottom() / scale))),
                       d.detection_confidence});
    }
    return out;
}

// ============================================================= GenderNet
struct GenderNet::Impl {
    gender_type net;
};

GenderNet::GenderNet(const std::filesystem::path& dat) : impl_(std::make_unique<Impl>()) {
    load_net(impl_->net, dat, "gender");
}
GenderNet::GenderNet(const GenderNet& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
GenderNet& GenderNet::operator=(const GenderNet& other) {
    if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
    return *this;
}
GenderNet::~GenderNet() = default;

std::vector<float> GenderNet::p_male(const std::vector<RgbImage>& chips, int batch_size) {
    std::vector<float> out;
    out.reserve(chips.size());
    for (std::size_t start = 0; start < chips.size(); start += static_cast<std::size_t>(batch_size)) {
        const std::size_t end = std::min(chips.size(), start + static_cast<std::size_t>(batch_size));
        resizable_tensor x;
        impl_->net.to_tensor(chips.begin() + static_cast<long>(start), chips.begin() + static_cast<long>(end), x);
        impl_->net.subnet().forward(x);
        const tensor& logits = impl_->net.subnet().get_output();  // n x 2
        const float* p = logits.host();
        for (long s = 0; s < static_cast<long>(end - start); ++s) {
            const float female = p[2 * s], male = p[2 * s + 1];
            const float m = std::max(female, male);
            const float ef = std::exp(female - m), em = std::exp(male - m);
            out.push_back(em / (ef + em));
        }
    }
    return out;
}

}  // namespace faceq::detail

// ============================================================= conversion
namespace faceq {
namespace {

struct Tensor {
    std::string name;
    std::vector<long> shape;
    std::vector<float> values;
};

std::vector<Tensor> read_faceapi_weights(const std::filesystem::path& manifest_json,
                                         const std::filesystem::path& weights_bin, std::size_t& bytes_used) {
    nlohmann::json manifest;
    try {
        std::ifstream in(manifest_json);
        if (!in) throw Error(ErrorKind::not_found, fmt::format("no such file '{}'", manifest_json.string()));
        in >> manifest;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("weights manifest '{}' is not valid JSON: {}", manifest_json.string(), e.what()));
    }
    const auto bin = read_file(weights_bin);
    std::vector<Tensor> tensors;
    std::size_t offset = 0;
    try {
        for (const auto& group : manifest) {
            for (const auto& w : group.at("weights")) {
                Tensor t;
                t.name = w.at("name").get<std::string>();
                std::size_t count = 1;
                for (const auto& d : w.at("shape")) {
                    t.shape.push_back(d.get<long>());
                    count *= d.get<std::size_t>();
                }
                t.values.resize(count);
                if (w.contains("quantization")) {
                    const auto& q = w.at("quantization");
                    if (q.at("dtype").get<std::string>() != "uint8")
                        throw Error(ErrorKind::invalid_input,
                                    fmt::format("weights manifest '{}': tensor {} has unsupported quantization",
                                                manifest_json.string(), t.name));
                    const double scale = q.at("scale").get<double>(), min = q.at("min").get<double>();
                    if (offset + count > bin.size()) break;
                    for (std::size_t i = 0; i < count; ++i)
                        t.values[i] = static_cast<float>(min + scale * bin[offset + i]);
                    offset += count;
                } else {
                    if (w.at("dtype").get<std::string>() != "float32")
                        throw Error(ErrorKind::invalid_input,
                                    fmt::format("weights manifest '{}': tensor {} is not float32",
                                                manifest_json.string(), t.name));
                    if (offset + 4 * count > bin.size()) break;
                    for (std::size_t i = 0; i < count; ++i) {
                        const std::uint8_t* b = bin.data() + offset + 4 * i;
                        const std::uint32_t u =
                            static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
                            (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
                        float f;
                        std::memcpy(&f, &u, sizeof f);
                        t.values[i] = f;
                    }
                    offset += 4 * count;
                }
                tensors.push_back(std::move(t));
            }
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::invalid_input,
                    fmt::format("weights manifest '{}' is malformed: {}", manifest_json.string(), e.what()));
    }
    bytes_used = offset;
    if (offset != bin.size())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("weights '{}' hold {} bytes but the manifest describes {}{}", weights_bin.string(),
                                bin.size(), offset, offset > bin.size() ? " or more" : ""));
    return tensors;
}

struct LayerCollector {
    std::vector<dlib::tensor*>* cons;
    std::vector<dlib::affine_*>* affines;
    dlib::tensor** fc;

    template <long nf, long nr, long nc, int sy, int sx, int py, int px>
    void operator()(dlib::con_<nf, nr, nc, sy, sx, py, px>& l) const {
        cons->push_back(&l.get_layer_params());
    }
    void operator()(dlib::affine_& l) const { affines->push_back(&l); }
    template <unsigned long n, dlib::fc_bias_mode mode>
    void operator()(dlib::fc_<n, mode>& l) const {
        *fc = &l.get_layer_params();
    }
    template <typename T>
    void operator()(T&) const {}
};

struct AffineToConvMode {
    void operator()(dlib::affine_& l) const { l = dlib::affine_(dlib::CONV_MODE); }
    template <typename T>
    void operator()(T&) const {}
};

}  // namespace
// ~90 lines on purpose: one linear walk over the net's layers in weight order; splitting it would scatter that order.
ConversionReport convert_faceapi_resnet(const std::filesystem::path& manifest_json,
                                        const std::filesystem::path& weights_bin,
                                        const std::filesystem::path& out_dat) {
    using detail::resnet_type;
    ConversionReport report;
    const auto tensors = read_faceapi_weights(manifest_json, weights_bin, report.bytes);
    report.tensors = tensors.size();

    auto net = std::make_unique<resnet_type>();
    dlib::visit_computational_layers(*net, AffineToConvMode{});
    {
        // Parameters exist only after the first forward pass sizes each layer.
        std::vector<detail::RgbImage> one(1, detail::RgbImage(150, 150));
        for (auto& p : one[0]) p = dlib::rgb_pixel(128, 128, 128);
        dlib::resizable_tensor x;
        net->to_tensor(one.begin(), one.end(), x);
        net->subnet().forward(x);
    }
    std::vector<dlib::tensor*> cons;
    std::vector<dlib::affine_*> affines;
    dlib::tensor* fc = nullptr;
    dlib::visit_computational_layers(*net, LayerCollector{&cons, &affines, &fc});
    // The visitor walks from the output to the input; face-api's manifest runs
    // from the input to the output.
    std::reverse(cons.begin(), cons.end());
    std::reverse(affines.begin(), affines.end());

    const std::size_t expected = cons.size() * 4 + 1;
    if (cons.size() != affines.size() || fc == nullptr || tensors.size() != expected)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("weights manifest '{}' has {} tensors; dlib's ResNet needs {}", manifest_json.string(),
                                tensors.size(), expected));

    auto expect = [&](const Tensor& t, const char* suffix, std::size_t count) {
        const std::string s = suffix;
        if (t.name.size() < s.size() || t.name.compare(t.name.size() - s.size(), s.size(), s) != 0 ||
            t.values.size() != count)
            throw Error(ErrorKind::invalid_input,
                        fmt::format("weights manifest '{}': tensor '{}' ({} values) is not the expected '*{}' "
                                    "with {} values",
                                    manifest_json.string(), t.name, t.values.size(), s, count));
    };

    std::size_t next = 0;
    for (std::size_t c = 0; c < cons.size(); ++c) {
        dlib::tensor& params = *cons[c];
        const Tensor& filters = tensors[next++];
        if (filters.shape.size() != 4)
            throw Error(ErrorKind::invalid_input, fmt::format("weights manifest '{}': '{}' is not a 4-D filter",
                                                              manifest_json.string(), filters.name));
        const long KH = filters.shape[0], KW = filters.shape[1], I = filters.shape[2], O = filters.shape[3];
        const std::size_t nfilter = static_cast<std::size_t>(KH * KW * I * O);
        expect(filters, "/conv/filters", nfilter);
        if (static_cast<std::size_t>(params.size()) != nfilter + static_cast<std::size_t>(O))
            throw Error(ErrorKind::invalid_input,
                        fmt::format("weights manifest '{}': '{}' has shape {}x{}x{}x{}, which does not fit layer {} "
                                    "of dlib's ResNet",
                                    manifest_json.string(), filters.name, KH, KW, I, O, c));
        float* p = params.host();
        for (long o = 0; o < O; ++o)
            for (long i = 0; i < I; ++i)
                for (long y = 0; y < KH; ++y)
                    for (long x = 0; x < KW; ++x)
                        p[((o * I + i) * KH + y) * KW + x] =
                            filters.values[static_cast<std::size_t>(((y * KW + x) * I + i) * O + o)];
        const Tensor& bias = tensors[next++];
        expect(bias, "/conv/bias", static_cast<std::size_t>(O));
        std::copy(bias.values.begin(), bias.values.end(), p + nfilter);

        const Tensor& gamma = tensors[next++];
        const Tensor& beta = tensors[next++];
        expect(gamma, "/scale/weights", static_cast<std::size_t>(O));
        expect(beta, "/scale/biases", static_cast<std::size_t>(O));
        auto g = affines[c]->get_gamma();
        auto b = affines[c]->get_beta();
        if (static_cast<long>(g.size()) != O || static_cast<long>(b.size()) != O)
            throw Error(ErrorKind::internal, "converter: affine layer is not in CONV_MODE");
        std::copy(gamma.values.begin(), gamma.values.end(), g.host());
        std::copy(beta.values.begin(), beta.values.end(), b.host());
        report.parameters += nfilter + 3 * static_cast<std::size_t>(O);
    }
    const Tensor& fcw = tensors[next++];
    expect(fcw, "fc", static_cast<std::size_t>(fc->size()));
    std::copy(fcw.values.begin(), fcw.values.end(), fc->host());
    report.parameters += fcw.values.size();

    net->clean();
    std::ostringstream buffer;
    dlib::serialize(*net, buffer);
    write_file_atomic(out_dat, buffer.str());
    return report;
}

}  // namespace faceq
