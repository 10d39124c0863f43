// age_gender.cpp — training the age/gender head (see
// faceq/training/age_gender.hpp): kernel ridge regression with an RBF kernel
// over standardised attribute features.
//
// Training solves (K + lambda I) a = y with a Cholesky factorisation (dlib's
// matrix code over LAPACK) for every (gamma, lambda) candidate; with ~5,000
// training faces that is a few seconds per candidate on two cores. Age and
// gender pick their own candidate by validation error; the final head is
// refitted on train + val with those settings and reported on test.
#include "faceq/training/age_gender.hpp"

#include <dlib/matrix.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "faceq/base/error.hpp"
#include "faceq/base/time.hpp"
#include "pipeline/attributes_impl.hpp"

namespace faceq {

using json = nlohmann::json;

namespace {

using detail::sigmoid;

// Platt scaling: A, B minimising the log loss of sigmoid(A*score + B) against
// labels (+1/-1), with Platt's smoothed targets; a few Newton steps.
std::pair<double, double> fit_platt(const std::vector<double>& score, const std::vector<double>& label) {
    double pos = 0, neg = 0;
    for (double l : label) (l > 0 ? pos : neg) += 1;
    const double hi = (pos + 1) / (pos + 2), lo = 1 / (neg + 2);
    double a = 1, b = 0;
    for (int iter = 0; iter < 50; ++iter) {
        double g1 = 0, g2 = 0, h11 = 1e-9, h22 = 1e-9, h12 = 0;
        for (std::size_t i = 0; i < score.size(); ++i) {
            const double t = label[i] > 0 ? hi : lo;
            const double p = sigmoid(a * score[i] + b);
            const double d = p - t, w = std::max(p * (1 - p), 1e-12);
            g1 += d * score[i];
            g2 += d;
            h11 += w * score[i] * score[i];
            h22 += w;
            h12 += w * score[i];
        }
        const double det = h11 * h22 - h12 * h12;
        if (std::abs(det) < 1e-18) break;
        const double da = (h22 * g1 - h12 * g2) / det, db = (h11 * g2 - h12 * g1) / det;
        a -= da;
        b -= db;
        if (std::abs(da) + std::abs(db) < 1e-9) break;
    }
    return {a, b};
}

using Mat = dlib::matrix<double>;
using Vec = dlib::matrix<double, 0, 1>;

struct SplitData {
    std::vector<std::size_t> index;  // rows of the prepared set
    Mat x;                           // standardised features
    Vec age, male;                   // male: +1 / -1
    std::vector<double> cnn;         // CNN P(male), -1 when unknown
};

SplitData gather(const PreparedDataset& d, const std::vector<std::size_t>& index) {
    SplitData s;
    s.index = index;
    s.x.set_size(static_cast<long>(index.size()), static_cast<long>(d.dim));
    s.age.set_size(static_cast<long>(index.size()));
    s.male.set_size(static_cast<long>(index.size()));
    for (std::size_t r = 0; r < index.size(); ++r) {
        const float* row = d.row(index[r]);
        for (std::size_t c = 0; c < d.dim; ++c) s.x(static_cast<long>(r), static_cast<long>(c)) = row[c];
        const auto& sm = d.samples[index[r]];
        s.age(static_cast<long>(r)) = sm.age;
        s.male(static_cast<long>(r)) = sm.gender == "male" ? 1.0 : -1.0;
        s.cnn.push_back(sm.cnn_p_male);
    }
    return s;
}

void standardise(Mat& x, const std::vector<double>& mean, const std::vector<double>& scale) {
    for (long r = 0; r < x.nr(); ++r)
        for (long c = 0; c < x.nc(); ++c)
            x(r, c) = (x(r, c) - mean[static_cast<std::size_t>(c)]) / scale[static_cast<std::size_t>(c)];
}

Vec row_sq(const Mat& x) {
    Vec out(x.nr());
    for (long r = 0; r < x.nr(); ++r) out(r) = dlib::dot(dlib::rowm(x, r), dlib::rowm(x, r));
    return out;
}

// exp(-gamma |a_i - b_j|^2) from the cross products.
Mat rbf(const Mat& cross, const Vec& sq_a, const Vec& sq_b, double gamma) {
    Mat k(cross.nr(), cross.nc());
    for (long i = 0; i < cross.nr(); ++i)
        for (long j = 0; j < cross.nc(); ++j)
            k(i, j) = std::exp(-gamma * std::max(0.0, sq_a(i) + sq_b(j) - 2.0 * cross(i, j)));
    return k;
}

double mae(const Vec& p, const Vec& y) { return p.size() ? dlib::mean(dlib::abs(p - y)) : NAN; }

double accuracy(const std::vector<double>& score, const Vec& male, const std::vector<std::size_t>& which) {
    if (which.empty()) return NAN;
    double ok = 0;
    for (std::size_t i : which) ok += (score[i] >= 0) == (male(static_cast<long>(i)) > 0);
    return ok / static_cast<double>(which.size());
}

std::vector<std::size_t> all_of(std::size_t n) {
    std::vector<std::size_t> v(n);
    std::iota(v.begin(), v.end(), 0);
    return v;
}

// Per-band and summary metrics for one split: age MAE, gender accuracy of
// the chosen source and of both candidates.
json evaluate(const std::string& prefix, const Vec& age_pred, const std::vector<double>& head_score, const SplitData& s,
              bool use_head, bool have_cnn, json& report) {
    json m;
    const std::size_t n = s.index.size();
    std::vector<double> cnn_score(n);
    for (std::size_t i = 0; i < n; ++i) cnn_score[i] = s.cnn[i] - 0.5;
    const auto& chosen = use_head ? head_score : cnn_score;
    std::vector<std::size_t> adults, children;
    std::map<std::size_t, std::vector<std::size_t>> bands;
    for (std::size_t i = 0; i < n; ++i) {
        const double a = s.age(static_cast<long>(i));
        (a >= 13 ? adults : children).push_back(i);
        bands[age_band_index(a)].push_back(i);
    }
    m[prefix + "_n"] = n;
    m[prefix + "_age_mae"] = mae(age_pred, s.age);
    m[prefix + "_gender_acc"] = accuracy(chosen, s.male, all_of(n));
    m[prefix + "_gender_acc_13plus"] = accuracy(chosen, s.male, adults);
    m[prefix + "_gender_acc_under13"] = accuracy(chosen, s.male, children);
    m[prefix + "_head_gender_acc"] = accuracy(head_score, s.male, all_of(n));
    m[prefix + "_head_gender_acc_13plus"] = accuracy(head_score, s.male, adults);
    if (have_cnn) {
        m[prefix + "_cnn_gender_acc"] = accuracy(cnn_score, s.male, all_of(n));
        m[prefix + "_cnn_gender_acc_13plus"] = accuracy(cnn_score, s.male, adults);
    }
    json rows = json::array();
    for (const auto& [band, idx] : bands) {
        double err = 0;
        for (std::size_t i : idx) err += std::abs(age_pred(static_cast<long>(i)) - s.age(static_cast<long>(i)));
        const std::string b = age_bands()[band];
        const double band_mae = err / static_cast<double>(idx.size());
        const double band_acc = accuracy(chosen, s.male, idx);
        m[prefix + "_age_mae_" + b] = band_mae;
        m[prefix + "_gender_acc_" + b] = band_acc;
        json row{{"band", b},
                 {"n", idx.size()},
                 {"age_mae", band_mae},
                 {"gender_acc", band_acc},
                 {"head_gender_acc", accuracy(head_score, s.male, idx)}};
        if (have_cnn) row["cnn_gender_acc"] = accuracy(cnn_score, s.male, idx);
        rows.push_back(row);
    }
    report[prefix] = rows;
    // NaN (an empty subset) is not JSON: leave the key out.
    for (auto it = m.begin(); it != m.end();) {
        if (it->is_number_float() && !std::isfinite(it->get<double>()))
            it = m.erase(it);
        else
            ++it;
    }
    return m;
}

void check_cancel(const AgeGenderTrainOptions& o) {
    if (o.cancelled && o.cancelled()) throw Error(ErrorKind::interrupted, "training interrupted");
}

}  // namespace

AgeGenderTrainResult train_age_gender(const PreparedDataset& data, const AgeGenderTrainOptions& options) {
    const json& pipeline = data.manifest.value("pipeline", json::object());
    if (data.manifest.value("dataset", "") != "utkface" || pipeline.value("kind", "") != "utkface")
        throw Error(
            ErrorKind::invalid_input,
            fmt::format("'{}' is not a prepared age/gender dataset (run: faceq prepare utkface)", data.dir.string()));
    if (options.gammas.empty() || options.lambdas.empty())
        throw Error(ErrorKind::usage, "give at least one gamma and one lambda");
    for (double v : options.gammas)
        if (!(v > 0)) throw Error(ErrorKind::usage, fmt::format("gamma {} must be > 0", v));
    for (double v : options.lambdas)
        if (!(v > 0)) throw Error(ErrorKind::usage, fmt::format("lambda {} must be > 0", v));

    std::vector<std::size_t> train, val, test;
    for (std::size_t i = 0; i < data.samples.size(); ++i) {
        const auto& s = data.samples[i];
        if (s.gender != "male" && s.gender != "female") continue;
        (s.split == "train" ? train : s.split == "val" ? val : test).push_back(i);
    }
    if (train.size() < 8 || val.size() < 2)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("prepared dataset '{}' has {} training and {} validation samples; training needs at "
                                "least 8 and 2 (download more images, or lower --val)",
                                data.dir.string(), train.size(), val.size()));
    if (options.max_train > 0 && train.size() > options.max_train) {
        std::sort(train.begin(), train.end(), [&](std::size_t a, std::size_t b) {
            return seeded_hash(data.samples[a].file, options.seed) < seeded_hash(data.samples[b].file, options.seed);
        });
        train.resize(options.max_train);
        std::sort(train.begin(), train.end());
    }
    const auto log = [&](const std::string& line) {
        if (options.log) options.log(line);
    };
    const std::size_t dim = data.dim;
    const double dimd = static_cast<double>(dim);

