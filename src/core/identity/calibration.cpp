#include "faceq/identity/calibration.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "faceq/base/error.hpp"

namespace faceq {
namespace {

// Measured on lfw-dev with faceapi_face_recognition_resnet (docs/identification.md):
// at 0.47 / 0.08, 0.3% of strangers are named in a gallery of 100 persons with
// one photo each and 0.8% with three photos each (the mean of several photos
// sits nearer to everyone), while 68% / 96% of known people are named right.
constexpr float default_threshold = 0.47f;
// Asking the runner-up to be 0.08 further away rejects the strangers that fall
// between two persons; at the same false-accept rate it names 80% of known
// people instead of 72% (100 persons) and 71% instead of 49% (1,000).
constexpr float default_margin = 0.08f;

// Distances under which a fraction 10^-6, 10^-5.9, ..., 10^-1 of the 12.3
// million impostor pairs of lfw-dev fall (what calibrate() computes from them).
constexpr float lfw_impostor_tail[] = {
    0.3734f, 0.3787f, 0.3866f, 0.3901f, 0.3965f, 0.4020f, 0.4050f, 0.4081f, 0.4122f, 0.4175f, 0.4224f, 0.4264f, 0.4322f,
    0.4371f, 0.4420f, 0.4467f, 0.4517f, 0.4574f, 0.4624f, 0.4678f, 0.4746f, 0.4805f, 0.4861f, 0.4928f, 0.4994f, 0.5060f,
    0.5133f, 0.5205f, 0.5278f, 0.5349f, 0.5421f, 0.5497f, 0.5572f, 0.5646f, 0.5721f, 0.5794f, 0.5870f, 0.5944f, 0.6021f,
    0.6097f, 0.6174f, 0.6253f, 0.6333f, 0.6415f, 0.6500f, 0.6587f, 0.6677f, 0.6772f, 0.6871f, 0.6975f, 0.7085f,
};

// Impostor pair rates the tail table keeps (log-spaced, 1e-7 .. 0.1).
std::vector<double> tail_rates() {
    std::vector<double> rates;
    for (double e = -7.0; e <= -1.0 + 1e-9; e += 0.1) rates.push_back(std::pow(10.0, e));
    return rates;
}

// Per-comparison rate that makes a stranger named with probability `far`
// among `n` independent comparisons.
double per_comparison_rate(double far, std::size_t n) {
    return -std::expm1(std::log1p(-far) / static_cast<double>(std::max<std::size_t>(n, 1)));
}

}  // namespace

const char* to_string(Decision decision) noexcept {
    switch (decision) {
        case Decision::known:
            return "known";
        case Decision::unknown:
            return "unknown";
        case Decision::ambiguous:
            return "ambiguous";
    }
    return "unknown";
}

IdentityDecision decide(const std::vector<PersonMatch>& nearest, const Calibration& c) {
    IdentityDecision out;
    if (nearest.empty()) return out;
    out.nearest = nearest[0];
    if (nearest.size() > 1) {
        out.runner_up = nearest[1];
        out.margin = nearest[1].distance - nearest[0].distance;
    }
    const float d1 = nearest[0].distance;
    if (d1 >= c.threshold) return out;
    if (!out.runner_up || *out.margin >= c.margin) {
        out.decision = Decision::known;
    } else if (out.runner_up->distance < c.threshold) {
        out.decision = Decision::ambiguous;
    }
    return out;
}

Calibration default_calibration() {
    Calibration c;
    c.threshold = default_threshold;
    c.margin = default_margin;
    c.far_target = 0.01;
    c.reference_persons = 100;
    c.source = "default";
    for (std::size_t i = 0; i < std::size(lfw_impostor_tail); ++i)
        c.impostor_tail.emplace_back(lfw_impostor_tail[i], std::pow(10.0, -6.0 + 0.1 * static_cast<double>(i)));
    return c;
}

Calibration calibrate(std::vector<float> genuine, std::vector<float> impostor, double far_target,
                      std::size_t reference_persons) {
    if (!(far_target > 0 && far_target < 1))
        throw Error(ErrorKind::usage, fmt::format("false-accept target {} is not between 0 and 1", far_target));
    const double rate = per_comparison_rate(far_target, reference_persons);
    if (static_cast<double>(impostor.size()) * rate < 10.0)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("{} impostor distances cannot resolve a false-accept rate of {} at {} persons "
                                "(need at least {:.0f})",
                                impostor.size(), far_target, reference_persons, 10.0 / rate));
    std::sort(impostor.begin(), impostor.end());
    std::sort(genuine.begin(), genuine.end());
    const auto n = static_cast<double>(impostor.size());
    auto quantile = [&](double r) {
        const auto i = static_cast<std::size_t>(std::min(n - 1, std::floor(r * n)));
        return impostor[i];
    };
    Calibration c;
    c.threshold = quantile(rate);
    c.margin = default_margin * c.threshold / default_threshold;
    c.far_target = far_target;
    c.reference_persons = reference_persons;
    if (genuine.empty() || genuine.front() >= c.threshold)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("no genuine distance is under the threshold {:.4f}: the data cannot be calibrated",
                                c.threshold));
    for (double r : tail_rates()) {
        if (r * n < 10.0) continue;  // fewer than 10 pairs: too noisy to keep
        const float d = quantile(r);
        if (!c.impostor_tail.empty() && d <= c.impostor_tail.back().first) continue;
        c.impostor_tail.emplace_back(d, r);
    }
    return c;
}

