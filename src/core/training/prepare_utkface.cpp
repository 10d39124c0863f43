// prepare_utkface.cpp — prepare_utkface(): UTKFace's images into a prepared
// set for the age/gender head (see faceq/training/datasets.hpp): labels from
// the file names, an optional seeded subset, attribute features from the
// prepare engine (prepare_engine.cpp), and splits stratified by age band x
// gender.
#include <fmt/format.h>

#include <algorithm>

#include "faceq/base/error.hpp"
#include "faceq/training/datasets.hpp"
#include "training/datasets_impl.hpp"

namespace faceq {

using namespace datasets_impl;

namespace {

void check_fractions(const PrepareOptions& o) {
    if (o.val_fraction < 0 || o.test_fraction < 0 || o.val_fraction + o.test_fraction >= 1.0)
        throw Error(ErrorKind::usage, fmt::format("split fractions val {} + test {} must be >= 0 and leave some for "
                                                  "training",
                                                  o.val_fraction, o.test_fraction));
}

// The images whose names carry a label, with those labels. A malformed name
// is reported (counted, named in a few examples, logged) and never analysed.
struct Labelled {
    std::vector<WorkItem> items;
    std::vector<UtkLabel> labels;  // one per item
    std::size_t malformed = 0;
    json malformed_examples = json::array();
};

Labelled label_images(const std::vector<WorkItem>& all, const fs::path& images, const PrepareOptions& options) {
    Labelled l;
    for (const auto& item : all) {
        std::string why;
        const auto label = parse_utkface_name(item.file, &why);
        if (!label) {
            ++l.malformed;
            if (l.malformed_examples.size() < examples_kept)
                l.malformed_examples.push_back({{"file", item.file}, {"why", why}});
            if (options.log) options.log(fmt::format("warning: skipping '{}': malformed label: {}", item.file, why));
            continue;
        }
        l.items.push_back(item);
        l.labels.push_back(*label);
    }
    if (l.items.empty())
        throw Error(ErrorKind::invalid_input,
                    fmt::format("dataset '{}' has no labelled images: none of its {} file names is "
                                "age_gender_race_timestamp.jpg",
                                images.string(), all.size()));
    return l;
}

// A seeded subset (smoke runs) when options.limit asks for one: the images
// with the smallest hashes, kept in their order.
void keep_seeded_subset(Labelled& l, const PrepareOptions& options) {
    if (options.limit == 0 || options.limit >= l.items.size()) return;
    std::vector<std::pair<std::uint64_t, std::size_t>> order;
    for (std::size_t i = 0; i < l.items.size(); ++i) order.push_back({seeded_hash(l.items[i].file, options.seed), i});
    std::sort(order.begin(), order.end());
    order.resize(options.limit);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    std::vector<WorkItem> sub_items;
    std::vector<UtkLabel> sub_labels;
    for (const auto& [h, i] : order) {
        sub_items.push_back(l.items[i]);
        sub_labels.push_back(l.labels[i]);
    }
    l.items = std::move(sub_items);
    l.labels = std::move(sub_labels);
}

// The usable samples, each with its split (stratified by age band x gender),
// in item order; `counts` gets the per-split totals by gender and age band.
std::vector<OutputRow> split_samples(const Labelled& l, const std::vector<Analysed>& analysed,
                                     const std::vector<std::size_t>& usable, const PrepareOptions& options,
                                     json& counts) {
    std::vector<std::string> keys, strata;
    for (std::size_t i : usable) {
        keys.push_back(l.items[i].file);
        strata.push_back(age_bands()[age_band_index(l.labels[i].age)] + "/" + l.labels[i].gender);
    }
    const auto splits = stratified_split(keys, strata, options.val_fraction, options.test_fraction, options.seed);

    std::vector<OutputRow> rows;
    counts = json::object();
    for (const char* s : {"train", "val", "test"})
        counts[s] = {{"total", 0}, {"male", 0}, {"female", 0}, {"bands", json::object()}};
    for (std::size_t k = 0; k < usable.size(); ++k) {
        const std::size_t i = usable[k];
        const auto& lab = l.labels[i];
        json s{{"file", l.items[i].file},
               {"age", lab.age},
               {"gender", lab.gender},
               {"race", lab.race},
               {"band", age_bands()[age_band_index(lab.age)]},
               {"split", splits[k]},
               {"cnn_p_male", analysed[i].cnn_p_male}};
        rows.push_back({std::move(s), &analysed[i].row});
        auto& c = counts[splits[k]];
        c["total"] = c["total"].get<int>() + 1;
        c[lab.gender] = c[lab.gender].get<int>() + 1;
        const std::string band = age_bands()[age_band_index(lab.age)];
        c["bands"][band] = c["bands"].value(band, 0) + 1;
    }
    return rows;
}

}  // namespace

json prepare_utkface(const fs::path& dataset_dir, const fs::path& out_dir, const ModelSet& models,
                     const PrepareOptions& options) {
    check_fractions(options);
    const fs::path images = dataset_dir / "images";
    std::error_code ec;
    if (!fs::is_directory(images, ec))
        throw Error(ErrorKind::not_found,
                    fmt::format("no images in '{}'; run: faceq download dataset utkface", images.string()));
    const std::vector<WorkItem> all = list_images(images, false);
    if (all.empty())
        throw Error(ErrorKind::invalid_input, fmt::format("dataset '{}' holds no images", images.string()));

    Labelled labelled = label_images(all, images, options);
    keep_seeded_subset(labelled, options);
    const std::vector<WorkItem>& items = labelled.items;

    AnalyzeOptions aopt = options.analyze;
    const json pipeline = pipeline_json(models, aopt, "utkface");
    const Cache cache = load_cache(out_dir, pipeline);
    std::size_t reused = 0;
    const auto analysed = analyse_all(items, models, aopt, true, cache, options, reused);
    const Outcomes o = sort_outcomes(items, analysed);
    if (o.usable.empty())
        throw Error(ErrorKind::invalid_input, fmt::format("no face found in any of the {} labelled images of '{}'",
                                                          items.size(), images.string()));
    json counts;
    const std::vector<OutputRow> rows = split_samples(labelled, analysed, o.usable, options, counts);

    json manifest{{"dataset", "utkface"},
                  {"source", dataset_dir.string()},
                  {"pipeline", pipeline},
                  {"seed", options.seed},
                  {"limit", options.limit},
                  {"fractions", {{"val", options.val_fraction}, {"test", options.test_fraction}}},
                  {"stratified_by", "age band x gender"},
                  {"images", all.size()},
                  {"malformed", labelled.malformed},
                  {"malformed_examples", labelled.malformed_examples},
                  {"no_face", o.no_face},
                  {"unreadable", o.unreadable},
                  {"rejected_examples", o.reject_examples},
                  {"usable", o.usable.size()},
                  {"reused_from_cache", reused},
                  {"counts", counts}};
    write_prepared(out_dir, manifest, rows, attribute_feature_size(), o.rejects, o.cache_sizes);
    return read_json_file(out_dir / "manifest.json").value();
}

}  // namespace faceq
