// cmd_enroll.cpp — `faceq enroll --name NAME IMAGE...` and `faceq enroll --dir
// DIR` (one folder per person, folder name = name): registers known persons
// from photos with one face each. One record per person on stdout:
//   {"person", "person_id", "created", "added", "skipped": [{file, reason}],
//    "failed": [{file, error: {kind, message}}]}
// Each person's samples are written in one transaction once all of its photos
// are analysed, so an interrupted run leaves whole persons, and running it
// again skips what is enrolled (photos already enrolled are not analysed).
// Exit 1 when a photo or a person failed (no face, several faces without
// --pick largest, unreadable, bad folder name).
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <thread>

#include "context.hpp"
#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/pipeline/analyzer.hpp"
#include "faceq/pipeline/image_io.hpp"
#include "faceq/session/analysis_session.hpp"
#include "faceq/session/enroller.hpp"
#include "faceq/session/records.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct EnrollCommand {
    std::optional<std::string> name;
    std::vector<std::string> images;
    std::string dir;
    std::string pick = "one";
    int jobs = 0;
    AnalyzeOptions options;
};

struct PhotoOutcome {
    std::optional<FaceSample> sample;
    std::string skipped;  // reason, when not analysed
    std::optional<Error> error;
};

std::vector<PersonPhotos> plan(const EnrollCommand& cmd) {
    if (!cmd.dir.empty()) return plan_person_folders(cmd.dir);
    PersonPhotos job;
    job.name = check_person_name(*cmd.name);  // a bad name is a usage error here
    job.photos = expand_inputs(cmd.images, false, nullptr);
    return {job};
}

