// tests/test_gallery.cpp — the gallery's core without the pipeline: names,
// the decision rule and calibration maths, the in-memory index, and the
// SQLite gallery (enroll, identify, store, care, clustering, migrations,
// concurrent writers) on synthetic descriptors in a TempDir.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "base/float_blob.hpp"
#include "faceq/base/error.hpp"
#include "faceq/identity/calibration.hpp"
#include "faceq/identity/face_index.hpp"
#include "faceq/identity/gallery.hpp"
#include "test_faces.hpp"
#include "test_gallery_db.hpp"
#include "test_sqlite.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;

// ---------------------------------------------------------------- names

TEST_CASE("person names: trimmed, unicode kept, bad ones refused with a reason", "[gallery]") {
    CHECK(check_person_name("  Alice  ") == "Alice");
    CHECK(check_person_name("O'Brien \"Bob\"") == "O'Brien \"Bob\"");
    CHECK(check_person_name("Robert'); DROP TABLE persons;--") == "Robert'); DROP TABLE persons;--");
    CHECK(check_person_name("Zoë Ñandú 王小明 🙂") == "Zoë Ñandú 王小明 🙂");
    CHECK(check_person_name(std::string(128, 'x')).size() == 128);
    // 128 characters of 3 bytes each are still 128 characters.
    std::string han;
    for (int i = 0; i < 128; ++i) han += "王";
    CHECK(check_person_name(han) == han);

    auto refused = [](const std::string& name, const std::string& why) {
        try {
            check_person_name(name);
            FAIL("accepted: " << name);
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::usage);
            CHECK(std::string(e.what()).find(why) != std::string::npos);
        }
    };
    refused("", "empty");
    refused(" \t ", "empty");
    refused(std::string(129, 'x'), "128 characters");
    refused(han + "王", "128 characters");
    refused("bad\nname", "control");
    refused(std::string("nul\0x", 5), "control");
    refused("\xC3\x28", "UTF-8");
    refused("unknown_1703123456_7890", "looks like a person id");
    refused("person_1_0001", "looks like a person id");
    // Bidirectional controls and zero-width characters: with "Alice\u202Eecila"
    // a listing shows "Alicealice", which is not what is stored.
    for (const char* cp : {"\u202A", "\u202B", "\u202C", "\u202D", "\u202E", "\u2066", "\u2067", "\u2068", "\u2069",
                           "\u200E", "\u200F", "\u061C", "\u200B", "\u200C", "\u200D", "\u2060", "\uFEFF"}) {
        INFO("code point " << cp);
        refused(std::string("Ali") + cp + "ce", "invisible formatting characters (U+");
    }
    refused("Alice\u202Eecila", "U+202E");
    CHECK(check_person_name("Ali\u200A ce") == "Ali\u200A ce");  // a hair space is visible: kept
}

TEST_CASE("printable escapes what would split a line or drive the terminal", "[gallery][text]") {
    CHECK(printable("Zoë 王小明 🙂 C:\\x") == "Zoë 王小明 🙂 C:\\x");
    CHECK(printable("a\nb\rc\td") == "a\\nb\\rc\\td");
    CHECK(printable("x\x1b]0;pwned\x07.jpg") == "x\\x1b]0;pwned\\x07.jpg");
    CHECK(printable(std::string("nul\0del\x7f", 8)) == "nul\\x00del\\x7f");
    CHECK(printable("c1 \u009b31m") == "c1 \\u{009b}31m");          // 8-bit CSI
    CHECK(printable("abc\u202Egpj.exe") == "abc\\u{202e}gpj.exe");  // right-to-left override
    CHECK(printable("zero\u200Bwidth\uFEFF") == "zero\\u{200b}width\\u{feff}");
    CHECK(printable("latin1 caf\xE9") == "latin1 caf\\xe9");  // not UTF-8: the byte, escaped
}

TEST_CASE("fold_case lowers Unicode letters for case-insensitive names", "[gallery]") {
    CHECK(fold_case("ALICE") == "alice");
    CHECK(fold_case("ÉMILE Ñandú") == "émile ñandú");
    CHECK(fold_case("ΣΩΚΡΆΤΗΣ") == "σωκράτησ");  // simple mapping: final sigma is not special
    CHECK(fold_case("ДМИТРИЙ") == "дмитрий");
    CHECK(fold_case("王小明 🙂") == "王小明 🙂");
}

// ---------------------------------------------------------------- decision and calibration

TEST_CASE("decide: known, ambiguous and unknown at the threshold and margin", "[gallery]") {
    Calibration c;
    c.threshold = 0.5f;
    c.margin = 0.08f;
    auto d = [&](std::vector<PersonMatch> m) { return decide(m, c).decision; };
    CHECK(d({}) == Decision::unknown);
    CHECK(d({{1, 0.3f}}) == Decision::known);
    CHECK(d({{1, 0.5f}}) == Decision::unknown);  // at the threshold: not under it
    CHECK(d({{1, 0.30f}, {2, 0.39f}}) == Decision::known);
    CHECK(d({{1, 0.30f}, {2, 0.37f}}) == Decision::ambiguous);
    CHECK(d({{1, 0.45f}, {2, 0.52f}}) == Decision::unknown);  // runner-up within margin but over threshold
    CHECK(d({{1, 0.55f}, {2, 0.56f}}) == Decision::unknown);
    const auto full = decide({{7, 0.3f}, {9, 0.35f}}, c);
    REQUIRE(full.nearest);
    CHECK(full.nearest->person == 7);
    REQUIRE(full.margin);
    CHECK(*full.margin == Approx(0.05f));
}

