// identify_bench.cpp — see faceq/session/identify_bench.hpp.
#include "faceq/session/identify_bench.hpp"

#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <map>
#include <random>
#include <system_error>
#include <utility>
#include <vector>

#include "base/fsutil.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/session/analysis_session.hpp"
#include "faceq/session/enroller.hpp"

namespace faceq {
namespace {

namespace fs = std::filesystem;

// A home under the system's temporary directory, removed with everything in it.
class TempHome {
public:
    TempHome() {
        std::error_code ec;
        std::string pattern = (fs::temp_directory_path(ec) / "faceq-bench-XXXXXX").string();
        if (ec || ::mkdtemp(pattern.data()) == nullptr)
            throw Error(ErrorKind::io, "bench identify: cannot create a temporary home");
        home_.root = pattern;
    }
    ~TempHome() {
        std::error_code ec;
        fs::remove_all(home_.root, ec);
    }
    TempHome(const TempHome&) = delete;
    TempHome& operator=(const TempHome&) = delete;
    const Home& home() const { return home_; }

private:
    Home home_;
};

// The user's models (and registry, for a deployed calibration) seen from the
// temporary home, without copying them.
void link_into(const fs::path& target, const fs::path& link) {
    std::error_code ec;
    if (!fs::exists(target, ec)) return;
    fs::create_directory_symlink(fs::absolute(target, ec), link, ec);
    if (ec)
        throw Error(ErrorKind::io, fmt::format("bench identify: cannot link '{}' into a temporary home: {}",
                                               target.string(), ec.message()));
}

struct Probe {
    std::string path;
    std::size_t person = 0;  // index into the plan
};

// What the largest face of one analysed probe says.
struct Answer {
    bool face = false;
    std::string decision;   // known | unknown | ambiguous
    std::string identity;   // the name, or "unknown"
    std::string person_id;  // the person it is attributed to; empty when none
};

Answer read_answer(const nlohmann::json& record) {
    Answer a;
    const auto faces = record.find("faces");
    if (faces == record.end() || !faces->is_array() || faces->empty()) return a;
    const nlohmann::json* best = nullptr;
    long best_area = -1;
    for (const auto& f : *faces) {
        const nlohmann::json box = f.value("bbox", nlohmann::json::object());
        const long area = box.value("width", 0L) * box.value("height", 0L);
        if (area > best_area) best = &f, best_area = area;
    }
    a.face = true;
    a.decision = best->value("decision", "");
    a.identity = best->value("identity", "");
    const auto id = best->find("person_id");
    if (id != best->end() && id->is_string()) a.person_id = id->get<std::string>();
    return a;
}

}  // namespace

IdentifyBenchResult bench_identify(const Home& home, const Manifest& manifest, const fs::path& dir,
                                   const IdentifyBenchOptions& o, const LogFn& log, const ProgressFn& progress) {
    if (o.enroll < 1) throw Error(ErrorKind::usage, "bench identify: --enroll must be at least 1");
    if (!(o.strangers > 0 && o.strangers < 1))
        throw Error(ErrorKind::usage, "bench identify: --strangers must be a share between 0 and 1 (e.g. 0.2)");
    std::vector<PersonPhotos> plan = plan_person_folders(dir);
    // Only photos count: an item that is bad before decoding (an empty or
    // unreadable folder, an unreadable file) is neither enrolled nor probed —
    // it would count as a missed known person — and a folder left with none is
    // no identity.
    for (auto& p : plan) {
        for (const auto& item : p.photos)
            if (item.error && log) log("warning: " + *item.error);
        p.photos.erase(std::remove_if(p.photos.begin(), p.photos.end(),
                                      [](const InputItem& item) { return item.error.has_value(); }),
                       p.photos.end());
    }
    plan.erase(std::remove_if(plan.begin(), plan.end(), [](const PersonPhotos& p) { return p.photos.empty(); }),
               plan.end());
    if (o.identities > 0 && plan.size() > o.identities) plan.resize(o.identities);
    if (plan.size() < 2)
        throw Error(ErrorKind::usage,
                    fmt::format("bench identify: '{}' has {} identity folder(s) with photos; at least 2 are needed",
                                dir.string(), plan.size()));

    // Strangers: the identities whose seeded hash comes first, so the choice is
    // the same on every machine and independent of the folder order.
    std::vector<std::size_t> order(plan.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::vector<std::string> keys(plan.size());
    for (std::size_t i = 0; i < plan.size(); ++i) {
        const std::string text = fmt::format("{}:{}", o.seed, plan[i].name);
        keys[i] = sha256_hex(text.data(), text.size());
    }
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
    const auto n_strangers = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::lround(o.strangers * static_cast<double>(plan.size()))), 1, plan.size() - 1);
    std::vector<bool> stranger(plan.size(), false);
    for (std::size_t k = 0; k < n_strangers; ++k) stranger[order[k]] = true;

