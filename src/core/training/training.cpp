// training.cpp — recognition calibration and verification statistics (see
// faceq/training.hpp).
#include "faceq/training/training.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "faceq/identity/calibration.hpp"

namespace faceq {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

float distance(const float* a, const float* b) {
    float s = 0;
    for (int k = 0; k < 128; ++k) {
        const float d = a[k] - b[k];
        s += d * d;
    }
    return std::sqrt(s);
}

struct Pairs {
    std::vector<float> genuine, impostor;
};

// All genuine pairs of the split; impostor pairs all, or a seeded subsample
// (each pair kept with probability max / total, decided by a hash of the
// two rows so the choice does not depend on thread timing or order).
Pairs pairs_of(const PreparedDataset& d, const std::string& split, const RecognitionTrainOptions& o) {
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < d.samples.size(); ++i)
        if (d.samples[i].split == split) rows.push_back(i);
    Pairs p;
    std::size_t genuine_total = 0;
    std::map<std::string, std::size_t> per_person;
    for (std::size_t i : rows) per_person[d.samples[i].person]++;
    for (const auto& [person, n] : per_person) genuine_total += n * (n - 1) / 2;
    const double all_pairs =
        static_cast<double>(rows.size()) * static_cast<double>(rows.size() - (rows.empty() ? 0 : 1)) / 2.0;
    const double impostor_total = all_pairs - static_cast<double>(genuine_total);
    const double keep = impostor_total > static_cast<double>(o.max_impostor_pairs)
                            ? static_cast<double>(o.max_impostor_pairs) / impostor_total
                            : 1.0;
    const auto keep_below = static_cast<std::uint64_t>(keep * 18446744073709551615.0);
    for (std::size_t a = 0; a < rows.size(); ++a) {
        if (a % 256 == 0 && o.cancelled && o.cancelled()) throw Error(ErrorKind::interrupted, "training interrupted");
        const auto& sa = d.samples[rows[a]];
        for (std::size_t b = a + 1; b < rows.size(); ++b) {
            const auto& sb = d.samples[rows[b]];
            if (sa.person == sb.person) {
                p.genuine.push_back(distance(d.row(rows[a]), d.row(rows[b])));
            } else if (keep >= 1.0 || seeded_hash(fmt::format("{}:{}", rows[a], rows[b]), o.seed) <= keep_below) {
                p.impostor.push_back(distance(d.row(rows[a]), d.row(rows[b])));
            }
        }
    }
    return p;
}

json stats_metrics(const std::string& prefix, const VerificationStats& s) {
    return json{{prefix + "_eer", s.eer},
                {prefix + "_eer_threshold", s.eer_threshold},
                {prefix + "_tar_at_far", s.tar_at_far},
                {prefix + "_threshold_at_far", s.threshold_at_far},
                {prefix + "_auc", s.auc},
                {prefix + "_genuine_pairs", s.genuine},
                {prefix + "_impostor_pairs", s.impostor}};
}

json roc_json(const VerificationStats& s) {
    json a = json::array();
    for (const auto& p : s.roc) a.push_back({p[0], p[1], p[2]});
    return a;
}

}  // namespace

VerificationStats verification_stats(std::vector<float> genuine, std::vector<float> impostor, double far) {
    if (genuine.empty() || impostor.empty())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("verification needs genuine and impostor pairs ({} and {} given)", genuine.size(),
                                impostor.size()));
    std::sort(genuine.begin(), genuine.end());
    std::sort(impostor.begin(), impostor.end());
    VerificationStats s;
    s.genuine = genuine.size();
    s.impostor = impostor.size();
    s.far = far;
    const double ng = static_cast<double>(genuine.size()), ni = static_cast<double>(impostor.size());
    // Accept when distance < t: TAR(t) = genuine below t, FAR(t) = impostors below t.
    auto tar_at = [&](double t) {
        return static_cast<double>(std::lower_bound(genuine.begin(), genuine.end(), static_cast<float>(t)) -
                                   genuine.begin()) /
               ng;
    };
    auto far_at = [&](double t) {
        return static_cast<double>(std::lower_bound(impostor.begin(), impostor.end(), static_cast<float>(t)) -
                                   impostor.begin()) /
               ni;
    };
    // TAR at FAR: the largest threshold whose FAR does not exceed `far`.
    const auto k = static_cast<std::size_t>(std::floor(far * ni));
    s.threshold_at_far = k < impostor.size() ? impostor[k] : impostor.back() + 1e-6;
    s.tar_at_far = tar_at(s.threshold_at_far);
    // EER: where FRR = 1 - TAR meets FAR, by bisection over the threshold.
    double lo = std::min(genuine.front(), impostor.front()), hi = std::max(genuine.back(), impostor.back()) + 1e-6;
    for (int i = 0; i < 60; ++i) {
        const double mid = 0.5 * (lo + hi);
        if (1.0 - tar_at(mid) > far_at(mid))
            lo = mid;
        else
            hi = mid;
    }
    s.eer_threshold = 0.5 * (lo + hi);
    s.eer = 0.5 * ((1.0 - tar_at(s.eer_threshold)) + far_at(s.eer_threshold));
    // AUC: P(impostor distance > genuine distance), by merging the sorted lists.
    double below = 0;
    std::size_t j = 0;
    for (float g : genuine) {
        while (j < impostor.size() && impostor[j] <= g) ++j;
        below += static_cast<double>(impostor.size() - j);
    }
    s.auc = below / (ng * ni);
    // ~50 ROC points over the range where either rate moves.
    const double t0 = std::min(genuine.front(), impostor.front());
    const double t_end = std::max(genuine.back(), impostor[impostor.size() / 2]);
    for (int i = 0; i <= 50; ++i) {
        const double t = t0 + (t_end - t0) * i / 50.0;
        s.roc.push_back({far_at(t), tar_at(t), t});
    }
    return s;
}

