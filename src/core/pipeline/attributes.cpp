// attributes.cpp — the age/gender head's inference: its file format (load,
// save), the embedder check and prediction (see faceq/pipeline/attributes.hpp).
// Training fills the same Impl (training/age_gender.cpp).
#include "faceq/pipeline/attributes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "pipeline/attributes_impl.hpp"

namespace faceq {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* json_name = "age_gender.json";
constexpr const char* weights_name = "age_gender.f32";

std::string encode_f32(const std::vector<const std::vector<float>*>& arrays) {
    std::size_t total = 0;
    for (const auto* a : arrays) total += a->size();
    std::string out(total * 4, '\0');
    std::size_t o = 0;
    for (const auto* a : arrays)
        for (float f : *a) {
            std::uint32_t u;
            std::memcpy(&u, &f, 4);
            for (int b = 0; b < 4; ++b) out[o++] = static_cast<char>((u >> (8 * b)) & 0xff);
        }
    return out;
}

std::vector<float> decode_f32(const std::vector<std::uint8_t>& bytes, std::size_t offset, std::size_t count) {
    std::vector<float> out(count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint8_t* b = bytes.data() + 4 * (offset + i);
        const std::uint32_t u = static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
                                (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
        std::memcpy(&out[i], &u, 4);
    }
    return out;
}

}  // namespace

void detail::compute_support_norms(AgeGenderHead::Impl& m) {
    m.sv_sq.resize(m.support);
    for (std::size_t j = 0; j < m.support; ++j) {
        double s = 0;
        for (std::size_t k = 0; k < m.dim; ++k) s += static_cast<double>(m.sv[j * m.dim + k]) * m.sv[j * m.dim + k];
        m.sv_sq[j] = static_cast<float>(s);
    }
}

AgeGenderHead::AgeGenderHead() = default;
AgeGenderHead::AgeGenderHead(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

const std::string& AgeGenderHead::embedder() const { return impl_->embedder; }
const std::string& AgeGenderHead::embedder_sha256() const { return impl_->embedder_sha256; }
std::size_t AgeGenderHead::feature_dim() const { return impl_->dim; }
bool AgeGenderHead::gives_gender() const { return impl_->gender_head; }
json AgeGenderHead::describe() const { return impl_ ? impl_->meta : json(nullptr); }

void AgeGenderHead::check_embedder(const EmbedderIdentity& installed, const std::string& head_name) const {
    if (embedder_mismatch({impl_->embedder, impl_->embedder_sha256}, installed).empty()) return;
    const std::string& installed_version = installed.id;
    throw Error(ErrorKind::model,
                fmt::format("the deployed age/gender head {} was trained for embedder {}, but {} is installed: its "
                            "features mean nothing to it; retrain (faceq prepare utkface && faceq train age-gender "
                            "&& faceq register-model && faceq deploy) or deploy a version trained for {} "
                            "(faceq models list)",
                            head_name, impl_->embedder, installed_version, installed_version));
}

AttributePrediction AgeGenderHead::predict(const std::vector<float>& features) const {
    const Impl& m = *impl_;
    if (features.size() != m.dim)
        throw Error(ErrorKind::internal,
                    fmt::format("age/gender head: {} features, the head expects {}", features.size(), m.dim));
    std::vector<float> z(m.dim);
    double zz = 0;
    for (std::size_t k = 0; k < m.dim; ++k) {
        z[k] = (features[k] - m.mean[k]) / m.scale[k];
        zz += static_cast<double>(z[k]) * z[k];
    }
    double age = m.age_offset, score = m.gender_offset;
    for (std::size_t j = 0; j < m.support; ++j) {
        const float* s = m.sv.data() + j * m.dim;
        float dot = 0;
        for (std::size_t k = 0; k < m.dim; ++k) dot += z[k] * s[k];
        const double d2 = std::max(0.0, zz + m.sv_sq[j] - 2.0 * dot);
        age += m.age_alpha[j] * std::exp(-m.age_gamma * d2);
        if (m.gender_head) score += m.gender_alpha[j] * std::exp(-m.gender_gamma * d2);
    }
    AttributePrediction p;
    p.age = std::clamp(age, 0.0, 120.0);
    if (m.gender_head) p.p_male = detail::sigmoid(m.platt_a * score + m.platt_b);
    return p;
}

void AgeGenderHead::save(const fs::path& dir) const {
    const Impl& m = *impl_;
    std::vector<const std::vector<float>*> arrays{&m.mean, &m.scale, &m.sv, &m.age_alpha};
    if (m.gender_head) arrays.push_back(&m.gender_alpha);
    const std::string weights = encode_f32(arrays);
    json meta = m.meta;
    json table = json::object();
    std::size_t offset = 0;
    const char* names[] = {"mean", "scale", "support_vectors", "age_alpha", "gender_alpha"};
    for (std::size_t i = 0; i < arrays.size(); ++i) {
        table[names[i]] = {{"offset", offset}, {"count", arrays[i]->size()}};
        offset += arrays[i]->size();
    }
    meta["arrays"] = table;
    meta["weights"] = weights_name;
    meta["weights_sha256"] = sha256_hex(weights.data(), weights.size());
    std::error_code ec;
    fs::create_directories(dir, ec);
    write_file_atomic(dir / weights_name, weights);
    write_file_atomic(dir / json_name, meta.dump(2) + "\n");
}

AgeGenderHead AgeGenderHead::load(const fs::path& dir) {
    const fs::path jpath = dir / json_name, wpath = dir / weights_name;
    json meta;
    {
        std::ifstream in(jpath);
        if (!in) throw Error(ErrorKind::model, fmt::format("age/gender head '{}' is missing", jpath.string()));
        try {
            meta = json::parse(in);
        } catch (const json::exception& e) {
            throw Error(ErrorKind::model,
                        fmt::format("age/gender head '{}' is not JSON: {}", jpath.string(), e.what()));
        }
    }
    auto m = std::make_shared<Impl>();
    try {
        if (meta.at("format").get<std::string>() != age_gender_head_format ||
            meta.at("schema").get<int>() != age_gender_head_schema)
            throw Error(ErrorKind::model, fmt::format("'{}' is not a faceq age/gender head (schema {})", jpath.string(),
                                                      age_gender_head_schema));
        std::error_code ec;
        if (!fs::is_regular_file(wpath, ec))
            throw Error(ErrorKind::model, fmt::format("age/gender head weights '{}' are missing", wpath.string()));
        const auto bytes = read_file(wpath);
        if (sha256_hex(bytes.data(), bytes.size()) != meta.at("weights_sha256").get<std::string>())
            throw Error(ErrorKind::model,
                        fmt::format("age/gender head weights '{}' do not match their checksum", wpath.string()));
        const auto& arrays = meta.at("arrays");
        auto take = [&](const char* name) {
            const auto off = arrays.at(name).at("offset").get<std::size_t>();
            const auto count = arrays.at(name).at("count").get<std::size_t>();
            if ((off + count) * 4 > bytes.size())
                throw Error(ErrorKind::model, fmt::format("age/gender head '{}': array {} runs past the end of {}",
                                                          jpath.string(), name, wpath.string()));
            return decode_f32(bytes, off, count);
        };
        m->embedder = meta.at("embedder").get<std::string>();
        m->embedder_sha256 = meta.value("embedder_sha256", "");
        m->dim = meta.at("feature_dim").get<std::size_t>();
        m->support = meta.at("support_vectors").get<std::size_t>();
        m->mean = take("mean");
        m->scale = take("scale");
        m->sv = take("support_vectors");
        m->age_alpha = take("age_alpha");
        const auto& age = meta.at("age");
        m->age_gamma = age.at("gamma_abs").get<double>();
        m->age_offset = age.at("offset").get<double>();
        const auto& gender = meta.at("gender");
        m->gender_head = gender.at("source").get<std::string>() == "head";
        if (m->gender_head) {
            m->gender_alpha = take("gender_alpha");
            m->gender_gamma = gender.at("gamma_abs").get<double>();
            m->gender_offset = gender.at("offset").get<double>();
            m->platt_a = gender.at("platt_a").get<double>();
            m->platt_b = gender.at("platt_b").get<double>();
        }
        if (m->mean.size() != m->dim || m->scale.size() != m->dim || m->sv.size() != m->support * m->dim ||
            m->age_alpha.size() != m->support || (m->gender_head && m->gender_alpha.size() != m->support))
            throw Error(ErrorKind::model, fmt::format("age/gender head '{}': array sizes disagree", jpath.string()));
    } catch (const json::exception& e) {
        throw Error(ErrorKind::model, fmt::format("age/gender head '{}' is malformed: {}", jpath.string(), e.what()));
    }
    for (float& s : m->scale)
        if (!(s > 0)) s = 1;
    detail::compute_support_norms(*m);
    meta.erase("arrays");
    m->meta = std::move(meta);
    return AgeGenderHead(std::move(m));
}

}  // namespace faceq
