// cmd_persons.cpp — `faceq persons list|show|rename|merge|delete`: gallery
// care. A person is named by its public id (person_... / unknown_...) or its
// name (ignoring case). `merge FROM INTO` moves FROM's samples and detections
// to INTO and deletes FROM — e.g. when a stranger turns out to be Alice:
// `faceq persons merge unknown_1703123456_7890 Alice`. `rename` gives a
// stranger a name (it becomes known, keeping its id). `delete` removes a
// person and its samples; its detections stay, without a person.
// Each command prints the affected person as one JSON line.
#include <fmt/format.h>

#include <iostream>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/identity/gallery_json.hpp"
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
    std::string kind = "all";
    std::string who, new_name, into;
};

void print(const nlohmann::json& j) { print_record("person", j); }

std::unique_ptr<Gallery> require_gallery(const Context& ctx) {
    auto g = open_gallery(ctx.home, false);
    if (!g)
        throw Error(ErrorKind::not_found,
                    fmt::format("no gallery '{}' (enroll someone first)", ctx.home.gallery_path().string()));
    return g;
}

int run_persons(const PersonsCommand& cmd, Context& ctx) {
    if (cmd.list->parsed()) {
        auto g = open_gallery(ctx.home, false);
        if (!g) return 0;
        for (const auto& p : g->find_persons(""))
            if (cmd.kind == "all" || p.person.kind == cmd.kind) print(person_json(p));
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
    auto* sub = app.add_subcommand("persons", "List, rename, merge and delete gallery persons");
    sub->require_subcommand(1);
    cmd->list = sub->add_subcommand("list", "Every person, one JSON line each");
    cmd->list->add_option("--kind", cmd->kind, "Only known or unknown persons")
        ->check(CLI::IsMember({"all", "known", "unknown"}))
        ->capture_default_str();
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
    return {sub, [cmd, &ctx] { return run_persons(*cmd, ctx); }};
}

}  // namespace faceq::cli