TEST_CASE("calibration: default, --far thresholds, JSON round trip, bad input", "[gallery]") {
    const auto c = default_calibration();
    CHECK(c.threshold == Approx(0.45f));
    CHECK(c.margin == Approx(0.08f));
    CHECK(c.stranger_threshold == Approx(0.53f));
    CHECK(c.source == "default");
    REQUIRE(c.impostor_tail.size() >= 40);

    // A bigger gallery or a stricter target gives a lower threshold.
    const float t100 = threshold_for_far(c, 0.01, 100);
    CHECK(t100 == Approx(0.4664f).margin(0.002));
    CHECK(threshold_for_far(c, 0.01, 1000) < t100);
    CHECK(threshold_for_far(c, 0.001, 100) < t100);
    CHECK(threshold_for_far(c, 0.05, 10) > t100);
    CHECK(expected_far(c, t100, 100) == Approx(0.01).epsilon(0.02));
    CHECK_THROWS_AS(threshold_for_far(c, 0.0, 100), Error);
    CHECK_THROWS_AS(threshold_for_far(c, 1.0, 100), Error);
    Calibration bare;
    bare.threshold = 0.5f;
    CHECK_THROWS_AS(threshold_for_far(bare, 0.01, 100), Error);

    Calibration custom = c;
    custom.embedder = "x@1";
    custom.embedder_sha256 = std::string(64, 'a');
    custom.threshold = 0.44f;
    custom.stranger_threshold = 0.6f;
    const auto back = calibration_from_json(nlohmann::json::parse(calibration_to_json(custom).dump()));
    CHECK(back.threshold == Approx(0.44f));
    CHECK(back.margin == Approx(c.margin));
    CHECK(back.stranger_threshold == Approx(0.6f));
    CHECK(back.embedder == "x@1");
    CHECK(back.embedder_sha256 == custom.embedder_sha256);
    CHECK(back.impostor_tail.size() == c.impostor_tail.size());
    // What `train recognition` may write without the optional fields.
    const auto minimal = calibration_from_json({{"threshold", 0.5}, {"margin", 0.05}});
    CHECK(minimal.aggregation == "mean_descriptor");
    CHECK(minimal.impostor_tail.empty());
    // Written before strangers had a threshold of their own: scaled from the default like the margin.
    CHECK(minimal.stranger_threshold == Approx(c.stranger_threshold * 0.5f / c.threshold));
    CHECK(stranger_limit(minimal) == Approx(minimal.stranger_threshold));
    CHECK_THROWS_AS(calibration_from_json({{"threshold", 0.5}, {"margin", 0.05}, {"stranger_threshold", -0.1}}), Error);
    CHECK_THROWS_AS(calibration_from_json({{"margin", 0.05}}), Error);
    CHECK_THROWS_AS(calibration_from_json({{"threshold", -1}, {"margin", 0.05}}), Error);
    CHECK_THROWS_AS(calibration_from_json({{"threshold", "x"}, {"margin", 0.05}}), Error);
    // A count that is not one (fuzz/fuzz_registry.cpp: 1e300 was undefined
    // behaviour converting to std::size_t) is refused, not wrapped or truncated.
    CHECK(calibration_from_json({{"threshold", 0.5}, {"margin", 0.05}, {"reference_persons", 30}}).reference_persons ==
          30);
    for (const nlohmann::json& count : {nlohmann::json(1e300), nlohmann::json(-1), nlohmann::json(2.5)}) {
        INFO(count.dump());
        CHECK_THROWS_AS(calibration_from_json({{"threshold", 0.5}, {"margin", 0.05}, {"reference_persons", count}}),
                        Error);
    }
}

TEST_CASE("calibrate: threshold from impostor distances for a FAR target", "[gallery]") {
    std::mt19937 rng(5);
    std::normal_distribution<float> gen(0.4f, 0.06f), imp(0.9f, 0.1f);
    std::vector<float> genuine(2000), impostor(2'000'000);
    for (auto& v : genuine) v = gen(rng);
    for (auto& v : impostor) v = imp(rng);
    const auto c = calibrate(genuine, impostor, 0.01, 100);
    // Per comparison: 1 - 0.99^(1/100) = 1.005e-4, the 0.0001 quantile of N(0.9, 0.1) is ~0.528.
    CHECK(c.threshold == Approx(0.528f).margin(0.01));
    CHECK(c.margin == Approx(0.08f * c.threshold / 0.45f));
    CHECK(c.stranger_threshold == Approx(0.53f * c.threshold / 0.45f));
    CHECK(c.far_target == 0.01);
    CHECK(threshold_for_far(c, 0.01, 100) == Approx(c.threshold).margin(0.005));
    CHECK_THROWS_AS(calibrate(genuine, std::vector<float>(5000, 1.0f), 0.01, 100), Error);  // too few impostors
    CHECK_THROWS_AS(calibrate(std::vector<float>(10, 2.0f), impostor, 0.01, 100), Error);   // nothing genuine under
}

// ---------------------------------------------------------------- index

TEST_CASE("FaceIndex: the nearest distinct persons, exactly", "[gallery]") {
    std::mt19937 rng(1);
    FaceIndex index;
    std::vector<std::pair<std::int64_t, Descriptor>> rows;
    for (int i = 0; i < 3000; ++i) {
        const std::int64_t person = static_cast<std::int64_t>(rng() % 700);  // several rows per person, any order
        rows.emplace_back(person, random_descriptor(rng));
        index.add(person, rows.back().second);
    }
    CHECK(index.samples() == 3000);
    for (int q = 0; q < 20; ++q) {
        const Descriptor query = random_descriptor(rng);
        std::map<std::int64_t, float> best;
        for (const auto& [p, d] : rows) {
            float s = 0;
            for (std::size_t i = 0; i < 128; ++i) s += (d[i] - query[i]) * (d[i] - query[i]);
            const float dist = std::sqrt(s);
            if (!best.count(p) || dist < best[p]) best[p] = dist;
        }
        std::vector<std::pair<float, std::int64_t>> want;
        for (const auto& [p, d] : best) want.emplace_back(d, p);
        std::sort(want.begin(), want.end());
        const auto got = index.nearest_persons(query, 5);
        REQUIRE(got.size() == 5);
        for (std::size_t k = 0; k < 5; ++k) {
            CHECK(got[k].person == want[k].second);
            CHECK(got[k].distance == Approx(want[k].first).epsilon(1e-4));
        }
    }
    CHECK(FaceIndex().nearest_persons(random_descriptor(rng), 3).empty());
}

TEST_CASE("FaceIndex: remove moves the last row into the gap", "[gallery]") {
    std::mt19937 rng(2);
    FaceIndex index;
    const Descriptor a = random_descriptor(rng), b = random_descriptor(rng), c = random_descriptor(rng);
    index.add(1, a);
    index.add(2, b);
    index.add(3, c);
    CHECK(index.remove(0) == std::optional<std::int64_t>(3));  // row 0 now holds person 3
    REQUIRE(index.samples() == 2);
    CHECK(index.nearest_persons(c, 1).at(0).person == 3);
    CHECK(index.nearest_persons(c, 1).at(0).distance == 0.0f);
    CHECK(index.nearest_persons(a, 2).size() == 2);  // person 1 is gone
    CHECK(index.nearest_persons(a, 2).at(0).person != 1);
    CHECK(index.nearest_persons(a, 2).at(1).person != 1);
    CHECK_FALSE(index.remove(1).has_value());  // the last row: nothing moves
    CHECK(index.samples() == 1);
    CHECK(index.nearest_persons(b, 1).at(0).person == 3);
}