    IdentifyBenchResult r;
    std::vector<PersonPhotos> to_enroll;
    std::vector<Probe> probes;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        const auto& photos = plan[i].photos;  // sorted by path (expand_inputs)
        std::size_t first_probe = 0;
        if (stranger[i]) {
            ++r.stranger_identities;
        } else {
            ++r.known_identities;
            first_probe = std::min<std::size_t>(static_cast<std::size_t>(o.enroll), photos.size());
            PersonPhotos p{plan[i].name, plan[i].name_error, {photos.begin(), photos.begin() + first_probe}};
            r.enrolled_photos += p.photos.size();
            to_enroll.push_back(std::move(p));
        }
        for (std::size_t k = first_probe; k < photos.size(); ++k) probes.push_back({photos[k].path, i});
    }
    if (o.shuffle) {
        // Fisher-Yates over mt19937's standard sequence: the same order everywhere.
        std::mt19937 rng(o.seed);
        for (std::size_t i = probes.size(); i > 1; --i) std::swap(probes[i - 1], probes[rng() % i]);
    }

    const TempHome temp;
    link_into(home.models_dir(), temp.home().models_dir());
    link_into(home.registry_dir(), temp.home().registry_dir());

    SessionOptions so;
    so.analyze = o.analyze;
    so.analyze.gender = false;
    so.analyze.features = false;
    so.calibration = o.calibration;
    so.deployed_head = false;
    so.create_gallery = true;
    {
        const AnalysisSession enroll_session(temp.home(), manifest, so, log);
        EnrollPersonsOptions eo;
        eo.pick_largest = true;
        eo.jobs = o.jobs;
        r.enroll_failures = enroll_persons(
            enroll_session, to_enroll, eo, [](const nlohmann::json&) {},
            [&log](const std::string& line) {
                if (log) log("warning: " + line);
            });
        if (progress) progress({"bench identify: enrolled", r.enrolled_photos, r.enrolled_photos});
    }

    so.store = true;
    so.skip_unchanged = false;
    AnalysisSession session(temp.home(), manifest, so, log);
    const ImageLimits limits{};
    std::map<std::size_t, std::map<std::string, std::size_t>> sightings;   // stranger -> person id -> photos
    std::map<std::string, std::map<std::size_t, std::size_t>> attributed;  // unknown id -> identity -> photos
    struct Outcome {
        ImageAnalysis analysis;
        nlohmann::json record;
        bool failed = false;
    };
    std::size_t done = 0;
    std::exception_ptr failure;
    ordered_parallel<Outcome>(
        probes.size(), o.jobs,
        [&] {
            return [&, analyzer = Analyzer(session.prototype())](std::size_t i) mutable {
                Outcome out;
                try {
                    out.analysis = session.analyze_file(analyzer, probes[i].path, limits);
                    out.record = session.record(out.analysis, false);
                    out.analysis.image.bgr.release();
                } catch (const std::exception&) {
                    out.failed = true;
                }
                return out;
            };
        },
        [&](std::size_t i, Outcome&& out) {
            // Nothing may leave this function (ordered_parallel's workers
            // would be left running): the first error stops the counting and
            // is thrown once the workers are done.
            if (failure) return;
            const Probe& p = probes[i];
            Answer a;
            if (!out.failed) {
                try {
                    session.identify(out.analysis, out.record);
                    a = read_answer(out.record);
                } catch (...) {
                    failure = std::current_exception();
                    return;
                }
            }
            if (a.face && a.decision != "known" && !a.person_id.empty()) ++attributed[a.person_id][p.person];
            if (stranger[p.person]) {
                ++r.stranger_probes;
                if (!a.face) {
                    ++r.stranger_missed;
                } else {
                    if (a.decision == "known") ++r.strangers_named;
                    ++r.stranger_sightings;
                    ++sightings[p.person][a.decision == "known" || a.person_id.empty() ? "" : a.person_id];
                }
            } else {
                ++r.known_probes;
                if (!a.face)
                    ++r.known_missed;
                else if (a.decision == "known")
                    ++(a.identity == plan[p.person].name ? r.known_right : r.known_wrong);
                else if (a.decision == "ambiguous")
                    ++r.known_ambiguous;
                else
                    ++r.known_unknown;
            }
            if (progress) progress({"bench identify", ++done, probes.size()});
        });
    if (failure) std::rethrow_exception(failure);
    for (const auto& [person, ids] : sightings) {
        std::size_t most = 0;
        for (const auto& [id, n] : ids)
            if (!id.empty()) most = std::max(most, n);  // named or unattributed sightings carry no stranger id
        r.stranger_consistent += most;
    }
    // An unknown id's main identity: the one most of its probes are.
    std::map<std::string, std::size_t> main_identity;
    for (const auto& [id, identities] : attributed) {
        std::size_t most = 0, total = 0;
        for (const auto& [person, n] : identities) {
            total += n;
            if (n > most) most = n, main_identity[id] = person;
        }
        r.stranger_attributed += total;
        r.stranger_pure += most;
    }
    if (Gallery* g = session.gallery()) {
        r.unknown_persons = static_cast<std::size_t>(g->stats(0).persons_unknown);
        const IdentifyContext& context = session.identification().context;
        for (const auto& c : g->merge_candidates(context)) {
            ++r.candidates;
            const auto it = main_identity.find(c.stranger.public_id);
            if (it == main_identity.end()) continue;
            ++r.candidates_judged;
            if (c.known.name == plan[it->second].name) ++r.candidates_right;
        }
        // Last: cluster changes the gallery (what `faceq cluster` does, at its edge).
        const ClusterResult cr = g->cluster(context.embedder, stranger_limit(context.calibration));
        r.cluster_detections = static_cast<std::size_t>(cr.detections);
        r.cluster_reassigned = static_cast<std::size_t>(cr.reassigned);
    }
    return r;
}

}  // namespace faceq