int run_enroll(EnrollCommand& cmd, Context& ctx) {
    if (cmd.dir.empty() != cmd.name.has_value())
        throw Error(ErrorKind::usage, "give either --name NAME with photos, or --dir DIR (one folder per person)");
    if (cmd.name && cmd.images.empty()) throw Error(ErrorKind::usage, "--name needs at least one photo");
    if (!cmd.dir.empty() && !cmd.images.empty())
        throw Error(ErrorKind::usage, "--dir takes no photos: each subfolder of DIR is one person");
    const auto jobs_list = plan(cmd);

    SessionOptions options;
    options.analyze = cmd.options;
    options.analyze.gender = false;  // samples need descriptors only
    options.deployed_head = false;
    options.create_gallery = true;
    const AnalysisSession session(ctx.home, load_manifest(ctx.manifest_path()), options, log_to(ctx));
    Gallery& gallery = *session.gallery();
    Enroller enroller(gallery, session.identification().context.embedder, {});

    // All photos in one list, person by person, so workers stay busy across persons.
    struct Photo {
        std::size_t person;
        const InputItem* item;
    };
    std::vector<Photo> photos;
    std::vector<std::size_t> last_photo(jobs_list.size(), SIZE_MAX);
    for (std::size_t p = 0; p < jobs_list.size(); ++p)
        for (const auto& item : jobs_list[p].photos) {
            last_photo[p] = photos.size();
            photos.push_back({p, &item});
        }

    RecordWriter writer(std::cout, RecordFormat::jsonl);
    std::size_t failures = 0;
    std::vector<FaceSample> samples;
    nlohmann::json skipped = nlohmann::json::array(), failed = nlohmann::json::array();
    auto finish_person = [&](std::size_t p) {
        const auto& job = jobs_list[p];
        nlohmann::json record{{"person", job.name}};
        if (!job.name_error.empty()) {
            ++failures;
            ctx.error(fmt::format("folder '{}': {}", job.name, job.name_error));
            record["error"] = {{"kind", to_string(ErrorKind::usage)}, {"message", job.name_error}};
        } else if (job.photos.empty()) {
            ++failures;
            const std::string message = fmt::format("no photos for '{}'", job.name);
            ctx.error(message);
            record["error"] = {{"kind", to_string(ErrorKind::not_found)}, {"message", message}};
        } else {
            std::size_t added = 0;
            bool created = false;
            std::optional<PersonRef> person;
            if (!samples.empty()) {
                const auto result = enroller.enroll(job.name, samples);
                for (const auto& s : result.samples) {
                    if (s.added)
                        ++added;
                    else
                        skipped.push_back({{"file", s.source_path}, {"reason", s.reason}});
                }
                created = result.created;
                person = result.person;
            }
            if (!person) {
                if (auto existing = gallery.person(job.name)) person = existing->person;
            }
            record["person"] = person && person->name ? *person->name : check_person_name(job.name);
            record["person_id"] = person ? nlohmann::json(person->public_id) : nlohmann::json(nullptr);
            record["created"] = created;
            record["added"] = added;
            record["skipped"] = skipped;
            record["failed"] = failed;
        }
        writer.write("enrollment", std::move(record));
        samples.clear();
        skipped = nlohmann::json::array();
        failed = nlohmann::json::array();
    };

    const ImageLimits limits;
    std::size_t next_person = 0;
    // Persons with no photos at all are reported in order too.
    auto flush_until = [&](std::size_t p) {
        for (; next_person < p; ++next_person)
            if (last_photo[next_person] == SIZE_MAX) finish_person(next_person);
    };
    ordered_parallel<PhotoOutcome>(
        photos.size(), jobs_or_cores(cmd.jobs),
        [&] {
            return [&, analyzer = Analyzer(session.prototype())](std::size_t i) mutable {
                PhotoOutcome out;
                const auto& item = *photos[i].item;
                try {
                    if (item.error) throw Error(ErrorKind::invalid_input, *item.error);
                    auto image = load_image_file(item.path, limits);
                    if (auto owner = enroller.already_enrolled(image.sha256, jobs_list[photos[i].person].name)) {
                        out.skipped = owner->reason();
                        return out;
                    }
                    const auto a = session.analyze(analyzer, item.path, std::move(image), std::nullopt);
                    out.sample = enroller.sample(enroller.choose_face(a.result, item.path, cmd.pick == "largest"),
                                                 item.path, a.image);
                } catch (const Error& e) {
                    out.error = e;
                } catch (const std::exception& e) {
                    out.error = Error(ErrorKind::internal, fmt::format("cannot enroll '{}': {}", item.path, e.what()));
                }
                return out;
            };
        },
        [&](std::size_t i, PhotoOutcome&& out) {
            const std::size_t p = photos[i].person;
            flush_until(p);
            const auto& path = photos[i].item->path;
            if (out.error) {
                ++failures;
                ctx.error(out.error->what());
                failed.push_back({{"file", path},
                                  {"error", {{"kind", to_string(out.error->kind())}, {"message", out.error->what()}}}});
            } else if (out.sample) {
                samples.push_back(std::move(*out.sample));
            } else {
                skipped.push_back({{"file", path}, {"reason", out.skipped}});
            }
            if (i == last_photo[p]) {
                finish_person(p);
                next_person = p + 1;
            }
        });
    flush_until(jobs_list.size());
    return failures > 0 ? 1 : 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_enroll(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<EnrollCommand>();
    auto* sub = app.add_subcommand("enroll", "Register known persons from photos (one face per photo)");
    sub->add_option("images", cmd->images, "Photos of the person (files or folders)");
    sub->add_option("-n,--name", cmd->name, "The person's name (1-128 characters)");
    sub->add_option("--dir", cmd->dir, "Enroll one person per subfolder of DIR (folder name = name)");
    sub->add_option("--pick", cmd->pick, "Several faces in a photo: fail (one) or take the largest")
        ->check(CLI::IsMember({"one", "largest"}))
        ->capture_default_str();
    sub->add_option("-j,--jobs", cmd->jobs, "Worker threads (default: number of cores)")->check(CLI::Range(1, 256));
    sub->add_option("--detector", cmd->options.detector, "Face detector")
        ->check(CLI::IsMember({"hog", "cnn"}))
        ->capture_default_str();
    sub->add_option("--min-face", cmd->options.min_face, "Smallest face (px) to find")
        ->check(CLI::Range(8, 10000))
        ->capture_default_str();
    return {sub, [cmd, &ctx] { return run_enroll(*cmd, ctx); }};
}

}  // namespace faceq::cli