    SplitData tr = gather(data, train), va = gather(data, val), te = gather(data, test);
    bool have_cnn = true;
    for (const auto* s : {&va, &te})
        for (double p : s->cnn) have_cnn = have_cnn && p >= 0;

    // Standardise with the training split's statistics.
    auto stats = [&](const Mat& x, std::vector<double>& mean, std::vector<double>& scale) {
        mean.assign(dim, 0);
        scale.assign(dim, 0);
        for (long r = 0; r < x.nr(); ++r)
            for (std::size_t c = 0; c < dim; ++c) mean[c] += x(r, static_cast<long>(c));
        for (auto& v : mean) v /= static_cast<double>(x.nr());
        for (long r = 0; r < x.nr(); ++r)
            for (std::size_t c = 0; c < dim; ++c) {
                const double z = x(r, static_cast<long>(c)) - mean[c];
                scale[c] += z * z;
            }
        for (auto& v : scale) v = std::sqrt(v / static_cast<double>(x.nr())) + 1e-6;
    };
    std::vector<double> mean, scale;
    stats(tr.x, mean, scale);
    Mat xtr = tr.x, xva = va.x;
    standardise(xtr, mean, scale);
    standardise(xva, mean, scale);

    // ---- model selection on val: one step per (gamma, lambda)
    const Vec sq_tr = row_sq(xtr), sq_va = row_sq(xva);
    const Mat g_tr = xtr * dlib::trans(xtr);
    const Mat g_va = xva * dlib::trans(xtr);
    const double age_mean = dlib::mean(tr.age);
    struct Best {
        double value;
        double gamma, lambda;
    };
    Best best_age{INFINITY, 0, 0}, best_gender{-1, 0, 0};
    std::int64_t step = 0;
    json candidates = json::array();
    for (double gs : options.gammas) {
        check_cancel(options);
        const double gamma = gs / (2.0 * dimd);
        const Mat k = rbf(g_tr, sq_tr, sq_tr, gamma);
        const Mat kv = rbf(g_va, sq_va, sq_tr, gamma);
        for (double lambda : options.lambdas) {
            check_cancel(options);
            const dlib::cholesky_decomposition<Mat> chol(k + lambda * dlib::identity_matrix<double>(k.nr()));
            const Vec a_age = chol.solve(tr.age - age_mean);
            const Vec a_male = chol.solve(tr.male);
            const Vec fit = k * a_age + age_mean;
            const Vec pv = kv * a_age + age_mean;
            const Vec sv = kv * a_male;
            std::vector<double> sv_score(sv.begin(), sv.end());
            const double train_mse = dlib::mean(dlib::squared(fit - tr.age));
            const double val_mae = mae(pv, va.age);
            const double val_acc = accuracy(sv_score, va.male, all_of(val.size()));
            json m{{"gamma", gs},
                   {"lambda", lambda},
                   {"train_loss", train_mse},
                   {"train_age_mae", mae(fit, tr.age)},
                   {"val_age_mae", val_mae},
                   {"val_gender_acc", val_acc}};
            candidates.push_back(m);
            if (options.on_step) options.on_step(m, step);
            log(fmt::format("candidate {}: gamma {} lambda {}: val age MAE {:.3f}, val gender {:.2f}%", step, gs,
                            lambda, val_mae, 100 * val_acc));
            ++step;
            if (val_mae < best_age.value) best_age = {val_mae, gs, lambda};
            if (val_acc > best_gender.value) best_gender = {val_acc, gs, lambda};
        }
    }