TEST_CASE("Gallery::is_database_url: PostgreSQL URLs and key=value strings, not file paths", "[gallery]") {
    for (const char* url :
         {"postgresql://faceq@db:5432/faceq?sslmode=require", "postgres://u:p@h/d", "host=/run/postgresql dbname=faceq",
          "service=faceq", " dbname = faceq", "sslmode=verify-full host=db.example"})
        CHECK(Gallery::is_database_url(url));
    for (const char* path : {"faceq.db", "/var/lib/faceq/faceq.db", "./a=b.db", "A=b", "", "=x", "my gallery.db",
                             "sqlite:///x.db", "mysql://x"})
        CHECK_FALSE(Gallery::is_database_url(path));
    CHECK(Gallery::describe_location("postgresql://faceq:secret@db:5432/faceq?sslmode=require") ==
          "postgresql://faceq@db:5432/faceq");
    CHECK(Gallery::describe_location("host=/run/postgresql dbname=faceq user=me password=x") ==
          "postgresql://me@/faceq?host=/run/postgresql");
    CHECK(Gallery::describe_location("/var/lib/faceq/faceq.db") == "/var/lib/faceq/faceq.db");
}

// The graph (HNSW) behind the same interface. Rows are clustered as faces
// are (persons around 300 "looks", queries near a row), not uniform in 128
// dimensions, where any approximate search does worse than on descriptors.
namespace {

struct Clustered {
    std::vector<Descriptor> centres;
    std::mt19937 rng;
    explicit Clustered(unsigned seed) : rng(seed) {
        for (int i = 0; i < 300; ++i) centres.push_back(random_descriptor(rng));
    }
    Descriptor row() { return jitter(centres[rng() % centres.size()], rng, 0.6f); }
};

// Share of queries whose nearest person in `graph` is the exact scan's, and
// share of the exact scan's k nearest persons that `graph` also lists.
struct Recall {
    double at1 = 0, at_k = 0;
};

Recall recall(const FaceIndex& graph, const FaceIndex& exact, const std::vector<Descriptor>& queries, std::size_t k) {
    std::size_t first = 0, found = 0, wanted = 0;
    for (const auto& q : queries) {
        const auto g = graph.nearest_persons(q, k), e = exact.nearest_persons(q, k);
        REQUIRE(!g.empty());
        first += g[0].person == e[0].person;
        for (const auto& m : e) {
            ++wanted;
            const auto same =
                std::find_if(g.begin(), g.end(), [&](const PersonMatch& x) { return x.person == m.person; });
            if (same == g.end()) continue;
            ++found;
            CHECK(same->distance == m.distance);  // the same metric, bit for bit
        }
    }
    return {double(first) / double(queries.size()), double(found) / double(wanted)};
}

}  // namespace

TEST_CASE("FaceIndex: the graph finds the exact scan's nearest persons", "[gallery]") {
    Clustered data(3);
    FaceIndex graph, exact;
    graph.set_search(FaceIndex::Search::graph);
    exact.set_search(FaceIndex::Search::exact);
    std::vector<Descriptor> rows;
    for (std::int64_t p = 0; p < 4000; ++p) {
        rows.push_back(data.row());
        graph.add(p * 7, rows.back());  // person keys are the caller's, not row numbers
        exact.add(p * 7, rows.back());
    }
    std::vector<Descriptor> queries;
    for (int q = 0; q < 500; ++q) queries.push_back(jitter(rows[data.rng() % rows.size()], data.rng, 0.3f));
    for (int q = 0; q < 100; ++q) queries.push_back(data.row());  // nobody's
    const Recall r = recall(graph, exact, queries, 4);
    INFO("recall@1 " << r.at1 << ", recall@4 " << r.at_k);
    CHECK(r.at1 >= 0.99);
    CHECK(r.at_k >= 0.98);
    CHECK(graph.graph_state().built);
    CHECK(graph.graph_state().nodes == 4000);
    CHECK_FALSE(exact.graph_state().built);
    // A row is its own nearest, at distance 0.
    for (std::size_t i = 0; i < rows.size(); i += 97) {
        const auto m = graph.nearest_persons(rows[i], 1);
        REQUIRE(m.size() == 1);
        CHECK(m[0].person == static_cast<std::int64_t>(i) * 7);
        CHECK(m[0].distance == 0.0f);
    }
}

TEST_CASE("FaceIndex: the graph lists k distinct persons when they have several rows", "[gallery]") {
    Clustered data(4);
    FaceIndex graph, exact;
    graph.set_search(FaceIndex::Search::graph);
    exact.set_search(FaceIndex::Search::exact);
    for (int i = 0; i < 3000; ++i) {
        const auto person = static_cast<std::int64_t>(i % 500);  // 6 rows each
        const Descriptor d = data.row();
        graph.add(person, d);
        exact.add(person, d);
    }
    std::vector<Descriptor> queries;
    for (int q = 0; q < 300; ++q) queries.push_back(data.row());
    for (const auto& q : queries) {
        const auto g = graph.nearest_persons(q, 5);
        REQUIRE(g.size() == 5);
        std::set<std::int64_t> distinct;
        for (const auto& m : g) distinct.insert(m.person);
        CHECK(distinct.size() == 5);
        CHECK(std::is_sorted(g.begin(), g.end(),
                             [](const PersonMatch& a, const PersonMatch& b) { return a.distance < b.distance; }));
    }
    const Recall r = recall(graph, exact, queries, 5);
    CHECK(r.at1 >= 0.99);
    CHECK(r.at_k >= 0.98);
    CHECK(graph.nearest_persons(queries[0], 600).size() == 500);  // more than there are: all of them
}

