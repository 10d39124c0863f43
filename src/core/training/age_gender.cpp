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

void log_line(const AgeGenderTrainOptions& o, const std::string& line) {
    if (o.log) o.log(line);
}

void check_training_input(const PreparedDataset& data, const AgeGenderTrainOptions& options) {
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
}

struct Splits {
    std::vector<std::size_t> train, val, test;  // rows of the prepared set with a known gender
};

// The prepared set's splits; `max_train` keeps a seeded subset of train.
Splits split_samples(const PreparedDataset& data, const AgeGenderTrainOptions& options) {
    Splits sp;
    for (std::size_t i = 0; i < data.samples.size(); ++i) {
        const auto& s = data.samples[i];
        if (s.gender != "male" && s.gender != "female") continue;
        (s.split == "train" ? sp.train : s.split == "val" ? sp.val : sp.test).push_back(i);
    }
    if (sp.train.size() < 8 || sp.val.size() < 2)
        throw Error(ErrorKind::invalid_input,
                    fmt::format("prepared dataset '{}' has {} training and {} validation samples; training needs at "
                                "least 8 and 2 (download more images, or lower --val)",
                                data.dir.string(), sp.train.size(), sp.val.size()));
    if (options.max_train > 0 && sp.train.size() > options.max_train) {
        std::sort(sp.train.begin(), sp.train.end(), [&](std::size_t a, std::size_t b) {
            return seeded_hash(data.samples[a].file, options.seed) < seeded_hash(data.samples[b].file, options.seed);
        });
        sp.train.resize(options.max_train);
        std::sort(sp.train.begin(), sp.train.end());
    }
    return sp;
}

// Per-feature mean and standard deviation (+1e-6) of the rows of `x`.
void feature_stats(const Mat& x, std::vector<double>& mean, std::vector<double>& scale) {
    const auto dim = static_cast<std::size_t>(x.nc());
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
}

// The kernel ridge solution a of (K + lambda I) a = y.
Vec ridge_solve(const Mat& k, double lambda, const Vec& y) {
    return dlib::cholesky_decomposition<Mat>(k + lambda * dlib::identity_matrix<double>(k.nr())).solve(y);
}

struct Best {
    double value;
    double gamma, lambda;
};

// What model selection on val chose.
struct Selection {
    Best age{INFINITY, 0, 0}, gender{-1, 0, 0};  // lowest val age MAE, highest val gender accuracy
    json candidates = json::array();
    bool have_cnn = true;     // every val/test sample has the CNN's P(male)
    double val_cnn_acc = -1;  // the CNN's val gender accuracy, when have_cnn
    bool use_head = true;     // gender from the head (else from the CC0 CNN)
    double platt_a = 1, platt_b = 0;
};

// One candidate step per (gamma, lambda), fitted on train (standardised with
// train's statistics) and scored on val; then the gender source and its Platt
// scaling, fitted on val.
Selection select_settings(const SplitData& tr, const SplitData& va, const SplitData& te,
                          const AgeGenderTrainOptions& options) {
    Selection sel;
    for (const auto* s : {&va, &te})
        for (double p : s->cnn) sel.have_cnn = sel.have_cnn && p >= 0;
    const double dimd = static_cast<double>(tr.x.nc());
    std::vector<double> mean, scale;
    feature_stats(tr.x, mean, scale);
    Mat xtr = tr.x, xva = va.x;
    standardise(xtr, mean, scale);
    standardise(xva, mean, scale);

    const Vec sq_tr = row_sq(xtr), sq_va = row_sq(xva);
    const Mat g_tr = xtr * dlib::trans(xtr);
    const Mat g_va = xva * dlib::trans(xtr);
    const double age_mean = dlib::mean(tr.age);
    const auto val_all = all_of(va.index.size());
    std::int64_t step = 0;
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
            const double val_acc = accuracy(sv_score, va.male, val_all);
            json m{{"gamma", gs},
                   {"lambda", lambda},
                   {"train_loss", train_mse},
                   {"train_age_mae", mae(fit, tr.age)},
                   {"val_age_mae", val_mae},
                   {"val_gender_acc", val_acc}};
            sel.candidates.push_back(m);
            if (options.on_step) options.on_step(m, step);
            log_line(options, fmt::format("candidate {}: gamma {} lambda {}: val age MAE {:.3f}, val gender {:.2f}%",
                                          step, gs, lambda, val_mae, 100 * val_acc));
            ++step;
            if (val_mae < sel.age.value) sel.age = {val_mae, gs, lambda};
            if (val_acc > sel.gender.value) sel.gender = {val_acc, gs, lambda};
        }
    }

    // Gender source: the head, unless the CC0 CNN is better on val.
    if (sel.have_cnn) {
        std::vector<double> cnn_score;
        for (double p : va.cnn) cnn_score.push_back(p - 0.5);
        sel.val_cnn_acc = accuracy(cnn_score, va.male, val_all);
    }
    sel.use_head = !sel.have_cnn || sel.gender.value >= sel.val_cnn_acc;
    log_line(options, fmt::format("chosen: age gamma {} lambda {} (val MAE {:.3f}); gender from the {} (val {:.2f}%{})",
                                  sel.age.gamma, sel.age.lambda, sel.age.value, sel.use_head ? "head" : "CC0 CNN",
                                  100 * (sel.use_head ? sel.gender.value : sel.val_cnn_acc),
                                  sel.have_cnn ? fmt::format(" vs {} {:.2f}%", sel.use_head ? "CNN" : "head",
                                                             100 * (sel.use_head ? sel.val_cnn_acc : sel.gender.value))
                                               : ""));

    // Platt scaling of the gender score, fitted on val with the train-only fit.
    if (sel.use_head) {
        const double gamma = sel.gender.gamma / (2.0 * dimd);
        const Vec sv =
            rbf(g_va, sq_va, sq_tr, gamma) * ridge_solve(rbf(g_tr, sq_tr, sq_tr, gamma), sel.gender.lambda, tr.male);
        std::tie(sel.platt_a, sel.platt_b) =
            fit_platt(std::vector<double>(sv.begin(), sv.end()), std::vector<double>(va.male.begin(), va.male.end()));
    }
    return sel;
}