    // Gender source: the head, unless the CC0 CNN is better on val.
    double val_cnn_acc = -1;
    if (have_cnn) {
        std::vector<double> cnn_score;
        for (double p : va.cnn) cnn_score.push_back(p - 0.5);
        val_cnn_acc = accuracy(cnn_score, va.male, all_of(val.size()));
    }
    const bool use_head = !have_cnn || best_gender.value >= val_cnn_acc;
    log(fmt::format("chosen: age gamma {} lambda {} (val MAE {:.3f}); gender from the {} (val {:.2f}%{})",
                    best_age.gamma, best_age.lambda, best_age.value, use_head ? "head" : "CC0 CNN",
                    100 * (use_head ? best_gender.value : val_cnn_acc),
                    have_cnn ? fmt::format(" vs {} {:.2f}%", use_head ? "CNN" : "head",
                                           100 * (use_head ? val_cnn_acc : best_gender.value))
                             : ""));

    // Platt scaling of the gender score, fitted on val with the train-only fit.
    double platt_a = 1, platt_b = 0;
    if (use_head) {
        const double gamma = best_gender.gamma / (2.0 * dimd);
        const Mat k = rbf(g_tr, sq_tr, sq_tr, gamma);
        const dlib::cholesky_decomposition<Mat> chol(k + best_gender.lambda * dlib::identity_matrix<double>(k.nr()));
        const Vec sv = rbf(g_va, sq_va, sq_tr, gamma) * chol.solve(tr.male);
        std::tie(platt_a, platt_b) =
            fit_platt(std::vector<double>(sv.begin(), sv.end()), std::vector<double>(va.male.begin(), va.male.end()));
    }
    check_cancel(options);