TEST_CASE("FaceIndex: the graph follows add, replace and remove", "[gallery]") {
    Clustered data(5);
    FaceIndex graph, exact;
    graph.set_search(FaceIndex::Search::graph);
    exact.set_search(FaceIndex::Search::exact);
    std::vector<Descriptor> rows;  // by row, as both indexes hold them
    std::vector<std::int64_t> owners;
    std::int64_t next_person = 0;
    const auto add = [&](const Descriptor& d) {
        const std::int64_t p = next_person++;
        const std::size_t row = graph.add(p, d);
        CHECK(exact.add(p, d) == row);
        CHECK(row == rows.size());
        rows.push_back(d);
        owners.push_back(p);
    };
    for (int i = 0; i < 2000; ++i) add(data.row());
    graph.build_graph();
    REQUIRE(graph.graph_state().builds == 1);

    // Removed persons never come back, and the same person fills the gap in both.
    std::set<std::int64_t> removed;
    std::vector<Descriptor> removed_rows;
    for (int i = 0; i < 300; ++i) {
        const std::size_t row = data.rng() % rows.size();
        removed.insert(owners[row]);
        removed_rows.push_back(rows[row]);
        const auto moved = graph.remove(row);
        REQUIRE(exact.remove(row) == moved);
        if (row + 1 != rows.size()) {
            CHECK(moved == std::optional<std::int64_t>(owners.back()));
            rows[row] = rows.back();
            owners[row] = owners.back();
        } else {
            CHECK_FALSE(moved.has_value());
        }
        rows.pop_back();
        owners.pop_back();
    }
    CHECK(graph.graph_state().deleted == 300);
    for (const auto& d : removed_rows)
        for (const auto& m : graph.nearest_persons(d, 8)) CHECK(removed.count(m.person) == 0);

    // A replaced row is found at its new place, and not at its old one.
    for (int i = 0; i < 200; ++i) {
        const std::size_t row = data.rng() % rows.size();
        const Descriptor old = rows[row], now = data.row();
        graph.replace(row, now);
        exact.replace(row, now);
        rows[row] = now;
        const auto m = graph.nearest_persons(now, 1);
        REQUIRE(m.size() == 1);
        CHECK(m[0].person == owners[row]);
        CHECK(m[0].distance == 0.0f);
        const auto at_old = graph.nearest_persons(old, 1);
        CHECK((at_old[0].person != owners[row] || at_old[0].distance > 0.0f));
    }
    // Added rows are found.
    for (int i = 0; i < 300; ++i) {
        add(data.row());
        const auto m = graph.nearest_persons(rows.back(), 1);
        CHECK(m.at(0).person == owners.back());
        CHECK(m.at(0).distance == 0.0f);
    }
    CHECK(graph.graph_state().builds == 1);  // kept in step, not rebuilt
    CHECK(graph.graph_state().nodes == 2300);
    std::vector<Descriptor> queries;
    for (int q = 0; q < 400; ++q) queries.push_back(jitter(rows[data.rng() % rows.size()], data.rng, 0.3f));
    const Recall r = recall(graph, exact, queries, 4);
    INFO("recall@1 " << r.at1 << ", recall@4 " << r.at_k);
    CHECK(r.at1 >= 0.99);
    CHECK(r.at_k >= 0.98);

    // Past a quarter of the rows deleted, the graph is dropped and rebuilt
    // by the next query, without the deleted nodes.
    while (graph.graph_state().built) {
        graph.remove(0);
        exact.remove(0);
    }
    CHECK(graph.samples() == 1839);  // 300 + 161 deleted > 1839 / 4
    CHECK(graph.nearest_persons(queries[0], 1).at(0).person == exact.nearest_persons(queries[0], 1).at(0).person);
    CHECK(graph.graph_state().builds == 2);
    CHECK(graph.graph_state().deleted == 0);
    CHECK(graph.graph_state().nodes == graph.samples());

    graph.clear();
    CHECK_FALSE(graph.graph_state().built);
    CHECK(graph.nearest_persons(queries[0], 1).empty());
}

TEST_CASE("FaceIndex: the graph from the threshold on, the exact scan below or when forced", "[gallery]") {
    Clustered data(6);
    FaceIndex index, exact;
    FaceIndex::GraphOptions options;
    options.threshold = 1000;
    options.search_breadth = 1;
    index.set_graph_options(options);
    exact.set_search(FaceIndex::Search::exact);
    for (std::int64_t p = 0; p < 999; ++p) {
        const Descriptor d = data.row();
        index.add(p, d);
        exact.add(p, d);
    }
    std::vector<Descriptor> queries;
    for (int q = 0; q < 50; ++q) queries.push_back(data.row());
    const auto same_as_exact = [&] {
        for (const auto& q : queries) {
            const auto a = index.nearest_persons(q, 3), b = exact.nearest_persons(q, 3);
            REQUIRE(a.size() == 3);
            for (std::size_t k = 0; k < 3; ++k) {
                CHECK(a[k].person == b[k].person);
                CHECK(a[k].distance == b[k].distance);
            }
        }
    };
    CHECK_FALSE(index.uses_graph());
    same_as_exact();
    CHECK_FALSE(index.graph_state().built);
    index.add(999, data.row());
    CHECK(index.uses_graph());
    CHECK_FALSE(index.graph_state().built);  // built by the first query that needs it
    index.nearest_persons(queries[0], 2);
    CHECK(index.graph_state().built);
    CHECK(index.graph_state().builds == 1);

    // Forced exact: the graph (a poor one: search_breadth 1) is not used,
    // but kept, so that switching back is immediate.
    index.remove(999);  // the 999 rows `exact` holds
    index.set_search(FaceIndex::Search::exact);
    CHECK_FALSE(index.uses_graph());
    same_as_exact();
    CHECK(index.graph_state().built);
    index.set_search(FaceIndex::Search::automatic);
    CHECK(index.uses_graph());  // 999 rows: a built graph serves down to half the threshold
    CHECK(index.graph_state().builds == 1);

    // Removing a few rows keeps the graph; past a quarter deleted it is
    // dropped, and below the threshold the exact scan answers.
    while (index.samples() > 900) index.remove(0), exact.remove(0);
    CHECK(index.graph_state().built);
    CHECK(index.uses_graph());
    while (index.graph_state().built) index.remove(0), exact.remove(0);
    CHECK(index.samples() == 799);  // 201 deleted > 799 / 4
    CHECK_FALSE(index.uses_graph());
    same_as_exact();
    CHECK_FALSE(index.graph_state().built);
    while (index.samples() < 1000) {
        const Descriptor d = data.row();
        index.add(static_cast<std::int64_t>(2000 + index.samples()), d);
        exact.add(static_cast<std::int64_t>(2000 + exact.samples()), d);
    }
    CHECK(index.uses_graph());
    index.nearest_persons(queries[0], 2);
    CHECK(index.graph_state().builds == 2);
}