namespace {

// A prepared set's name in reports: its folder's name.
std::string set_name(const PreparedDataset& data) {
    const fs::path dir = data.dir.filename().empty() ? data.dir.parent_path() : data.dir;
    return dir.filename().string();
}

double fraction_below(const std::vector<float>& v, float t) {
    return static_cast<double>(std::count_if(v.begin(), v.end(), [t](float x) { return x < t; })) /
           static_cast<double>(v.size());
}

// One set's pairs, its own calibration for the target, and its statistics.
struct SetCalibration {
    std::string name;
    Pairs train, test;
    Calibration own;
    json metrics;  // train_/test_ statistics, as one set's run reports them
    json roc;
};

SetCalibration calibrate_set(const PreparedDataset& data, const RecognitionTrainOptions& options) {
    SetCalibration s;
    s.name = set_name(data);
    if (data.manifest.value("dataset", "") != "identities" || data.dim != 128)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("'{}' is not a prepared identities set (run: faceq prepare identities DIR)",
                                data.dir.string()));
    s.train = pairs_of(data, "train", options);
    if (s.train.genuine.empty() || s.train.impostor.empty())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("prepared identities '{}' have {} genuine and {} impostor pairs among the train "
                                "people: calibration needs both (at least two people with two photos each)",
                                data.dir.string(), s.train.genuine.size(), s.train.impostor.size()));
    s.test = pairs_of(data, "test", options);
    try {
        s.own = calibrate(s.train.genuine, s.train.impostor, options.far_target, options.reference_persons);
    } catch (const Error& e) {
        throw Error(e.kind(), fmt::format("'{}': {}", data.dir.string(), e.what()));
    }
    const VerificationStats st = verification_stats(s.train.genuine, s.train.impostor, options.report_far);
    s.metrics = stats_metrics("train", st);
    s.roc["train"] = roc_json(st);
    if (!s.test.genuine.empty() && !s.test.impostor.empty()) {
        const VerificationStats ss = verification_stats(s.test.genuine, s.test.impostor, options.report_far);
        s.metrics.update(stats_metrics("test", ss));
        s.roc["test"] = roc_json(ss);
    }
    s.metrics["threshold_at_far"] = s.own.threshold;
    return s;
}

// How the chosen threshold does on a set: on its train people (the expected
// share of strangers named in a gallery of reference_persons, from the set's
// own impostor tail) and on its test people, whom nothing was chosen on.
void check_threshold(SetCalibration& s, float threshold, const RecognitionTrainOptions& options) {
    s.metrics["far_at_threshold"] = expected_far(s.own, threshold, options.reference_persons);
    if (s.test.genuine.empty() || s.test.impostor.empty()) return;
    const double pair_far = fraction_below(s.test.impostor, threshold);
    s.metrics["test_tar_at_threshold"] = fraction_below(s.test.genuine, threshold);
    s.metrics["test_pair_far_at_threshold"] = pair_far;
    s.metrics["test_far_at_threshold"] =
        -std::expm1(static_cast<double>(options.reference_persons) * std::log1p(-std::min(pair_far, 1.0 - 1e-12)));
}