double impostor_pair_rate(const Calibration& c, float distance) {
    const auto& t = c.impostor_tail;
    if (t.empty()) return 0.0;
    if (distance <= t.front().first) {
        // Below the table: extrapolate log-linearly towards 0.
        if (t.size() < 2) return t.front().second;
        const double slope = (std::log(t[1].second) - std::log(t[0].second)) / (t[1].first - t[0].first);
        return t.front().second * std::exp(slope * (distance - t.front().first));
    }
    if (distance >= t.back().first) return t.back().second;
    const auto hi = std::upper_bound(t.begin(), t.end(), distance,
                                     [](float d, const std::pair<float, double>& p) { return d < p.first; });
    const auto lo = hi - 1;
    // Log-linear between points: the tail is close to exponential in distance.
    const double f = (distance - lo->first) / (hi->first - lo->first);
    return std::exp(std::log(lo->second) + f * (std::log(hi->second) - std::log(lo->second)));
}

double expected_far(const Calibration& c, float threshold, std::size_t samples) {
    const double p = impostor_pair_rate(c, threshold);
    return -std::expm1(static_cast<double>(samples) * std::log1p(-std::min(p, 1.0 - 1e-12)));
}

float threshold_for_far(const Calibration& c, double far, std::size_t samples) {
    if (!(far > 0 && far < 1))
        throw Error(ErrorKind::usage, fmt::format("false-accept target {} is not between 0 and 1", far));
    if (c.impostor_tail.size() < 2)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("calibration '{}' has no impostor distance table: a false-accept target cannot be "
                                "turned into a threshold",
                                c.source));
    const double p = per_comparison_rate(far, samples);
    const auto& t = c.impostor_tail;
    if (p <= t.front().second) {
        const double slope = (std::log(t[1].second) - std::log(t[0].second)) / (t[1].first - t[0].first);
        return static_cast<float>(t.front().first + (std::log(p) - std::log(t.front().second)) / slope);
    }
    if (p >= t.back().second) return t.back().first;
    const auto hi = std::upper_bound(t.begin(), t.end(), p,
                                     [](double r, const std::pair<float, double>& q) { return r < q.second; });
    const auto lo = hi - 1;
    const double f = (std::log(p) - std::log(lo->second)) / (std::log(hi->second) - std::log(lo->second));
    return static_cast<float>(lo->first + f * (hi->first - lo->first));
}

nlohmann::json calibration_to_json(const Calibration& c) {
    nlohmann::json tail = nlohmann::json::array();
    for (const auto& [d, r] : c.impostor_tail) tail.push_back({d, r});
    return {{"embedder", c.embedder},       {"embedder_sha256", c.embedder_sha256},
            {"threshold", c.threshold},     {"margin", c.margin},
            {"far_target", c.far_target},   {"reference_persons", c.reference_persons},
            {"aggregation", c.aggregation}, {"impostor_tail", std::move(tail)}};
}

Calibration calibration_from_json(const nlohmann::json& j) {
    Calibration c;
    try {
        c.threshold = j.at("threshold").get<float>();
        c.margin = j.at("margin").get<float>();
        c.far_target = j.value("far_target", 0.0);
        c.reference_persons = j.value("reference_persons", std::size_t{100});
        c.aggregation = j.value("aggregation", std::string("mean_descriptor"));
        c.embedder = j.value("embedder", std::string());
        c.embedder_sha256 = j.value("embedder_sha256", std::string());
        if (j.contains("impostor_tail"))
            for (const auto& p : j.at("impostor_tail"))
                c.impostor_tail.emplace_back(p.at(0).get<float>(), p.at(1).get<double>());
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::invalid_input, fmt::format("calibration is malformed: {}", e.what()));
    }
    if (!(c.threshold > 0 && c.threshold < 2) || !(c.margin >= 0 && c.margin < 1))
        throw Error(ErrorKind::invalid_input,
                    fmt::format("calibration has threshold {} and margin {}: expected 0 < threshold < 2 and "
                                "0 <= margin < 1",
                                c.threshold, c.margin));
    for (std::size_t i = 1; i < c.impostor_tail.size(); ++i)
        if (!(c.impostor_tail[i].first > c.impostor_tail[i - 1].first &&
              c.impostor_tail[i].second > c.impostor_tail[i - 1].second && c.impostor_tail[i - 1].second > 0))
            throw Error(ErrorKind::invalid_input, "calibration's impostor_tail is not ascending");
    return c;
}

}  // namespace faceq