TEST_CASE("FaceIndex: forcing the exact scan gives exact answers at any size", "[gallery]") {
    Clustered data(7);
    FaceIndex index;
    FaceIndex::GraphOptions options;
    options.threshold = 100;
    options.search_breadth = 1;  // a poor graph, so that using it would show
    index.set_graph_options(options);
    index.set_search(FaceIndex::Search::exact);
    std::vector<Descriptor> rows;
    for (std::int64_t p = 0; p < 3000; ++p) {
        rows.push_back(data.row());
        index.add(p, rows.back());
    }
    for (int n = 0; n < 100; ++n) {
        const Descriptor q = data.row();
        std::vector<std::pair<float, std::int64_t>> want;
        for (std::size_t i = 0; i < rows.size(); ++i) {
            float s = 0;
            squared_distances(rows[i].data(), 1, q.data(), &s);
            want.emplace_back(std::sqrt(s), static_cast<std::int64_t>(i));
        }
        std::sort(want.begin(), want.end());
        const auto got = index.nearest_persons(q, 3);
        REQUIRE(got.size() == 3);
        for (std::size_t k = 0; k < 3; ++k) {
            CHECK(got[k].person == want[k].second);
            CHECK(got[k].distance == want[k].first);
        }
    }
    CHECK_FALSE(index.graph_state().built);
}

TEST_CASE("FaceIndex: concurrent first queries build the graph once", "[gallery]") {
    Clustered data(8);
    FaceIndex index;
    index.set_search(FaceIndex::Search::graph);
    for (std::int64_t p = 0; p < 3000; ++p) index.add(p, data.row());
    std::vector<Descriptor> queries;
    for (int q = 0; q < 200; ++q) queries.push_back(data.row());
    std::vector<std::vector<std::int64_t>> answers(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < answers.size(); ++t)
        threads.emplace_back([&, t] {
            for (const auto& q : queries) answers[t].push_back(index.nearest_persons(q, 1).at(0).person);
        });
    for (auto& t : threads) t.join();
    CHECK(index.graph_state().builds == 1);
    for (const auto& a : answers) CHECK(a == answers[0]);
}

TEST_CASE("descriptor BLOBs are little-endian float32", "[gallery]") {
    const float v[2] = {1.0f, -2.5f};
    const auto blob = faceq::detail::floats_to_blob(v, 2);
    const std::vector<std::uint8_t> want{0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0};
    CHECK(blob == want);
    float back[2];
    REQUIRE(faceq::detail::blob_to_floats(blob.data(), blob.size(), back, 2));
    CHECK(back[0] == 1.0f);
    CHECK(back[1] == -2.5f);
    CHECK_FALSE(faceq::detail::blob_to_floats(blob.data(), 7, back, 2));
}

// ---------------------------------------------------------------- gallery

TEST_CASE("gallery: schema, WAL, foreign keys; a newer schema is refused", "[gallery]") {
    TempDir dir;
    const auto db = dir / "faceq.db";
    { Gallery g(db); }
    CHECK(db_int(db, "PRAGMA user_version") == Gallery::schema_version_supported());
    CHECK(db_int(db,
                 "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                 "('persons', 'samples', 'images', 'detections', 'meta')") == 5);
    sqlite3* h = nullptr;
    sqlite3_open(db.c_str(), &h);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &s, nullptr);
    sqlite3_step(s);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "wal");
    sqlite3_finalize(s);
    sqlite3_close(h);
    { Gallery again(db); }  // opening twice migrates nothing

    db_exec(db, "PRAGMA user_version = 99");
    try {
        Gallery newer(db);
        FAIL("opened a database from the future");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::invalid_input);
        CHECK(std::string(e.what()).find("newer") != std::string::npos);
    }
    Gallery::Options no_create;
    no_create.create = false;
    CHECK_THROWS_AS(Gallery(dir / "missing.db", no_create), Error);
    CHECK_FALSE(std::filesystem::exists(dir / "missing.db"));
}

TEST_CASE("gallery: enroll, re-enroll is a no-op, names are case-insensitive and stored as given", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(2);
    const Descriptor alice = random_descriptor(rng);
    const auto r1 = g.enroll("Alice O'Hara", {sample(alice, "a1"), sample(jitter(alice, rng), "a2")}, emb);
    REQUIRE(r1.person);
    CHECK(r1.created);
    CHECK(r1.person->kind == "known");
    CHECK(std::regex_match(r1.person->public_id, std::regex("person_[0-9]+_[0-9]{4}")));
    CHECK(std::count_if(r1.samples.begin(), r1.samples.end(), [](auto& s) { return s.added; }) == 2);

    // Same photos again, one new; under another spelling of the name.
    const auto r2 = g.enroll("alice o'hara", {sample(alice, "a1"), sample(jitter(alice, rng), "a3")}, emb);
    REQUIRE(r2.person);
    CHECK_FALSE(r2.created);
    CHECK(r2.person->public_id == r1.person->public_id);
    CHECK(*r2.person->name == "Alice O'Hara");
    REQUIRE(r2.samples.size() == 2);
    CHECK_FALSE(r2.samples[0].added);
    CHECK(r2.samples[0].reason == "already enrolled");
    CHECK(r2.samples[1].added);

    // Alice's photo given for Bob: refused, Bob not created from nothing.
    const auto r3 = g.enroll("Bob", {sample(alice, "a1")}, emb);
    CHECK_FALSE(r3.person);
    CHECK(r3.samples[0].reason == "already enrolled as 'Alice O'Hara'");
    CHECK_FALSE(g.person("Bob"));
    CHECK_THROWS_AS(g.enroll("", {sample(alice, "x")}, emb), Error);
    // Another face of Alice's photo may be Bob's (a group photo's named
    // regions, enroll --from-xmp); a box overlapping hers (IoU >= 0.5) may not.
    auto beside = sample(random_descriptor(rng), "a1");
    beside.box = {200, 20, 100, 100};
    auto over = sample(random_descriptor(rng), "a1");
    over.box = {30, 30, 100, 100};  // IoU 0.56 with hers
    const auto r4 = g.enroll("Bob", {over}, emb);
    CHECK_FALSE(r4.person);
    CHECK(r4.samples[0].reason == "already enrolled as 'Alice O'Hara'");
    const auto r5 = g.enroll("Bob", {beside}, emb);
    REQUIRE(r5.person);
    CHECK(r5.samples[0].added);
    CHECK(g.enrolled_as("a1", emb)->public_id == r1.person->public_id);

    const auto info = g.person("ALICE O'HARA");
    REQUIRE(info);
    CHECK(info->samples == 3);
    CHECK(g.enrolled_as("a2", emb)->public_id == r1.person->public_id);
    CHECK_FALSE(g.enrolled_as("a2", "other@1"));
}

