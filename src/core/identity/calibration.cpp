#include "faceq/identity/calibration.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>

#include "faceq/base/error.hpp"

namespace faceq {
namespace {

// Measured on lfw-dev with faceapi_face_recognition_resnet on the default
// pipeline's descriptors (YuNet's 5 points, averaged with the mirror image;
// docs/identification.md): 0.45 is the threshold at which every lfw-dev
// figure is at least as good as the previous default's (0.47 before the
// mirror average): strangers named 0.04% / 0.25% / 0.51% / 0.56% in galleries
// of 10 / 100 / 1,000 persons x1 photo and 100 x3 (were 0.06 / 0.30 / 0.48 /
// 0.77%), known people named right 71% / 68% / 65% / 94% (were 70 / 65 / 59 /
// 94%). 0.46 names more (73% at 100 x1) but 0.73% of strangers at 1,000.
// calibrate() for 1% at 100 persons, one photo each, gives 0.466 / 0.083.
constexpr float default_threshold = 0.45f;
// Asking the runner-up to be 0.08 further away rejects the strangers that fall
// between two persons; at the same false-accept rate it names 80% of known
// people instead of 72% (100 persons) and 71% instead of 49% (1,000).
constexpr float default_margin = 0.08f;
// Strangers: how far a face may lie from a stranger's mean and still be that
// stranger (docs/identification.md, "Strangers": on celeba-dev, 5 draws,
// 0.53 keeps 92% of a recurring stranger's sightings on one id with 96.5% of
// an id's photos being one person; 0.55: 94% / 94%; 0.60: 96% / 74%).
constexpr float default_stranger_threshold = 0.53f;

// Distances under which a fraction 10^-6, 10^-5.9, ..., 10^-1 of the 12.3
// million impostor pairs of lfw-dev fall (what calibrate() computes from them).
constexpr float lfw_impostor_tail[] = {
    0.3684f, 0.3709f, 0.3768f, 0.3841f, 0.3886f, 0.3949f, 0.3983f, 0.4026f, 0.4078f, 0.4120f, 0.4172f, 0.4219f, 0.4266f,
    0.4316f, 0.4362f, 0.4402f, 0.4454f, 0.4498f, 0.4550f, 0.4607f, 0.4663f, 0.4721f, 0.4779f, 0.4844f, 0.4904f, 0.4968f,
    0.5034f, 0.5099f, 0.5168f, 0.5234f, 0.5303f, 0.5371f, 0.5440f, 0.5509f, 0.5581f, 0.5652f, 0.5724f, 0.5797f, 0.5870f,
    0.5945f, 0.6021f, 0.6098f, 0.6178f, 0.6259f, 0.6342f, 0.6429f, 0.6519f, 0.6613f, 0.6712f, 0.6816f, 0.6926f,
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

std::optional<Decision> parse_decision(const std::string& text) noexcept {
    for (const Decision d : {Decision::known, Decision::unknown, Decision::ambiguous})
        if (text == to_string(d)) return d;
    return std::nullopt;
}

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

float stranger_limit(const Calibration& c) { return std::max(c.stranger_threshold, c.threshold); }

float candidate_limit(const Calibration& c) { return 0.5f * (c.threshold + stranger_limit(c)); }

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
    c.stranger_threshold = default_stranger_threshold;
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
    c.stranger_threshold = default_stranger_threshold * c.threshold / default_threshold;
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

Calibration strictest_calibration(const std::vector<Calibration>& per_set) {
    if (per_set.empty()) throw Error(ErrorKind::usage, "no calibration to combine");
    const auto strictest = std::min_element(per_set.begin(), per_set.end(),
                                            [](const auto& a, const auto& b) { return a.threshold < b.threshold; });
    Calibration c = *strictest;
    if (per_set.size() == 1) return c;
    // The upper envelope of the tails: every point of every set, ascending in
    // distance, kept when its rate exceeds every rate kept before it.
    std::vector<std::pair<float, double>> points;
    for (const auto& s : per_set) points.insert(points.end(), s.impostor_tail.begin(), s.impostor_tail.end());
    std::sort(points.begin(), points.end());
    c.impostor_tail.clear();
    for (const auto& p : points) {
        if (!c.impostor_tail.empty() && p.second <= c.impostor_tail.back().second) continue;
        if (!c.impostor_tail.empty() && p.first == c.impostor_tail.back().first)
            c.impostor_tail.back().second = p.second;  // the same distance: the higher rate
        else
            c.impostor_tail.push_back(p);
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
    return {{"embedder", c.embedder},
            {"embedder_sha256", c.embedder_sha256},
            {"threshold", c.threshold},
            {"margin", c.margin},
            {"stranger_threshold", c.stranger_threshold},
            {"far_target", c.far_target},
            {"reference_persons", c.reference_persons},
            {"aggregation", c.aggregation},
            {"impostor_tail", std::move(tail)}};
}

Calibration calibration_from_json(const nlohmann::json& j) {
    Calibration c;
    try {
        c.threshold = j.at("threshold").get<float>();
        c.margin = j.at("margin").get<float>();
        // Calibrations written before issue 11 have none: scaled like the margin.
        c.stranger_threshold =
            j.value("stranger_threshold", default_stranger_threshold * c.threshold / default_threshold);
        c.far_target = j.value("far_target", 0.0);
        // A count: get<std::size_t>() of a float out of range (1e300) is
        // undefined behaviour, so only a non-negative integer is taken (signed
        // in a document built in C++, unsigned in one parsed from text).
        if (const auto it = j.find("reference_persons"); it != j.end()) {
            if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<std::int64_t>() < 0))
                throw Error(
                    ErrorKind::invalid_input,
                    fmt::format("calibration's reference_persons is {}, not a non-negative integer", it->dump()));
            c.reference_persons = it->get<std::size_t>();
        }
        c.aggregation = j.value("aggregation", std::string("mean_descriptor"));
        c.embedder = j.value("embedder", std::string());
        c.embedder_sha256 = j.value("embedder_sha256", std::string());
        if (j.contains("impostor_tail"))
            for (const auto& p : j.at("impostor_tail"))
                c.impostor_tail.emplace_back(p.at(0).get<float>(), p.at(1).get<double>());
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::invalid_input, fmt::format("calibration is malformed: {}", e.what()));
    }
    if (!(c.threshold > 0 && c.threshold < 2) || !(c.margin >= 0 && c.margin < 1) ||
        !(c.stranger_threshold >= 0 && c.stranger_threshold < 2))
        throw Error(ErrorKind::invalid_input,
                    fmt::format("calibration has threshold {}, margin {} and stranger_threshold {}: expected "
                                "0 < threshold < 2, 0 <= margin < 1 and 0 <= stranger_threshold < 2",
                                c.threshold, c.margin, c.stranger_threshold));
    for (std::size_t i = 1; i < c.impostor_tail.size(); ++i)
        if (!(c.impostor_tail[i].first > c.impostor_tail[i - 1].first &&
              c.impostor_tail[i].second > c.impostor_tail[i - 1].second && c.impostor_tail[i - 1].second > 0))
            throw Error(ErrorKind::invalid_input, "calibration's impostor_tail is not ascending");
    return c;
}

}  // namespace faceq