// Over several sets, each headline metric is the worst set's.
void worst_of(json& out, const std::vector<SetCalibration>& sets) {
    const std::vector<std::pair<std::string, bool>> keys{{"train_eer", true},
                                                         {"test_eer", true},
                                                         {"test_tar_at_far", false},
                                                         {"test_tar_at_threshold", false},
                                                         {"test_pair_far_at_threshold", true},
                                                         {"test_far_at_threshold", true},
                                                         {"far_at_threshold", true}};
    for (const auto& [key, higher_is_worse] : keys) {
        std::optional<double> worst;
        for (const auto& s : sets) {
            if (!s.metrics.contains(key)) continue;
            const double v = s.metrics[key].get<double>();
            if (!worst || (higher_is_worse ? v > *worst : v < *worst)) worst = v;
        }
        if (worst) out[key] = *worst;
    }
}

}  // namespace

void check_distinct_sets(const std::vector<const PreparedDataset*>& sets) {
    std::set<std::string> names;
    for (const PreparedDataset* data : sets)
        if (!names.insert(set_name(*data)).second)
            throw Error(ErrorKind::usage,
                        fmt::format("two prepared sets are named '{}': give each set once", set_name(*data)));
}

RecognitionTrainResult train_recognition(const PreparedDataset& data, const RecognitionTrainOptions& options) {
    return train_recognition(std::vector<const PreparedDataset*>{&data}, options);
}

RecognitionTrainResult train_recognition(const std::vector<const PreparedDataset*>& sets,
                                         const RecognitionTrainOptions& options) {
    if (sets.empty()) throw Error(ErrorKind::usage, "no prepared identities to calibrate on");
    check_distinct_sets(sets);
    const json pipeline = sets.front()->manifest.value("pipeline", json::object());
    std::vector<SetCalibration> per_set;
    std::vector<Calibration> calibrations;
    for (const PreparedDataset* data : sets) {
        const json p = data->manifest.value("pipeline", json::object());
        if (p.value("embedder", "") != pipeline.value("embedder", ""))
            throw Error(ErrorKind::invalid_input,
                        fmt::format("'{}' was prepared with embedder {}, '{}' with {}: prepare them with one",
                                    sets.front()->dir.string(), pipeline.value("embedder", ""), data->dir.string(),
                                    p.value("embedder", "")));
        per_set.push_back(calibrate_set(*data, options));
        calibrations.push_back(per_set.back().own);
    }
    Calibration cal = strictest_calibration(calibrations);
    cal.embedder = pipeline.value("embedder", "");
    cal.embedder_sha256 = pipeline.value("embedder_sha256", "");
    for (auto& s : per_set) check_threshold(s, cal.threshold, options);

    RecognitionTrainResult r;
    json figures = json::array();
    if (per_set.size() == 1) {
        r.metrics = per_set.front().metrics;
        r.metrics.erase("threshold_at_far");
        r.roc = per_set.front().roc;
    } else {
        r.metrics = json::object();
        worst_of(r.metrics, per_set);
        for (const auto& s : per_set) {
            for (const auto& [key, value] : s.metrics.items()) r.metrics[s.name + "." + key] = value;
            r.roc[s.name] = s.roc;
        }
    }
    for (std::size_t i = 0; i < per_set.size(); ++i) {
        json f = per_set[i].metrics;
        f["name"] = per_set[i].name;
        f["dir"] = sets[i]->dir.string();
        figures.push_back(std::move(f));
    }
    r.metrics["threshold"] = cal.threshold;
    r.metrics["margin"] = cal.margin;
    r.metrics["far_target"] = options.far_target;

    r.calibration = calibration_to_json(cal);
    r.calibration["embedder"] = cal.embedder;
    r.calibration["embedder_sha256"] = cal.embedder_sha256;
    r.calibration["metrics"] = r.metrics;
    r.calibration["report_far"] = options.report_far;
    r.calibration["sets"] = figures;
    r.calibration["trained_on"] = sets.front()->dir.string();
    for (std::size_t i = 1; i < sets.size(); ++i)
        r.calibration["trained_on"] = r.calibration["trained_on"].get<std::string>() + ", " + sets[i]->dir.string();
    r.calibration["trained_at"] = utc_now_iso8601();
    r.params = json{{"far_target", options.far_target},
                    {"reference_persons", options.reference_persons},
                    {"report_far", options.report_far},
                    {"max_impostor_pairs", options.max_impostor_pairs},
                    {"seed", options.seed},
                    {"aggregation", cal.aggregation}};
    return r;
}

}  // namespace faceq