// The head refitted on train + val with the chosen settings.
struct Refit {
    std::vector<double> mean, scale;  // standardisation of train + val
    Mat x;                            // standardised train + val rows: the support vectors
    Vec sq;
    Mat gram;
    double age_mean = 0;
    double age_gamma = 0, gender_gamma = 0;  // absolute (gamma / (2 dim))
    Vec a_age, a_male;                       // a_male is empty when gender comes from the CNN
};

Refit refit(const SplitData& all, const Selection& sel, const AgeGenderTrainOptions& options) {
    Refit f;
    const double dimd = static_cast<double>(all.x.nc());
    feature_stats(all.x, f.mean, f.scale);
    f.x = all.x;
    standardise(f.x, f.mean, f.scale);
    f.sq = row_sq(f.x);
    f.gram = f.x * dlib::trans(f.x);
    f.age_mean = dlib::mean(all.age);
    f.age_gamma = sel.age.gamma / (2.0 * dimd);
    f.gender_gamma = sel.gender.gamma / (2.0 * dimd);
    f.a_age = ridge_solve(rbf(f.gram, f.sq, f.sq, f.age_gamma), sel.age.lambda, all.age - f.age_mean);
    check_cancel(options);
    if (sel.use_head) f.a_male = ridge_solve(rbf(f.gram, f.sq, f.sq, f.gender_gamma), sel.gender.lambda, all.male);
    return f;
}

std::shared_ptr<AgeGenderHead::Impl> make_head(const Refit& f, const Selection& sel, const PreparedDataset& data) {
    const json& pipeline = data.manifest.value("pipeline", json::object());
    const std::size_t dim = data.dim;
    auto impl = std::make_shared<AgeGenderHead::Impl>();
    impl->embedder = pipeline.value("embedder", "");
    impl->embedder_sha256 = pipeline.value("embedder_sha256", "");
    impl->dim = dim;
    impl->support = static_cast<std::size_t>(f.x.nr());
    impl->mean.assign(f.mean.begin(), f.mean.end());
    impl->scale.assign(f.scale.begin(), f.scale.end());
    impl->sv.resize(impl->support * dim);
    for (long r = 0; r < f.x.nr(); ++r)
        for (std::size_t c = 0; c < dim; ++c)
            impl->sv[static_cast<std::size_t>(r) * dim + c] = static_cast<float>(f.x(r, static_cast<long>(c)));
    detail::compute_support_norms(*impl);
    impl->age_alpha.assign(f.a_age.begin(), f.a_age.end());
    impl->age_gamma = f.age_gamma;
    impl->age_offset = f.age_mean;
    impl->gender_head = sel.use_head;
    json gender_meta{{"source", sel.use_head ? "head" : "cnn"}};
    if (sel.use_head) {
        impl->gender_alpha.assign(f.a_male.begin(), f.a_male.end());
        impl->gender_gamma = f.gender_gamma;
        impl->gender_offset = 0;
        impl->platt_a = sel.platt_a;
        impl->platt_b = sel.platt_b;
        gender_meta.update({{"gamma", sel.gender.gamma},
                            {"gamma_abs", f.gender_gamma},
                            {"lambda", sel.gender.lambda},
                            {"offset", 0.0},
                            {"platt_a", sel.platt_a},
                            {"platt_b", sel.platt_b}});
    }
    impl->meta = json{{"format", age_gender_head_format},
                      {"schema", age_gender_head_schema},
                      {"kind", "rbf_kernel_ridge"},
                      {"embedder", impl->embedder},
                      {"embedder_sha256", impl->embedder_sha256},
                      {"feature_dim", dim},
                      {"features", "descriptor (128) + last residual block (pooled), averaged with the mirror image"},
                      {"support_vectors", impl->support},
                      {"age",
                       {{"gamma", sel.age.gamma},
                        {"gamma_abs", f.age_gamma},
                        {"lambda", sel.age.lambda},
                        {"offset", f.age_mean},
                        {"clamp", {0, 120}}}},
                      {"gender", gender_meta},
                      {"trained_on", data.dir.string()},
                      {"trained_at", utc_now_iso8601()}};
    return impl;
}

