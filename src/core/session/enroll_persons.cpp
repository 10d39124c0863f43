// enroll_persons.cpp — `faceq enroll`'s batch: photos of many persons analysed
// in parallel, each person's samples added when its last photo is in (see
// faceq/session/enroller.hpp).
#include <fmt/format.h>

#include <cstdint>

#include "faceq/base/error.hpp"
#include "faceq/session/analysis_session.hpp"
#include "faceq/session/enroller.hpp"
#include "faceq/session/records.hpp"

namespace faceq {
namespace {

struct PhotoOutcome {
    std::optional<FaceSample> sample;
    std::string skipped;  // reason, when not analysed
    std::optional<Error> error;
};

// Collects one person's outcomes and writes its record when the person is done.
class PersonRecords {
public:
    PersonRecords(Enroller& enroller, const std::function<void(nlohmann::json)>& report,
                  const std::function<void(const std::string&)>& on_error)
        : enroller_(enroller), report_(report), on_error_(on_error) {}

    void add(const std::string& path, PhotoOutcome&& out) {
        if (out.error) {
            fail(out.error->what());
            failed_.push_back(error_record(path, out.error->kind(), out.error->what()));
        } else if (out.sample) {
            samples_.push_back(std::move(*out.sample));
        } else {
            skipped_.push_back({{"file", path}, {"reason", out.skipped}});
        }
    }

    void finish(const PersonPhotos& job) {
        nlohmann::json record{{"person", job.name}};
        if (!job.name_error.empty()) {
            fail(fmt::format("folder '{}': {}", job.name, job.name_error));
            record["error"] = error_json(ErrorKind::usage, job.name_error);
        } else if (job.photos.empty()) {
            const std::string message = fmt::format("no photos for '{}'", job.name);
            fail(message);
            record["error"] = error_json(ErrorKind::not_found, message);
        } else {
            record = enroller_.enroll_record(job.name, samples_, skipped_, failed_);
        }
        report_(std::move(record));
        samples_.clear();
        skipped_ = nlohmann::json::array();
        failed_ = nlohmann::json::array();
    }

    std::size_t failures() const { return failures_; }

private:
    void fail(const std::string& message) {
        ++failures_;
        on_error_(message);
    }

    Enroller& enroller_;
    const std::function<void(nlohmann::json)>& report_;
    const std::function<void(const std::string&)>& on_error_;
    std::vector<FaceSample> samples_;
    nlohmann::json skipped_ = nlohmann::json::array(), failed_ = nlohmann::json::array();
    std::size_t failures_ = 0;
};

// One photo: skipped when some person already has it, else analysed and its face made a sample.
PhotoOutcome enroll_photo(const AnalysisSession& session, Analyzer& analyzer, const Enroller& enroller,
                          const InputItem& item, const std::string& person, bool pick_largest) {
    static const ImageLimits limits;
    PhotoOutcome out;
    try {
        if (item.error) throw Error(ErrorKind::invalid_input, *item.error);
        auto image = load_image_file(item.path, limits);
        if (auto owner = enroller.already_enrolled(image.sha256, person)) {
            out.skipped = owner->reason();
            return out;
        }
        const auto a = session.analyze(analyzer, item.path, std::move(image), std::nullopt);
        out.sample = enroller.sample(enroller.choose_face(a.result, item.path, pick_largest), item.path, a.image);
    } catch (const Error& e) {
        out.error = e;
    } catch (const std::exception& e) {
        out.error = Error(ErrorKind::internal, fmt::format("cannot enroll '{}': {}", item.path, e.what()));
    }
    return out;
}

}  // namespace

std::size_t enroll_persons(const AnalysisSession& session, const std::vector<PersonPhotos>& persons,
                           const EnrollPersonsOptions& options, const std::function<void(nlohmann::json)>& report,
                           const std::function<void(const std::string&)>& on_error) {
    Gallery& gallery = *session.gallery();
    Enroller enroller(gallery, session.identification().context.embedder, {});
    PersonRecords records(enroller, report, on_error);

    // All photos in one list, person by person, so workers stay busy across persons.
    struct Photo {
        std::size_t person;
        const InputItem* item;
    };
    std::vector<Photo> photos;
    std::vector<std::size_t> last_photo(persons.size(), SIZE_MAX);
    for (std::size_t p = 0; p < persons.size(); ++p)
        for (const auto& item : persons[p].photos) {
            last_photo[p] = photos.size();
            photos.push_back({p, &item});
        }

    std::size_t next_person = 0;
    // Persons with no photos at all are reported in order too.
    auto flush_until = [&](std::size_t p) {
        for (; next_person < p; ++next_person)
            if (last_photo[next_person] == SIZE_MAX) records.finish(persons[next_person]);
    };
    ordered_parallel<PhotoOutcome>(
        photos.size(), options.jobs,
        [&] {
            return [&, analyzer = Analyzer(session.prototype())](std::size_t i) mutable {
                return enroll_photo(session, analyzer, enroller, *photos[i].item, persons[photos[i].person].name,
                                    options.pick_largest);
            };
        },
        [&](std::size_t i, PhotoOutcome&& out) {
            const std::size_t p = photos[i].person;
            flush_until(p);
            records.add(photos[i].item->path, std::move(out));
            if (i == last_photo[p]) {
                records.finish(persons[p]);
                next_person = p + 1;
            }
        });
    flush_until(persons.size());
    return records.failures();
}

}  // namespace faceq
