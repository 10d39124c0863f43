// prepare_identities.cpp — prepare_identities(): a folder of identities
// (DIR/<person>/**/<image>) into a prepared set for recognition calibration
// (see faceq/training/datasets.hpp): face descriptors from the prepare engine
// (prepare_engine.cpp), a seeded gallery/probe half per person, and people
// split into train and test.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "faceq/base/error.hpp"
#include "faceq/training/datasets.hpp"
#include "training/datasets_impl.hpp"

namespace faceq {

using namespace datasets_impl;

namespace {

// The images of every person (one folder per person, images anywhere below
// it), people in name order; people_of[i] is the person of items[i].
struct PeopleImages {
    std::vector<WorkItem> items;
    std::vector<std::string> people_of;
    std::vector<std::string> people;
};

PeopleImages list_people_images(const fs::path& source_dir) {
    PeopleImages p;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(source_dir, ec)) {
        std::error_code ec2;
        if (!e.is_directory(ec2) || e.path().filename().string().front() == '.') continue;
        p.people.push_back(e.path().filename().string());
    }
    std::sort(p.people.begin(), p.people.end());
    for (const auto& person : p.people) {
        for (auto item : list_images(source_dir / person, true)) {
            item.file = person + "/" + item.file;
            p.items.push_back(std::move(item));
            p.people_of.push_back(person);
        }
    }
    if (p.items.empty())
        throw Error(
            ErrorKind::invalid_input,
            fmt::format("no images in '{}': expected a folder per person (DIR/<person>/<image>)", source_dir.string()));
    return p;
}

// The samples of every person with at least options.min_images usable
// images: the person's split ("train" or "test", by a seeded hash of the
// name) and each image's role (a seeded half, at least one, is "gallery", the
// rest "probe"). `counts` gets people, gallery and probe per split;
// `too_few` the people left out.
std::vector<OutputRow> assign_roles(const PeopleImages& p, const std::vector<Analysed>& analysed,
                                    const std::vector<std::size_t>& usable, const PrepareOptions& options, json& counts,
                                    std::size_t& too_few) {
    std::map<std::string, std::vector<std::size_t>> usable_by_person;
    for (std::size_t i : usable) usable_by_person[p.people_of[i]].push_back(i);
    const std::vector<WorkItem>& items = p.items;
    std::vector<OutputRow> rows;
    too_few = 0;
    counts = json{{"train", {{"people", 0}, {"gallery", 0}, {"probe", 0}}},
                  {"test", {{"people", 0}, {"gallery", 0}, {"probe", 0}}}};
    for (auto& [person, idx] : usable_by_person) {
        if (static_cast<int>(idx.size()) < options.min_images) {
            ++too_few;
            continue;
        }
        const double u = static_cast<double>(seeded_hash(person, options.seed) >> 11) * 0x1.0p-53;
        const std::string split = u < options.test_fraction ? "test" : "train";
        std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
            return seeded_hash(items[a].file, options.seed) < seeded_hash(items[b].file, options.seed);
        });
        const std::size_t gallery = std::max<std::size_t>(1, idx.size() / 2);
        counts[split]["people"] = counts[split]["people"].get<int>() + 1;
        for (std::size_t k = 0; k < idx.size(); ++k) {
            const std::string role = k < gallery ? "gallery" : "probe";
            counts[split][role] = counts[split][role].get<int>() + 1;
            rows.push_back({json{{"file", items[idx[k]].file}, {"person", person}, {"role", role}, {"split", split}},
                            &analysed[idx[k]].row});
        }
    }
    return rows;
}

}  // namespace

json prepare_identities(const fs::path& source_dir, const fs::path& out_dir, const ModelSet& models,
                        const PrepareOptions& options) {
    if (options.test_fraction < 0 || options.test_fraction >= 1.0)
        throw Error(ErrorKind::usage, fmt::format("--test-fraction {} must be in [0, 1)", options.test_fraction));
    if (options.min_images < 2)
        throw Error(ErrorKind::usage, "--min-images must be at least 2 (one gallery and one probe image)");
    std::error_code ec;
    if (!fs::is_directory(source_dir, ec))
        throw Error(ErrorKind::not_found, fmt::format("identities folder '{}' not found", source_dir.string()));
    const PeopleImages p = list_people_images(source_dir);
    const std::vector<WorkItem>& items = p.items;

    const json pipeline = pipeline_json(models, options.analyze, "identities");
    const Cache cache = load_cache(out_dir, pipeline);
    std::size_t reused = 0;
    const auto analysed = analyse_all(items, models, options.analyze, false, cache, options, reused);
    const Outcomes o = sort_outcomes(items, analysed);

    std::size_t too_few = 0;
    json counts;
    const std::vector<OutputRow> rows = assign_roles(p, analysed, o.usable, options, counts, too_few);
    if (rows.empty())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("no person in '{}' has {} or more images with a face ({} people, {} images)",
                                source_dir.string(), options.min_images, p.people.size(), items.size()));

    json manifest{{"dataset", "identities"},
                  {"source", fs::absolute(source_dir).lexically_normal().string()},
                  {"pipeline", pipeline},
                  {"seed", options.seed},
                  {"min_images", options.min_images},
                  {"test_fraction", options.test_fraction},
                  {"people", p.people.size()},
                  {"people_with_too_few_images", too_few},
                  {"images", items.size()},
                  {"no_face", o.no_face},
                  {"unreadable", o.unreadable},
                  {"rejected_examples", o.reject_examples},
                  {"usable", rows.size()},
                  {"reused_from_cache", reused},
                  {"counts", counts}};
    write_prepared(out_dir, manifest, rows, 128, o.rejects, o.cache_sizes);
    return read_json_file(out_dir / "manifest.json").value();
}

}  // namespace faceq