// The refitted head on test: metrics (test_*) and the per-band `report`.
json test_metrics(const Refit& f, const Selection& sel, const SplitData& te, const SplitData& all, json& report) {
    Mat xte = te.x;
    standardise(xte, f.mean, f.scale);
    const Mat g_te = xte * dlib::trans(f.x);
    const Vec sq_te = row_sq(xte);
    const Vec age_pred = dlib::clamp(rbf(g_te, sq_te, f.sq, f.age_gamma) * f.a_age + f.age_mean, 0.0, 120.0);
    // Without the head's gender, still report what it would have done (fit for the record).
    const Vec a_male =
        sel.use_head ? f.a_male : ridge_solve(rbf(f.gram, f.sq, f.sq, f.gender_gamma), sel.gender.lambda, all.male);
    const Vec s = rbf(g_te, sq_te, f.sq, f.gender_gamma) * a_male;
    const std::vector<double> head_score(s.begin(), s.end());
    return evaluate("test", age_pred, head_score, te, sel.use_head, sel.have_cnn, report);
}

}  // namespace

AgeGenderTrainResult train_age_gender(const PreparedDataset& data, const AgeGenderTrainOptions& options) {
    check_training_input(data, options);
    const Splits sp = split_samples(data, options);
    const SplitData tr = gather(data, sp.train), va = gather(data, sp.val), te = gather(data, sp.test);
    const Selection sel = select_settings(tr, va, te, options);
    check_cancel(options);

    std::vector<std::size_t> fit_index = sp.train;
    fit_index.insert(fit_index.end(), sp.val.begin(), sp.val.end());
    const SplitData all = gather(data, fit_index);
    const Refit fit = refit(all, sel, options);

    AgeGenderTrainResult result;
    result.head = AgeGenderHeadAccess::make(make_head(fit, sel, data));
    // Report: val (train-only selection figures) and test (refitted head).
    json metrics{{"val_age_mae", sel.age.value},
                 {"val_gender_acc", sel.use_head ? sel.gender.value : sel.val_cnn_acc},
                 {"val_head_gender_acc", sel.gender.value}};
    if (sel.have_cnn) metrics["val_cnn_gender_acc"] = sel.val_cnn_acc;
    json report = json::object();
    if (!sp.test.empty()) metrics.update(test_metrics(fit, sel, te, all, report));
    result.metrics = metrics;
    result.report = report;
    result.params = json{{"method", "rbf_kernel_ridge"},
                         {"gammas", options.gammas},
                         {"lambdas", options.lambdas},
                         {"age_gamma", sel.age.gamma},
                         {"age_lambda", sel.age.lambda},
                         {"gender_gamma", sel.gender.gamma},
                         {"gender_lambda", sel.gender.lambda},
                         {"gender_source", sel.use_head ? "head" : "cnn"},
                         {"train_samples", sp.train.size()},
                         {"val_samples", sp.val.size()},
                         {"test_samples", sp.test.size()},
                         {"refit_on", "train+val"},
                         {"feature_dim", data.dim},
                         {"max_train", options.max_train},
                         {"seed", options.seed}};
    result.params["candidates"] = sel.candidates.size();
    return result;
}

}  // namespace faceq