TEST_CASE("gallery: quotes, SQL metacharacters, unicode and LIKE wildcards in names and searches", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(3);
    const std::vector<std::string> names = {"Robert'); DROP TABLE persons;--", "Zoë \"Zed\" Ñandú", "王小明",
                                            "100% _real_ \\name", std::string(128, 'L')};
    for (std::size_t i = 0; i < names.size(); ++i)
        REQUIRE(g.enroll(names[i], {sample(random_descriptor(rng), "n" + std::to_string(i))}, emb).person);
    CHECK(g.find_persons("").size() == names.size());
    for (const auto& n : names) {
        const auto p = g.person(n);
        REQUIRE(p);
        CHECK(*p->person.name == n);
    }
    CHECK(g.find_persons("drop table").size() == 1);
    CHECK(g.find_persons("ZOË").size() == 1);  // non-ASCII case folding
    CHECK(g.find_persons("ñandú").size() == 1);
    CHECK(g.find_persons("小明").size() == 1);
    CHECK(g.find_persons("%").size() == 1);  // a literal %, not a wildcard
    CHECK(g.find_persons("_real_").size() == 1);
    CHECK(g.find_persons("\\name").size() == 1);
    CHECK(g.find_persons("nobody").empty());
    CHECK(g.find_persons("person_").size() == names.size());  // public ids match too
}

TEST_CASE("gallery: identification with the mean of each person's samples", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(4);
    const Descriptor a = random_descriptor(rng), b = random_descriptor(rng);
    g.enroll("A", {sample(jitter(a, rng, 0.1f), "a1"), sample(jitter(a, rng, 0.1f), "a2")}, emb);
    g.enroll("B", {sample(b, "b1")}, emb);
    const Descriptor stranger = random_descriptor(rng);
    const auto ids = g.identify({jitter(a, rng, 0.1f), b, stranger}, context());
    REQUIRE(ids.size() == 3);
    CHECK(ids[0].decision == Decision::known);
    CHECK(*ids[0].person->name == "A");
    CHECK(*ids[0].distance < 0.3f);
    CHECK(*ids[0].margin > 0.5f);
    CHECK(ids[1].decision == Decision::known);
    CHECK(*ids[1].distance == Approx(0.0f).margin(1e-5));
    CHECK(ids[2].decision == Decision::unknown);
    CHECK_FALSE(ids[2].person);
    CHECK(*ids[2].distance > 1.0f);

    // Between two people: ambiguous, with both as candidates.
    Descriptor mid;
    for (std::size_t i = 0; i < 128; ++i) mid[i] = 0.5f * (a[i] + b[i]);
    IdentifyContext loose = context();
    loose.calibration.threshold = 1.5f;
    const auto amb = g.identify({mid}, loose);
    CHECK(amb[0].decision == Decision::ambiguous);
    CHECK_FALSE(amb[0].person);
    CHECK(amb[0].runner_up);

    // Another embedder's samples are never compared.
    const auto other = g.identify({b}, IdentifyContext{"other@2", default_calibration()});
    CHECK(other[0].decision == Decision::unknown);
    CHECK_FALSE(other[0].distance);
    const auto embedders = g.embedders();
    REQUIRE(embedders.size() == 1);
    CHECK(embedders[0].embedder == emb);
    CHECK(embedders[0].samples == 3);
    CHECK(g.usable(emb).first == 2);
    CHECK(g.usable("other@2").first == 0);
}

TEST_CASE("gallery: stored strangers get a stable id, re-used when seen again", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(6);
    const Descriptor alice = random_descriptor(rng), s1 = random_descriptor(rng), s2 = random_descriptor(rng);
    g.enroll("Alice", {sample(alice, "a")}, emb);

    const auto first =
        g.record_analysis(image("img1"), {face_with(jitter(alice, rng, 0.1f)), face_with(s1, 300)}, context(), false);
    REQUIRE(first);
    REQUIRE(first->size() == 2);
    CHECK((*first)[0].decision == Decision::known);
    CHECK((*first)[1].decision == Decision::unknown);
    CHECK((*first)[1].new_person);
    const std::string stranger = (*first)[1].person->public_id;
    CHECK(std::regex_match(stranger, std::regex("unknown_[0-9]+_[0-9]{4}")));

    // Same image again: nothing written unless replacing.
    CHECK_FALSE(g.record_analysis(image("img1"), {face_with(s1)}, context(), false));
    CHECK(g.find_image("img1", image("img1").models));
    CHECK_FALSE(g.find_image("img1", "other models"));

    // The stranger again in another photo, plus a new one.
    const auto second =
        g.record_analysis(image("img2"), {face_with(jitter(s1, rng, 0.1f)), face_with(s2, 300)}, context(), false);
    REQUIRE(second);
    CHECK((*second)[0].decision == Decision::unknown);
    CHECK_FALSE((*second)[0].new_person);
    CHECK((*second)[0].person->public_id == stranger);
    CHECK((*second)[1].new_person);
    CHECK((*second)[1].person->public_id != stranger);

    // A second process (another connection) sees the strangers too.
    const auto other = db.open();
    const auto seen = other->identify({jitter(s2, rng, 0.1f)}, context());
    CHECK(seen[0].person->public_id == (*second)[1].person->public_id);

    // --force: replaces img1's detections, does not duplicate them.
    CHECK(g.record_analysis(image("img1"), {face_with(alice)}, context(), true));
    CHECK(db_int(db, "SELECT count(*) FROM detections") == 3);
    CHECK(db_int(db, "SELECT count(*) FROM images") == 2);
    CHECK(db_int(db, "SELECT count(*) FROM persons WHERE kind = 'unknown'") == 2);
    // The stranger kept the samples it was seen with (up to 5).
    CHECK(db_int(db, "SELECT count(*) FROM samples s JOIN persons p ON p.id = s.person_id WHERE p.public_id = '" +
                         stranger + "'") == 2);

    const auto stats = g.stats(static_cast<std::int64_t>(std::time(nullptr)));
    CHECK(stats.persons_known == 1);
    CHECK(stats.persons_unknown == 2);
    CHECK(stats.images == 2);
    CHECK(stats.detections == 3);
    REQUIRE(stats.detections_per_day.size() == 30);
    CHECK(stats.detections_per_day.back().second == 3);
    CHECK(stats.database_bytes > 0);
}

