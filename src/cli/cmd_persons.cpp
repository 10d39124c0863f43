// cmd_persons.cpp — `faceq persons list|show|rename|merge|delete`: gallery
// care. A person is named by its public id (person_... / unknown_...) or its
// name (ignoring case). `merge FROM INTO` moves FROM's samples and detections
// to INTO and deletes FROM — e.g. when a stranger turns out to be Alice:
// `faceq persons merge unknown_1703123456_7890 Alice`. `rename` gives a
// stranger a name (it becomes known, keeping its id). `delete` removes a
// person and its samples; its detections stay, without a person.
// `candidates` lists the strangers that are probably a known person (their
// mean descriptor within the calibration's candidate_limit() of that
// person's: calibration.hpp), nearest first, one "candidate" JSON line each with the merge
// command to run; nothing is merged without being asked.
// `faceq persons faces PERSON [--offset N] [--limit N]` lists the person's
// faces, newest first, one "face" JSON line each (those rejected from it
// too, "rejected": true), then one "faces" line with the total.
// `faceq persons reject PERSON DETECTION_ID` says "not this person": the
// detection leaves the person and is never matched to it again; `--undo`
// puts it back (Gallery::reject). The detection ids are those of `faces` and
// of `analyze --store` records ("detection_id").
// `faceq persons list [--kind K] [--text T] [--order name|detections|last_seen]
// [--offset N] [--limit N]` prints one "person" line each, in pages read from
// Gallery::list_persons (every person when there is no --limit).
// Each other command prints the affected person as one JSON line.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <limits>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/identity/gallery_json.hpp"
#include "faceq/models/models.hpp"
#include "faceq/models/resolve.hpp"
#include "faceq/session/identification.hpp"
#include "faceq/session/records.hpp"
#include "gallery_support.hpp"

