#include "faceq/identity/calibration.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "faceq/base/error.hpp"

namespace faceq {
namespace {

// Measured on lfw-dev with faceapi_face_recognition_resnet on the default
// pipeline's chips (YuNet's 5 points; docs/identification.md): 0.47 is the
// highest threshold (0.01 grid) at which under 1% of strangers are named in a
// gallery of 100 persons enrolled with one to three photos each (0.30% with one,
// 0.77% with three; 0.48 gives 1.1% with three), while 65% / 94% of known
// people are named right. calibrate() for 1% at 100 persons, one photo each,
// gives 0.478 / 0.081.
constexpr float default_threshold = 0.47f;
// Asking the runner-up to be 0.08 further away rejects the strangers that fall
// between two persons; at the same false-accept rate it names 80% of known
// people instead of 72% (100 persons) and 71% instead of 49% (1,000).
constexpr float default_margin = 0.08f;

// Distances under which a fraction 10^-6, 10^-5.9, ..., 10^-1 of the 12.3
// million impostor pairs of lfw-dev fall (what calibrate() computes from them).
constexpr float lfw_impostor_tail[] = {
    0.3920f, 0.3957f, 0.3987f, 0.4008f, 0.4034f, 0.4076f, 0.4124f, 0.4180f, 0.4215f, 0.4243f, 0.4282f, 0.4325f, 0.4369f,
    0.4427f, 0.4475f, 0.4530f, 0.4575f, 0.4622f, 0.4674f, 0.4724f, 0.4782f, 0.4839f, 0.4896f, 0.4958f, 0.5026f, 0.5091f,
    0.5156f, 0.5223f, 0.5290f, 0.5356f, 0.5425f, 0.5493f, 0.5564f, 0.5634f, 0.5704f, 0.5775f, 0.5847f, 0.5920f, 0.5994f,
    0.6068f, 0.6143f, 0.6220f, 0.6299f, 0.6379f, 0.6462f, 0.6549f, 0.6638f, 0.6732f, 0.6829f, 0.6933f, 0.7042f,
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