TEST_CASE("gallery: rename, merge and delete persons", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(8);
    const Descriptor alice = random_descriptor(rng), bob = random_descriptor(rng), carol = random_descriptor(rng);
    g.enroll("Alice", {sample(alice, "a")}, emb);
    const auto s = g.record_analysis(
        image("i1"), {face_with(jitter(alice, rng, 0.3f), 0), face_with(bob, 200), face_with(carol, 400)}, context(),
        false);
    REQUIRE(s);
    // A jittered Alice may or may not match Alice; the test only needs bob and carol as strangers.
    const std::string bob_id = (*s)[1].person->public_id, carol_id = (*s)[2].person->public_id;

    // The stranger turns out to be Alice.
    const auto merged = g.merge(bob_id, "alice");
    CHECK(*merged.person.name == "Alice");
    CHECK(merged.samples == 2);
    CHECK_FALSE(g.person(bob_id));
    CHECK(db_int(db, "SELECT count(*) FROM detections WHERE person_id = " + std::to_string(merged.person.id) +
                         " AND decision = 'known'") >= 1);

    // Naming a stranger keeps its id and makes it known.
    const auto named = g.rename(carol_id, "Carol");
    CHECK(named.person.public_id == carol_id);
    CHECK(named.person.kind == "known");
    CHECK(g.identify({carol}, context())[0].decision == Decision::known);
    CHECK_THROWS_AS(g.rename("Carol", "ALICE"), Error);  // taken, ignoring case
    CHECK_THROWS_AS(g.rename("Carol", ""), Error);
    CHECK_THROWS_AS(g.merge("Carol", "Carol"), Error);
    CHECK_THROWS_AS(g.merge("nobody", "Carol"), Error);

    // Deleting keeps the detections, without a person.
    const auto gone = g.remove("carol");
    CHECK(gone.person.public_id == carol_id);
    CHECK_FALSE(g.person("Carol"));
    CHECK(db_int(db, "SELECT count(*) FROM detections") == 3);
    CHECK(db_int(db, "SELECT count(*) FROM detections WHERE person_id IS NULL") == 1);
    CHECK(g.identify({carol}, context())[0].decision == Decision::unknown);
    try {
        g.remove("carol");
        FAIL("deleted twice");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::not_found);
    }
}

TEST_CASE("gallery: prune old detections and forgotten strangers", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(9);
    REQUIRE(g.record_analysis(image("old"), {face_with(random_descriptor(rng))}, context(), false));
    REQUIRE(g.record_analysis(image("new"), {face_with(random_descriptor(rng))}, context(), false));
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    const std::int64_t old = now - 40 * 86400;
    db_exec(db, "UPDATE detections SET detected_at = " + std::to_string(old) +
                    " WHERE image_id = "
                    "(SELECT id FROM images WHERE sha256 = 'old')");
    db_exec(db, "UPDATE persons SET updated_at = " + std::to_string(old) +
                    " WHERE id = "
                    "(SELECT person_id FROM detections WHERE detected_at = " +
                    std::to_string(old) + ")");
    const auto dry = g.prune(now - 30 * 86400, true, true);
    CHECK(dry.detections == 1);
    CHECK(dry.strangers == 1);
    CHECK(db_int(db, "SELECT count(*) FROM detections") == 2);  // dry run changed nothing
    const auto r = g.prune(now - 30 * 86400, true, false);
    CHECK(r.detections == 1);
    CHECK(r.strangers == 1);
    CHECK(db_int(db, "SELECT count(*) FROM detections") == 1);
    CHECK(db_int(db, "SELECT count(*) FROM persons") == 1);
    CHECK(db_int(db, "SELECT count(*) FROM images") == 2);  // images stay: no re-analysis
    if (!db.postgres()) CHECK(db_int(db, "SELECT count(*) FROM pragma_foreign_key_check") == 0);
}

TEST_CASE("gallery: cluster groups strangers' detections and keeps ids stable", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(10);
    const Descriptor x = random_descriptor(rng), y = random_descriptor(rng);
    // Two strangers, seen 4 times each; a loose threshold at storing time made
    // some of their faces separate unknown persons: clustering joins them.
    IdentifyContext strict = context();
    strict.calibration.threshold = 0.05f;  // every face becomes a new stranger
    strict.calibration.stranger_threshold = 0.05f;
    for (int i = 0; i < 4; ++i) {
        REQUIRE(g.record_analysis(image("x" + std::to_string(i)), {face_with(jitter(x, rng, 0.15f))}, strict, false));
        REQUIRE(g.record_analysis(image("y" + std::to_string(i)), {face_with(jitter(y, rng, 0.15f))}, strict, false));
    }
    CHECK(db_int(db, "SELECT count(*) FROM persons WHERE kind = 'unknown'") == 8);
    const auto r = g.cluster(emb, 0.47f);
    CHECK(r.detections == 8);
    CHECK(r.clusters == 2);
    CHECK(r.persons_kept == 2);
    CHECK(r.persons_created == 0);
    CHECK(r.persons_removed == 6);
    CHECK(db_int(db, "SELECT count(*) FROM persons WHERE kind = 'unknown'") == 2);
    CHECK(db_int(db, "SELECT count(DISTINCT person_id) FROM detections") == 2);
    const auto ids_before = g.find_persons("unknown_");

    // Again: nothing moves.
    const auto again = g.cluster(emb, 0.47f);
    CHECK(again.reassigned == 0);
    CHECK(again.persons_removed == 0);
    const auto ids_after = g.find_persons("unknown_");
    REQUIRE(ids_after.size() == ids_before.size());
    for (std::size_t i = 0; i < ids_after.size(); ++i)
        CHECK(ids_after[i].person.public_id == ids_before[i].person.public_id);
    // And the groups are recognised afterwards.
    const auto seen = g.identify({x, y}, context());
    CHECK(seen[0].person);
    CHECK(seen[1].person);
    CHECK(seen[0].person->public_id != seen[1].person->public_id);
}