    // ---- refit on train + val with the chosen settings
    std::vector<std::size_t> fit_index = train;
    fit_index.insert(fit_index.end(), val.begin(), val.end());
    SplitData all = gather(data, fit_index);
    stats(all.x, mean, scale);
    Mat xall = all.x, xte = te.x;
    standardise(xall, mean, scale);
    standardise(xte, mean, scale);
    const Vec sq_all = row_sq(xall);
    const Mat g_all = xall * dlib::trans(xall);
    const double all_age_mean = dlib::mean(all.age);
    const double age_gamma = best_age.gamma / (2.0 * dimd), gender_gamma = best_gender.gamma / (2.0 * dimd);
    Vec a_age, a_male;
    {
        const Mat k = rbf(g_all, sq_all, sq_all, age_gamma);
        a_age = dlib::cholesky_decomposition<Mat>(k + best_age.lambda * dlib::identity_matrix<double>(k.nr()))
                    .solve(all.age - all_age_mean);
    }
    check_cancel(options);
    if (use_head) {
        const Mat k = rbf(g_all, sq_all, sq_all, gender_gamma);
        a_male = dlib::cholesky_decomposition<Mat>(k + best_gender.lambda * dlib::identity_matrix<double>(k.nr()))
                     .solve(all.male);
    }