namespace faceq::cli {
namespace {

struct PersonsCommand {
    CLI::App* list = nullptr;
    CLI::App* show = nullptr;
    CLI::App* rename = nullptr;
    CLI::App* merge = nullptr;
    CLI::App* remove = nullptr;
    CLI::App* candidates = nullptr;
    CLI::App* faces = nullptr;
    CLI::App* reject = nullptr;
    CalibrationChoice calibration;
    std::int64_t offset = 0, limit = 50, detection = 0;
    std::int64_t list_limit = 0;  // 0: every person
    bool undo = false;
    std::string kind = "all", order = "name", text;
    std::string who, new_name, into;
};

void print(const nlohmann::json& j) { print_record("person", j); }

std::unique_ptr<Gallery> require_gallery(const Context& ctx) {
    auto g = open_gallery(ctx.home, false);
    if (!g)
        throw Error(ErrorKind::not_found, fmt::format("no gallery '{}' (enroll someone first)",
                                                      Gallery::describe_location(ctx.home.gallery_location())));
    return g;
}

int run_persons(const PersonsCommand& cmd, Context& ctx) {
    if (cmd.list->parsed()) {
        auto g = open_gallery(ctx.home, false);
        if (!g) return 0;
        // Gallery::list_persons pages in SQL (at most 500 a page): read page
        // after page until the limit, or every person without one.
        PersonQuery q{cmd.kind, cmd.text, cmd.order, cmd.offset, 500};
        std::int64_t left = cmd.list_limit > 0 ? cmd.list_limit : std::numeric_limits<std::int64_t>::max();
        while (left > 0) {
            q.limit = std::min<std::int64_t>(left, 500);
            const auto page = g->list_persons(q);
            for (const auto& p : page.persons) print(person_json(p));
            left -= static_cast<std::int64_t>(page.persons.size());
            q.offset += static_cast<std::int64_t>(page.persons.size());
            if (static_cast<std::int64_t>(page.persons.size()) < q.limit) break;
        }
        return 0;
    }
    if (cmd.candidates->parsed()) {
        // The default pipeline's strangers (its embedder and alignment), as `cluster` reads them.
        const auto manifest = load_manifest(ctx.manifest_path());
        const auto id = open_identification(
            ctx.home, embedder_identity(require_installed(ctx.home.models_dir(), manifest, role::embedder)),
            cmd.calibration, false, log_to(ctx));
        if (!id.gallery) return 0;
        for (const auto& c : id.gallery->merge_candidates(id.context)) print_record("candidate", candidate_json(c));
        return 0;
    }
    auto g = require_gallery(ctx);
    if (cmd.show->parsed()) {
        const auto p = g->person(cmd.who);
        if (!p) throw Error(ErrorKind::not_found, fmt::format("no person '{}' in the gallery", cmd.who));
        print(person_json(*p));
    } else if (cmd.rename->parsed()) {
        print(person_json(g->rename(cmd.who, cmd.new_name)));
    } else if (cmd.merge->parsed()) {
        print(person_json(g->merge(cmd.who, cmd.into)));
    } else if (cmd.faces->parsed()) {
        const auto page = g->person_faces(cmd.who, cmd.offset, cmd.limit);
        const auto person = g->person(cmd.who);
        for (const auto& f : page.faces) print_record("face", face_json(f, person->person.public_id));
        print_record("faces", {{"person_id", person->person.public_id},
                               {"total", page.total},
                               {"offset", cmd.offset},
                               {"limit", cmd.limit},
                               {"listed", page.faces.size()}});
    } else if (cmd.reject->parsed()) {
        auto j = person_json(cmd.undo ? g->unreject(cmd.who, cmd.detection) : g->reject(cmd.who, cmd.detection));
        j[cmd.undo ? "unrejected" : "rejected"] = cmd.detection;
        print(j);
    } else if (cmd.remove->parsed()) {
        auto j = person_json(g->remove(cmd.who));
        j["deleted"] = true;
        print(j);
    }
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_persons(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<PersonsCommand>();
    auto* sub = app.add_subcommand("persons", "List, rename, merge and delete gallery persons; merge candidates");
    sub->require_subcommand(1);
    cmd->list = sub->add_subcommand("list", "Every person, one JSON line each");
    cmd->list->add_option("--kind", cmd->kind, "Only known or unknown persons")
        ->check(CLI::IsMember({"all", "known", "unknown"}))
        ->capture_default_str();
    cmd->list->add_option("--text", cmd->text, "Only persons whose name or id contains TEXT (ignoring case)");
    cmd->list
        ->add_option("--order", cmd->order,
                     "name: known persons by name, then strangers by id; detections: most first; last_seen: "
                     "newest first")
        ->check(CLI::IsMember({"name", "detections", "last_seen"}))
        ->capture_default_str();
    cmd->list->add_option("--offset", cmd->offset, "Skip the first N persons of that order")
        ->check(CLI::NonNegativeNumber);
    cmd->list->add_option("--limit", cmd->list_limit, "List at most N persons (default: all)")
        ->check(CLI::PositiveNumber);
    cmd->show = sub->add_subcommand("show", "One person");
    cmd->show->add_option("person", cmd->who, "Person id or name")->required();
    cmd->rename = sub->add_subcommand("rename", "Rename a person (a stranger becomes known)");
    cmd->rename->add_option("person", cmd->who, "Person id or name")->required();
    cmd->rename->add_option("name", cmd->new_name, "The new name")->required();
    cmd->merge = sub->add_subcommand("merge", "Move FROM's samples and detections to INTO, then delete FROM");
    cmd->merge->add_option("from", cmd->who, "Person id or name to merge away")->required();
    cmd->merge->add_option("into", cmd->into, "Person id or name that stays")->required();
    cmd->remove = sub->add_subcommand("delete", "Delete a person and its samples (detections stay, unattributed)");
    cmd->remove->add_option("person", cmd->who, "Person id or name")->required();
    cmd->candidates = sub->add_subcommand(
        "candidates", "Strangers that are probably a known person (merge candidates), nearest first");
    add_calibration_flags(cmd->candidates, cmd->calibration);
    cmd->faces = sub->add_subcommand("faces", "A person's faces, newest first (rejected ones flagged)");
    cmd->faces->add_option("person", cmd->who, "Person id or name")->required();
    cmd->faces->add_option("--offset", cmd->offset, "Faces to skip")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->faces->add_option("--limit", cmd->limit, "Faces to list (1..500)")
        ->check(CLI::Range(1, 500))
        ->capture_default_str();
    cmd->reject = sub->add_subcommand("reject", "Not this person: the detection leaves the person for good");
    cmd->reject->add_option("person", cmd->who, "Person id or name")->required();
    cmd->reject->add_option("detection", cmd->detection, "Detection id (persons faces, analyze --store records)")
        ->required();
    cmd->reject->add_flag("--undo", cmd->undo, "Give the detection back to the person");
    return {sub, [cmd, &ctx] { return run_persons(*cmd, ctx); }};
}

}  // namespace faceq::cli