// A descriptor on the segment from a to b, at `f` of the way (distances to
// a and b: f and 1 - f times |a - b|).
static Descriptor between(const Descriptor& a, const Descriptor& b, float f) {
    Descriptor out;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] + f * (b[i] - a[i]);
    return out;
}

TEST_CASE("gallery: strangers — the stranger tier, no cascade, merge candidates", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto gallery = db.open();
    Gallery& g = *gallery;
    std::mt19937 rng(12);
    const Calibration c = default_calibration();  // threshold 0.45, margin 0.08, strangers up to 0.53
    REQUIRE(stranger_limit(c) == Approx(0.53f));
    REQUIRE(candidate_limit(c) == Approx(0.49f));
    const Descriptor alice = random_descriptor(rng);
    g.enroll("Alice", {sample(alice, "a")}, emb);

    // A missed photo of Alice (0.47 from her: not named) becomes a stranger...
    const Descriptor missed = jitter(alice, rng, 0.47f);
    const auto first = g.record_analysis(image("p1"), {face_with(missed)}, context(), false);
    REQUIRE(first);
    CHECK((*first)[0].decision == Decision::unknown);
    REQUIRE((*first)[0].new_person);
    const std::string u = (*first)[0].person->public_id;

    // ... that is probably Alice: a merge candidate, not merged.
    auto candidates = g.merge_candidates(context());
    REQUIRE(candidates.size() == 1);
    CHECK(candidates[0].stranger.public_id == u);
    CHECK(*candidates[0].known.name == "Alice");
    CHECK(candidates[0].distance == Approx(0.47f).margin(1e-4));
    CHECK(candidates[0].samples == 1);

    // No cascade: a photo halfway between Alice and that stranger (0.235 from
    // each) is Alice, not "ambiguous" between her and her own missed photo.
    const auto mid = g.identify({between(alice, missed, 0.5f)}, context());
    CHECK(mid[0].decision == Decision::known);
    REQUIRE(mid[0].person);
    CHECK(*mid[0].person->name == "Alice");
    CHECK(*mid[0].distance == Approx(0.235f).margin(1e-4));
    REQUIRE(mid[0].runner_up);
    CHECK(mid[0].runner_up->person.public_id == u);
    // The same without the rule's reason: a stranger 0.70 from Alice is
    // somebody else, and a face halfway between them stays ambiguous.
    const Descriptor other = jitter(alice, rng, 0.70f);
    REQUIRE(g.record_analysis(image("p2"), {face_with(other)}, context(), false));
    const auto amb = g.identify({between(alice, other, 0.5f)}, context());
    CHECK(amb[0].decision == Decision::ambiguous);
    CHECK_FALSE(amb[0].person);
    candidates = g.merge_candidates(context());
    REQUIRE(candidates.size() == 1);  // the 0.70 stranger is nobody's candidate
    CHECK(candidates[0].stranger.public_id == u);

    // The stranger tier: a face 0.52 from the 0.70 stranger (beyond the
    // threshold, within 0.53) and 0.75+ from Alice joins that stranger
    // instead of making a third; one 0.9 from everybody makes a new one.
    const Descriptor again = jitter(other, rng, 0.52f);
    REQUIRE(descriptor_distance(again, alice) > c.threshold);
    const auto seen = g.record_analysis(image("p3"), {face_with(again)}, context(), false);
    REQUIRE(seen);
    CHECK((*seen)[0].decision == Decision::unknown);
    CHECK_FALSE((*seen)[0].new_person);
    REQUIRE((*seen)[0].person);
    const auto other_id = g.identify({other}, context())[0].person;
    REQUIRE(other_id);
    CHECK((*seen)[0].person->public_id == other_id->public_id);
    const auto far = g.record_analysis(image("p4"), {face_with(jitter(alice, rng, 0.9f))}, context(), false);
    REQUIRE(far);
    CHECK((*far)[0].new_person);
    CHECK(db_int(db, "SELECT count(*) FROM persons WHERE kind = 'unknown'") == 3);
    // The tier's reach is the calibration's stranger threshold.
    const Descriptor near_v = jitter(between(other, again, 0.5f), rng, 0.50f);  // 0.50 from the stranger's mean
    CHECK(g.identify({near_v}, context())[0].person->public_id == other_id->public_id);
    IdentifyContext no_tier = context();
    no_tier.calibration.stranger_threshold = 0;  // stranger_limit() = the threshold
    CHECK(stranger_limit(no_tier.calibration) == Approx(0.45f));
    const auto strict = g.identify({near_v}, no_tier);
    CHECK(strict[0].decision == Decision::unknown);
    CHECK_FALSE(strict[0].person);
}

TEST_CASE("gallery: two connections writing at once lose nothing and never fail busy", "[gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    db.open();
    std::atomic<int> failures{0};
    std::mutex mu;
    std::string messages;
    auto writer = [&](int who) {
        try {
            const auto gallery = db.open();
            Gallery& g = *gallery;
            std::mt19937 rng(100 + who);
            for (int i = 0; i < 60; ++i) {
                const std::string tag = std::to_string(who) + "-" + std::to_string(i);
                if (i % 2 == 0)
                    g.enroll("P" + tag, {sample(random_descriptor(rng), "s" + tag)}, emb);
                else
                    g.record_analysis(image("i" + tag), {face_with(random_descriptor(rng))}, context(), false);
            }
        } catch (const std::exception& e) {
            ++failures;
            std::lock_guard<std::mutex> lock(mu);
            messages += "writer " + std::to_string(who) + ": " + e.what() + "\n";
        }
    };
    std::thread a(writer, 1), b(writer, 2), c(writer, 3);
    a.join();
    b.join();
    c.join();
    INFO(messages);
    CHECK(failures == 0);
    CHECK(db_int(db, "SELECT count(*) FROM persons WHERE kind = 'known'") == 90);
    CHECK(db_int(db, "SELECT count(*) FROM images") == 90);
    CHECK(db_int(db, "SELECT count(*) FROM detections") == 90);
}