    auto impl = std::make_shared<AgeGenderHead::Impl>();
    impl->embedder = pipeline.value("embedder", "");
    impl->embedder_sha256 = pipeline.value("embedder_sha256", "");
    impl->dim = dim;
    impl->support = fit_index.size();
    impl->mean.assign(mean.begin(), mean.end());
    impl->scale.assign(scale.begin(), scale.end());
    impl->sv.resize(impl->support * dim);
    for (long r = 0; r < xall.nr(); ++r)
        for (std::size_t c = 0; c < dim; ++c)
            impl->sv[static_cast<std::size_t>(r) * dim + c] = static_cast<float>(xall(r, static_cast<long>(c)));
    detail::compute_support_norms(*impl);
    impl->age_alpha.assign(a_age.begin(), a_age.end());
    impl->age_gamma = age_gamma;
    impl->age_offset = all_age_mean;
    impl->gender_head = use_head;
    if (use_head) {
        impl->gender_alpha.assign(a_male.begin(), a_male.end());
        impl->gender_gamma = gender_gamma;
        impl->gender_offset = 0;
        impl->platt_a = platt_a;
        impl->platt_b = platt_b;
    }
    json gender_meta{{"source", use_head ? "head" : "cnn"}};
    if (use_head)
        gender_meta.update({{"gamma", best_gender.gamma},
                            {"gamma_abs", gender_gamma},
                            {"lambda", best_gender.lambda},
                            {"offset", 0.0},
                            {"platt_a", platt_a},
                            {"platt_b", platt_b}});
    impl->meta = json{{"format", age_gender_head_format},
                      {"schema", age_gender_head_schema},
                      {"kind", "rbf_kernel_ridge"},
                      {"embedder", impl->embedder},
                      {"embedder_sha256", impl->embedder_sha256},
                      {"feature_dim", dim},
                      {"features", "descriptor (128) + last residual block (pooled), averaged with the mirror image"},
                      {"support_vectors", impl->support},
                      {"age",
                       {{"gamma", best_age.gamma},
                        {"gamma_abs", age_gamma},
                        {"lambda", best_age.lambda},
                        {"offset", all_age_mean},
                        {"clamp", {0, 120}}}},
                      {"gender", gender_meta},
                      {"trained_on", data.dir.string()},
                      {"trained_at", utc_now_iso8601()}};

    AgeGenderTrainResult result;
    result.head = AgeGenderHeadAccess::make(impl);

    // ---- report: val (train-only selection figures) and test (refitted head)
    json metrics{{"val_age_mae", best_age.value},
                 {"val_gender_acc", use_head ? best_gender.value : val_cnn_acc},
                 {"val_head_gender_acc", best_gender.value}};
    if (have_cnn) metrics["val_cnn_gender_acc"] = val_cnn_acc;
    json report = json::object();
    if (!test.empty()) {
        const Mat g_te = xte * dlib::trans(xall);
        const Vec sq_te = row_sq(xte);
        const Vec age_pred = dlib::clamp(rbf(g_te, sq_te, sq_all, age_gamma) * a_age + all_age_mean, 0.0, 120.0);
        std::vector<double> head_score(test.size(), 0.0);
        if (use_head) {
            const Vec s = rbf(g_te, sq_te, sq_all, gender_gamma) * a_male;
            head_score.assign(s.begin(), s.end());
        } else {
            // Still report what the head would have done (fit for the record).
            const Mat k = rbf(g_all, sq_all, sq_all, gender_gamma);
            const Vec a =
                dlib::cholesky_decomposition<Mat>(k + best_gender.lambda * dlib::identity_matrix<double>(k.nr()))
                    .solve(all.male);
            const Vec s = rbf(g_te, sq_te, sq_all, gender_gamma) * a;
            head_score.assign(s.begin(), s.end());
        }
        metrics.update(evaluate("test", age_pred, head_score, te, use_head, have_cnn, report));
    }
    result.metrics = metrics;
    result.report = report;
    result.params = json{{"method", "rbf_kernel_ridge"},
                         {"gammas", options.gammas},
                         {"lambdas", options.lambdas},
                         {"age_gamma", best_age.gamma},
                         {"age_lambda", best_age.lambda},
                         {"gender_gamma", best_gender.gamma},
                         {"gender_lambda", best_gender.lambda},
                         {"gender_source", use_head ? "head" : "cnn"},
                         {"train_samples", train.size()},
                         {"val_samples", val.size()},
                         {"test_samples", test.size()},
                         {"refit_on", "train+val"},
                         {"feature_dim", dim},
                         {"max_train", options.max_train},
                         {"seed", options.seed}};
    result.params["candidates"] = candidates.size();
    return result;
}

}  // namespace faceq
