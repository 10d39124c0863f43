// tests/test_cli_gallery.cpp — the gallery commands end to end: the real
// faceq binary on real photos (../shared/data), each case with its own home
// (a TempDir whose models/ is a symlink to the test home's models), checking
// stdout records, exit codes, stderr, and the database itself (sqlite3):
// enroll, identification in analyze, --store and skipping, search, stats,
// persons, prune, cluster, names, a deployed calibration, another embedder,
// two processes writing at once, and kill -9 in the middle of a run.
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "faceq/identity/calibration.hpp"
#include "json_lines.hpp"
#include "test_gallery_db.hpp"
#include "test_models.hpp"
#include "test_sqlite.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

const auto bbt = [] { return data_dir() / "faceapi_bbt" / "examples" / "images"; };
const auto lfw = [] { return data_dir() / "lfw-dev" / "lfw-deepfunneled"; };
const std::vector<std::string> characters = {"amy",   "bernadette", "howard",  "leonard",
                                             "penny", "raj",        "sheldon", "stuart"};

// A fresh home sharing the test home's models, its gallery on `engine`
// (test_gallery_db.hpp): the home's SQLite file, or a fresh PostgreSQL
// database that every faceq run gets as FACEQ_DB.
class GalleryHome {
public:
    explicit GalleryHome(const std::string& engine = "sqlite") : db_(engine, dir_.path()) {
        std::filesystem::create_directory_symlink(test_home().models_dir(), dir_ / "models");
    }
    std::string root() const { return dir_.path().string(); }
    const TestGalleryDb& db() const { return db_; }
    // The gallery was created (SQLite: its file; PostgreSQL: faceq's schema).
    bool gallery_exists() const {
        return db_.postgres() ? db_int(db_, "SELECT count(*) FROM pg_namespace WHERE nspname = 'faceq'") > 0
                              : std::filesystem::exists(db_.location());
    }
    std::filesystem::path operator/(const std::string& name) const { return dir_ / name; }
    // FACEQ_DB for PostgreSQL; nothing for SQLite.
    std::vector<std::string> env() const { return db_.env(); }

    CommandResult run(std::vector<std::string> args,
                      std::chrono::milliseconds timeout = std::chrono::minutes(3)) const {
        args.insert(args.begin(), {"--home", root()});
        return run_faceq(args, {}, env(), timeout);
    }

private:
    TempDir dir_;
    TestGalleryDb db_;
};

// The database is whole and holds no duplicates.
void check_consistent(const TestGalleryDb& db) {
    if (!db.postgres()) {  // PostgreSQL enforces its foreign keys as it goes
        CHECK(db_text(db, "PRAGMA integrity_check") == "ok");
        CHECK(db_int(db, "SELECT count(*) FROM pragma_foreign_key_check") == 0);
    }
    CHECK(db_int(db,
                 "SELECT count(*) FROM (SELECT 1 FROM samples GROUP BY person_id, embedder, source_sha256, box_x,"
                 " box_y HAVING count(*) > 1) AS t") == 0);
    CHECK(db_int(db, "SELECT count(*) FROM (SELECT 1 FROM images GROUP BY sha256, models HAVING count(*) > 1) AS t") ==
          0);
    CHECK(db_int(db,
                 "SELECT count(*) FROM (SELECT 1 FROM detections GROUP BY image_id, box_x, box_y, box_w, box_h"
                 " HAVING count(*) > 1) AS t") == 0);
}

// The persons' public ids in id order, comma-separated.
std::string public_ids(const TestGalleryDb& db) {
    return db_text(db, db.postgres()
                           ? "SELECT string_agg(public_id, ',' ORDER BY id) FROM persons"
                           : "SELECT group_concat(public_id) FROM (SELECT public_id FROM persons ORDER BY id)");
}

// A folder per person with symlinks to `per_person` photos of each.
std::filesystem::path person_folders(const GalleryHome& home, const std::vector<std::string>& who,
                                     const std::function<std::filesystem::path(const std::string&, int)>& photo,
                                     int per_person) {
    const auto root = home / "people";
    for (const auto& name : who) {
        std::filesystem::create_directories(root / name);
        for (int k = 1; k <= per_person; ++k) {
            const auto src = photo(name, k);
            std::filesystem::create_symlink(src, root / name / src.filename());
        }
    }
    return root;
}

std::filesystem::path bbt_photo(const std::string& who, int k) {
    return bbt() / who / (who + std::to_string(k) + ".png");
}

// The photos of one LFW person, sorted (numbering has gaps: a subset of LFW).
std::vector<std::filesystem::path> lfw_files(const std::string& who) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(lfw() / who)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

// The first `count` LFW people (by name) with at least `n` photos.
std::vector<std::string> lfw_people(std::size_t n, std::size_t count) {
    std::vector<std::string> out;
    std::vector<std::filesystem::path> dirs;
    for (const auto& e : std::filesystem::directory_iterator(lfw())) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) {
        if (lfw_files(d.filename().string()).size() >= n) out.push_back(d.filename().string());
        if (out.size() == count) break;
    }
    return out;
}

std::filesystem::path lfw_photo(const std::string& who, int k) {
    return lfw_files(who).at(static_cast<std::size_t>(k - 1));
}

// Runs faceq in the background and kills it with SIGKILL as soon as `ready()`
// holds (polled every 10 ms), i.e. in the middle of its work. Returns false
// when it ended by itself first (or `limit` passed).
bool kill_when(const GalleryHome& home, std::vector<std::string> args, const std::function<bool()>& ready,
               std::chrono::seconds limit = std::chrono::seconds(120)) {
    args.insert(args.begin(), {FACEQ_BINARY, "--home", home.root()});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto env = detail::child_environment(home.env());
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string out = (home / "killed.out").string(), err = (home / "killed.err").string();
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool killed = false;
    for (;;) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) break;  // finished by itself
        if (ready() || std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return killed;
}

}  // namespace

TEST_CASE("enroll --dir, then analyze names known people; search and stats", "[cli][gallery]") {
    REQUIRE_MODELS();
    CLI_GALLERY_ENGINE(engine);
    GalleryHome home(engine);
    // Photos 1-4 of each character enrolled; photo 5 identified.
    const auto people = person_folders(home, characters, bbt_photo, 4);
    const auto enroll = home.run({"enroll", "--dir", people.string(), "--jobs", "2"});
    INFO("stderr: " << enroll.err);
    REQUIRE(enroll.exit_code == 0);
    const auto persons = json_lines(enroll.out);
    REQUIRE(persons.size() == 8);
    for (std::size_t i = 0; i < 8; ++i) {
        CHECK(persons[i]["person"] == characters[i]);
        CHECK(persons[i]["added"] == 4);
        CHECK(persons[i]["created"] == true);
        CHECK(std::regex_match(persons[i]["person_id"].get<std::string>(), std::regex("person_[0-9]+_[0-9]{4}")));
    }

    // Group still last: the characters in it are recognised, strangers are not named.
    std::vector<std::string> args{"analyze", "--jobs", "2"};
    for (const auto& c : characters) args.push_back(bbt_photo(c, 5).string());
    args.push_back((bbt() / "bbt4.jpg").string());
    const auto analyzed = home.run(args);
    REQUIRE(analyzed.exit_code == 0);
    std::size_t right = 0, wrong = 0;
    const auto records = json_lines(analyzed.out);
    REQUIRE(records.size() == 9);
    for (std::size_t i = 0; i < 8; ++i) {
        const auto& faces = records[i]["faces"];
        REQUIRE(faces.size() == 1);
        const auto& f = faces[0];
        INFO(f.dump());
        CHECK(f.contains("identity"));
        CHECK(f.contains("person_id"));
        CHECK(f["distance"].is_number());
        CHECK(f["margin"].is_number());
        if (f["decision"] == "known")
            (f["identity"] == characters[i] ? right : wrong) += 1;
        else
            CHECK(f["person_id"].is_null());  // nothing stored: a stranger has no id
        CHECK(records[i]["identification"]["calibration"] == "default");
    }
    WARN("BBT: " << right << " of 8 held-out crops named right, " << wrong << " wrong");
    CHECK(right >= 6);  // measured: 8
    CHECK(wrong == 0);
    CHECK_FALSE(std::filesystem::exists(home / "registry"));

    std::size_t named = 0;
    for (const auto& f : records[8]["faces"]) named += f["decision"] == "known";
    CHECK(named >= 3);  // measured: 5 of 6 faces

    const auto by_name = home.run({"search", "--name", "SHEL"});
    REQUIRE(by_name.exit_code == 0);
    const auto found = json_lines(by_name.out);
    REQUIRE(found.size() == 1);
    CHECK(found[0]["name"] == "sheldon");
    CHECK(found[0]["samples"] == 4);
    CHECK(found[0]["kind"] == "known");
    CHECK(json_lines(home.run({"search", "--name", ""}).out).size() == 8);
    const auto none = home.run({"search", "--name", "nobody"});
    CHECK(none.exit_code == 0);
    CHECK(none.out.empty());

    const auto by_face = home.run({"search", "--face", bbt_photo("howard", 5).string(), "--top", "3"});
    REQUIRE(by_face.exit_code == 0);
    const auto near = json_lines(by_face.out);
    REQUIRE(near.size() == 1);
    REQUIRE(near[0]["matches"].size() == 3);
    CHECK(near[0]["matches"][0]["name"] == "howard");
    CHECK(near[0]["matches"][0]["distance"] < near[0]["matches"][1]["distance"]);

    const auto stats = home.run({"stats", "--format", "json"});
    REQUIRE(stats.exit_code == 0);
    const auto s = json::parse(stats.out);
    CHECK(s["persons"]["known"] == 8);
    CHECK(s["persons"]["unknown"] == 0);
    CHECK(s["samples"] == 32);
    CHECK(s["detections"]["total"] == 0);  // nothing stored
    CHECK(s["detections_per_day"].size() == 30);
    CHECK(s["database"]["bytes"] > 0);
    CHECK(s["embedder"]["mismatch"] == false);
    CHECK(s["embedder"]["installed"].get<std::string>().find('@') != std::string::npos);
    const auto text = home.run({"stats"});
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("8 known") != std::string::npos);
}

TEST_CASE("analyze --store: stable stranger ids, unchanged photos skipped, --force, then persons care",
          "[cli][gallery]") {
    REQUIRE_MODELS();
    CLI_GALLERY_ENGINE(engine);
    GalleryHome home(engine);
    // One face in each (checked below).
    const std::string a1 = (lfw() / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").string(),
                      a2 = (lfw() / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg").string(),
                      a3 = (lfw() / "Aaron_Peirsol" / "Aaron_Peirsol_0003.jpg").string(),
                      b1 = (lfw() / "Abdullah_Gul" / "Abdullah_Gul_0013.jpg").string();
    // No gallery yet and no --store: no identity fields, nothing created.
    const auto plain = home.run({"analyze", a1});
    REQUIRE(plain.exit_code == 0);
    CHECK_FALSE(json_lines(plain.out)[0]["faces"][0].contains("identity"));
    CHECK_FALSE(home.gallery_exists());

    const auto first = home.run({"analyze", "--store", "--jobs", "2", a1, a2, b1});
    INFO("stderr: " << first.err);
    REQUIRE(first.exit_code == 0);
    auto r = json_lines(first.out);
    REQUIRE(r.size() == 3);
    for (const auto& rec : r) {
        CHECK(rec["stored"] == true);
        REQUIRE(rec["faces"].size() == 1);
    }
    const auto id_a = r[0]["faces"][0]["person_id"].get<std::string>();
    CHECK(std::regex_match(id_a, std::regex("unknown_[0-9]+_[0-9]{4}")));  // the reference's shape
    CHECK(r[0]["faces"][0]["identity"] == "unknown");
    CHECK(r[1]["faces"][0]["person_id"] == id_a);  // the same stranger again
    CHECK(r[1]["faces"][0]["decision"] == "unknown");
    CHECK(r[2]["faces"][0]["person_id"] != id_a);
    const auto detections = db_int(home.db(), "SELECT count(*) FROM detections");
    CHECK(detections >= 3);

    // A cron run over the same photos: nothing analysed again.
    const auto again = home.run({"analyze", "--store", a1, a2, b1});
    REQUIRE(again.exit_code == 0);
    for (const auto& rec : json_lines(again.out)) CHECK(rec["skipped"] == "unchanged");
    CHECK(db_int(home.db(), "SELECT count(*) FROM detections") == detections);
    // --force analyses them again and replaces, not duplicates.
    const auto forced = home.run({"analyze", "--store", "--force", a1, a2});
    REQUIRE(forced.exit_code == 0);
    CHECK(json_lines(forced.out)[0]["faces"][0]["person_id"] == id_a);
    CHECK(db_int(home.db(), "SELECT count(*) FROM detections") == detections);
    check_consistent(home.db());

    // The stranger gets a name: a new photo of him is now known.
    const auto renamed = home.run({"persons", "rename", id_a, "Aaron Peirsol"});
    REQUIRE(renamed.exit_code == 0);
    CHECK(json_lines(renamed.out)[0]["person_id"] == id_a);
    CHECK(json_lines(renamed.out)[0]["kind"] == "known");
    const auto named = home.run({"analyze", a3});
    REQUIRE(named.exit_code == 0);
    const auto f3 = json_lines(named.out)[0]["faces"][0];
    INFO(f3.dump());
    CHECK(f3["identity"] == "Aaron Peirsol");
    CHECK(f3["person_id"] == id_a);
    CHECK(f3["decision"] == "known");

    // Listing: Aaron (2 detections) and the other stranger (1), in each order, paged.
    const auto id_b = r[2]["faces"][0]["person_id"].get<std::string>();
    const auto listed = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"persons", "list"});
        const auto res = home.run(args);
        INFO(res.err);
        REQUIRE(res.exit_code == 0);
        std::vector<std::string> ids;
        for (const auto& p : json_lines(res.out)) ids.push_back(p["person_id"].get<std::string>());
        return ids;
    };
    CHECK(listed({}) == std::vector<std::string>{id_a, id_b});  // known by name, then strangers
    CHECK(listed({"--order", "detections"}) == std::vector<std::string>{id_a, id_b});
    CHECK(listed({"--order", "detections", "--limit", "1"}) == std::vector<std::string>{id_a});
    CHECK(listed({"--offset", "1", "--limit", "5"}) == std::vector<std::string>{id_b});
    CHECK(listed({"--kind", "unknown"}) == std::vector<std::string>{id_b});
    CHECK(listed({"--text", "PEIRSOL"}) == std::vector<std::string>{id_a});
    CHECK(home.run({"persons", "list", "--limit", "0"}).exit_code == 2);
    CHECK(home.run({"persons", "list", "--order", "age"}).exit_code == 2);

    // Merge the other stranger into Aaron (a deliberate mistake), then delete him.
    const auto merged = home.run({"persons", "merge", id_b, "aaron peirsol"});
    REQUIRE(merged.exit_code == 0);
    CHECK(json_lines(merged.out)[0]["detections"] == detections);
    CHECK(home.run({"persons", "show", id_b}).exit_code == 1);
    const auto deleted = home.run({"persons", "delete", id_a});
    REQUIRE(deleted.exit_code == 0);
    CHECK(json_lines(deleted.out)[0]["deleted"] == true);
    CHECK(db_int(home.db(), "SELECT count(*) FROM persons") == 0);
    CHECK(db_int(home.db(), "SELECT count(*) FROM detections WHERE person_id IS NULL") == detections);
    const auto missing = home.run({"persons", "delete", "Nobody"});
    CHECK(missing.exit_code == 1);
    CHECK(missing.err.find("no person 'Nobody'") != std::string::npos);

    // Old detections go; the images stay recorded.
    db_exec(home.db(), "UPDATE detections SET detected_at = detected_at - 40 * 86400");
    const auto dry = home.run({"prune", "--older-than", "30d", "--dry-run"});
    REQUIRE(dry.exit_code == 0);
    CHECK(json_lines(dry.out)[0]["detections_deleted"] == detections);
    CHECK(db_int(home.db(), "SELECT count(*) FROM detections") == detections);
    const auto pruned = home.run({"prune", "--older-than", "30d"});
    REQUIRE(pruned.exit_code == 0);
    CHECK(db_int(home.db(), "SELECT count(*) FROM detections") == 0);
    CHECK(db_int(home.db(), "SELECT count(*) FROM images") == 3);
    CHECK(home.run({"prune", "--older-than", "30 days"}).exit_code == 2);
    check_consistent(home.db());
}

TEST_CASE("cluster joins one stranger's detections into one person", "[cli][gallery]") {
    REQUIRE_MODELS();
    CLI_GALLERY_ENGINE(engine);
    GalleryHome home(engine);
    // A strict threshold while storing makes every face a new stranger.
    std::vector<std::string> args{"analyze", "--store", "--threshold", "0.1", "--stranger-threshold", "0.1",
                                  "--jobs",  "2"};
    // 4 + 3 photos of the two; YuNet also finds two other people behind them
    // (measured: 9 faces).
    for (const auto& who : {"Aaron_Peirsol", "Abdullah_Gul"})
        for (const auto& f : lfw_files(who)) args.push_back(f.string());
    REQUIRE(home.run(args).exit_code == 0);
    CHECK(db_int(home.db(), "SELECT count(*) FROM persons WHERE kind = 'unknown'") == 9);
    // Abdullah_Gul_0016 is 0.49-0.52 from his other two photos (measured): a
    // looser threshold than the default 0.47 joins him.
    const auto c = home.run({"cluster", "--threshold", "0.55"});
    INFO("stderr: " << c.err);
    REQUIRE(c.exit_code == 0);
    const auto r = json_lines(c.out)[0];
    CHECK(r["detections"] == 9);
    CHECK(r["clusters"] == 4);  // Aaron Peirsol's 4, Abdullah Gul's 3, and the two others alone
    CHECK(db_int(home.db(), "SELECT count(*) FROM persons WHERE kind = 'unknown'") == 4);
    CHECK(db_int(home.db(), "SELECT max(n) FROM (SELECT count(*) AS n FROM detections GROUP BY person_id) AS t") == 4);
    const auto before = public_ids(home.db());
    REQUIRE(home.run({"cluster", "--threshold", "0.55"}).exit_code == 0);
    CHECK(public_ids(home.db()) == before);
    check_consistent(home.db());

    // Aaron Peirsol enrolled by name: the stranger his four photos made is
    // probably him — a merge candidate, listed (and by cluster), not merged.
    const auto aaron_id = db_text(home.db(),
                                  "SELECT p.public_id FROM persons p JOIN detections d ON d.person_id = p.id "
                                  "JOIN images i ON i.id = d.image_id WHERE i.path LIKE '%Aaron_Peirsol%' "
                                  "ORDER BY d.box_w DESC LIMIT 1");
    REQUIRE(home.run({"enroll", "--name", "Aaron", "--pick", "largest", lfw_files("Aaron_Peirsol")[0].string()})
                .exit_code == 0);
    const auto listed = home.run({"persons", "candidates"});
    INFO(listed.err);
    REQUIRE(listed.exit_code == 0);
    const auto candidates = json_lines(listed.out);
    REQUIRE(candidates.size() == 1);
    CHECK(candidates[0]["type"] == "candidate");
    CHECK(candidates[0]["stranger"] == aaron_id);
    CHECK(candidates[0]["name"] == "Aaron");
    CHECK(candidates[0]["distance"].get<double>() < 0.49);
    CHECK(candidates[0]["merge"].get<std::string>().rfind("faceq persons merge " + aaron_id + " person_", 0) == 0);
    CHECK(db_int(home.db(), "SELECT count(*) FROM persons WHERE kind = 'unknown'") == 4);
    const auto clustered = json_lines(home.run({"cluster"}).out);
    REQUIRE(clustered.size() == 2);
    CHECK(clustered[0]["threshold"] == 0.53);  // the stranger threshold by default
    CHECK(clustered[1] == candidates[0]);
    // Merged when asked.
    REQUIRE(home.run({"persons", "merge", aaron_id, "Aaron"}).exit_code == 0);
    CHECK(json_lines(home.run({"persons", "candidates"}).out).empty());
    check_consistent(home.db());
}

TEST_CASE("persons faces and reject: not this person, on real photos; undo; errors", "[cli][gallery][reject]") {
    REQUIRE_MODELS();
    CLI_GALLERY_ENGINE(engine);
    GalleryHome home(engine);
    const auto aaron = lfw_files("Aaron_Peirsol");
    const auto gul = lfw_files("Abdullah_Gul");
    REQUIRE(home.run({"enroll", "--name", "Aaron", aaron[0].string(), aaron[1].string()}).exit_code == 0);
    // His third photo, stored: named Aaron, with the detection's id in the record.
    const auto stored = home.run({"analyze", "--store", aaron[2].string()});
    INFO("stderr: " << stored.err);
    REQUIRE(stored.exit_code == 0);
    const auto face = json_lines(stored.out).at(0)["faces"].at(0);
    REQUIRE(face["identity"] == "Aaron");
    REQUIRE(face["detection_id"].is_number_integer());
    const std::string det = std::to_string(face["detection_id"].get<std::int64_t>());

    auto faces_of = [&](const std::string& who) {
        const auto r = home.run({"persons", "faces", who});
        INFO("stderr: " << r.err);
        REQUIRE(r.exit_code == 0);
        return json_lines(r.out);
    };
    auto listed = faces_of("Aaron");
    REQUIRE(listed.size() == 2);
    CHECK(listed[0]["type"] == "face");
    CHECK(std::to_string(listed[0]["detection_id"].get<std::int64_t>()) == det);
    CHECK(listed[0]["image"] == aaron[2].string());
    CHECK(listed[0]["decision"] == "known");
    CHECK(listed[0]["rejected"] == false);
    CHECK(listed[0]["distance"].get<double>() < 0.45);
    CHECK(listed[1]["type"] == "faces");
    CHECK(listed[1]["total"] == 1);

    // Not this person: he leaves, listed as rejected; `show` counts no detection.
    const auto rejected = home.run({"persons", "reject", "Aaron", det});
    INFO("stderr: " << rejected.err);
    REQUIRE(rejected.exit_code == 0);
    CHECK(json_lines(rejected.out).at(0)["detections"] == 0);
    CHECK(std::to_string(json_lines(rejected.out).at(0)["rejected"].get<std::int64_t>()) == det);
    listed = faces_of("Aaron");
    CHECK(listed.at(0)["rejected"] == true);
    CHECK(json_lines(home.run({"persons", "show", "Aaron"}).out).at(0)["detections"] == 0);
    // The same photo analysed again is not named Aaron (the same descriptor:
    // distance 0 to the rejected one), and stays listed as rejected.
    const auto again = home.run({"analyze", "--store", "--force", aaron[2].string()});
    REQUIRE(again.exit_code == 0);
    const auto face2 = json_lines(again.out).at(0)["faces"].at(0);
    INFO(face2.dump());
    CHECK(face2["identity"] == "unknown");
    CHECK(face2["person_id"] != face["person_id"]);
    const std::string det2 = std::to_string(face2["detection_id"].get<std::int64_t>());
    listed = faces_of("Aaron");
    CHECK(std::to_string(listed.at(0)["detection_id"].get<std::int64_t>()) == det2);
    CHECK(listed.at(0)["rejected"] == true);
    // His other photos are still his.
    const auto other = home.run({"analyze", aaron[3].string()});
    CHECK(json_lines(other.out).at(0)["faces"].at(0)["identity"] == "Aaron");

    // A stranger's face rejected: cluster does not give it back.
    const auto strangers = home.run({"analyze", "--store", gul[0].string(), gul[1].string(), gul[2].string()});
    REQUIRE(strangers.exit_code == 0);
    const auto gul_records = json_lines(strangers.out);
    const std::string sid = gul_records.at(0)["faces"].at(0)["person_id"];
    std::vector<std::string> gul_dets;
    for (const auto& r : gul_records)
        for (const auto& f : r["faces"])
            if (f["person_id"] == sid) gul_dets.push_back(std::to_string(f["detection_id"].get<std::int64_t>()));
    REQUIRE(gul_dets.size() >= 2);
    REQUIRE(home.run({"persons", "reject", sid, gul_dets[1]}).exit_code == 0);
    REQUIRE(home.run({"cluster", "--threshold", "0.6"}).exit_code == 0);
    const std::string owner_sql =
        "SELECT coalesce((SELECT p.public_id FROM detections d JOIN persons p ON p.id ="
        " d.person_id WHERE d.id = " +
        gul_dets[1] + "), '-')";
    CHECK(db_text(home.db(), owner_sql) != sid);
    CHECK(db_text(home.db(),
                  "SELECT coalesce((SELECT p.public_id FROM detections d JOIN persons p ON p.id ="
                  " d.person_id WHERE d.id = " +
                      gul_dets[0] + "), '-')") == sid);

    // Undo: his again, as it was.
    const auto undone = home.run({"persons", "reject", "Aaron", det2, "--undo"});
    INFO("stderr: " << undone.err);
    REQUIRE(undone.exit_code == 0);
    CHECK(json_lines(undone.out).at(0)["detections"] == 1);
    listed = faces_of("Aaron");
    CHECK(listed.at(0)["rejected"] == false);
    CHECK(listed.at(0)["decision"] == "known");
    REQUIRE(home.run({"persons", "reject", sid, gul_dets[1], "--undo"}).exit_code == 0);
    CHECK(db_text(home.db(), owner_sql) == sid);

    // Errors: what, which, why; usage errors exit 2, missing things 1.
    const auto nobody = home.run({"persons", "reject", "Nobody", det2});
    CHECK(nobody.exit_code == 1);
    CHECK(nobody.err.find("no person 'Nobody'") != std::string::npos);
    const auto no_det = home.run({"persons", "reject", "Aaron", "999999"});
    CHECK(no_det.exit_code == 1);
    CHECK(no_det.err.find("no detection 999999") != std::string::npos);
    const auto not_his = home.run({"persons", "reject", "Aaron", gul_dets[0]});
    CHECK(not_his.exit_code == 2);
    CHECK(not_his.err.find("is not ") != std::string::npos);
    const auto not_rejected = home.run({"persons", "reject", "Aaron", det2, "--undo"});
    CHECK(not_rejected.exit_code == 2);
    CHECK(not_rejected.err.find("was not rejected") != std::string::npos);
    CHECK(home.run({"persons", "reject", "Aaron", "abc"}).exit_code == 2);
    CHECK(home.run({"persons", "faces", "Nobody"}).exit_code == 1);
    CHECK(home.run({"persons", "faces", "Aaron", "--limit", "0"}).exit_code == 2);
    check_consistent(home.db());
}

TEST_CASE("names with quotes, unicode and SQL are kept; empty and over-long names are refused", "[cli][gallery]") {
    REQUIRE_MODELS();
    GalleryHome home;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"Robert'); DROP TABLE persons;--", "amy"}, {"Zoë \"Zed\" Ñandú", "penny"}, {"王小明", "raj"}};
    for (const auto& [name, who] : cases) {
        const auto r = home.run({"enroll", "--name", name, bbt_photo(who, 1).string()});
        INFO(name << ": " << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(json_lines(r.out)[0]["person"] == name);
    }
    CHECK(db_int(home.db(), "SELECT count(*) FROM persons") == 3);
    CHECK(json_lines(home.run({"search", "--name", "drop TABLE"}).out).size() == 1);
    CHECK(json_lines(home.run({"search", "--name", "ZOË"}).out).at(0)["name"] == "Zoë \"Zed\" Ñandú");
    CHECK(json_lines(home.run({"search", "--name", "小明"}).out).size() == 1);
    const auto named = home.run({"analyze", bbt_photo("raj", 2).string()});
    CHECK(json_lines(named.out)[0]["faces"][0]["identity"] == "王小明");

    for (const std::string& bad : {std::string(""), std::string("   "), std::string(129, 'x')}) {
        const auto r = home.run({"enroll", "--name", bad, bbt_photo("howard", 1).string()});
        INFO("name of " << bad.size() << " bytes: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("faceq: error: a person's name") != std::string::npos);
        CHECK(r.out.empty());
    }
    CHECK(home.run({"enroll", "--name", std::string(128, 'x'), bbt_photo("howard", 1).string()}).exit_code == 0);
    CHECK(home.run({"persons", "rename", "王小明", ""}).exit_code == 2);
    check_consistent(home.db());
}

TEST_CASE("enroll: one face per photo unless --pick largest; re-enrolling is a no-op", "[cli][gallery]") {
    REQUIRE_MODELS();
    GalleryHome home;
    const std::string group = (bbt() / "bbt1.jpg").string();
    const std::string dog = (data_dir() / "negatives" / "clean" / "dlib_dog.jpg").string();
    const auto r = home.run({"enroll", "--name", "Leonard", group, dog, bbt_photo("leonard", 1).string()});
    REQUIRE(r.exit_code == 1);
    const auto rec = json_lines(r.out).at(0);
    CHECK(rec["added"] == 1);
    REQUIRE(rec["failed"].size() == 2);
    CHECK(rec["failed"][0]["error"]["message"].get<std::string>().find("faces in") != std::string::npos);
    CHECK(rec["failed"][1]["error"]["message"].get<std::string>().find("no face found") != std::string::npos);
    CHECK(r.err.find("--pick largest") != std::string::npos);

    const auto picked = home.run({"enroll", "--name", "Leonard", "--pick", "largest", group});
    REQUIRE(picked.exit_code == 0);
    CHECK(json_lines(picked.out)[0]["added"] == 1);
    const auto again = home.run({"enroll", "--name", "leonard", bbt_photo("leonard", 1).string(), group});
    REQUIRE(again.exit_code == 0);
    const auto a = json_lines(again.out)[0];
    CHECK(a["added"] == 0);
    CHECK(a["person"] == "Leonard");
    REQUIRE(a["skipped"].size() == 2);
    CHECK(a["skipped"][0]["reason"] == "already enrolled");
    const auto other = home.run({"enroll", "--name", "Sheldon", bbt_photo("leonard", 1).string()});
    CHECK(json_lines(other.out)[0]["skipped"][0]["reason"] == "already enrolled as 'Leonard'");
    CHECK(db_int(home.db(), "SELECT count(*) FROM samples") == 2);
    CHECK(home.run({"enroll", bbt_photo("leonard", 1).string()}).exit_code == 2);  // no --name nor --dir
    // enroll takes analyze's detection options (the gallery's pipeline must be reachable).
    const auto no5 = home.run(
        {"enroll", "--name", "Penny", "--detector", "hog", "--landmarks", "5", bbt_photo("penny", 1).string()});
    CHECK(no5.exit_code == 2);
    CHECK_THAT(no5.err, Catch::Contains("--landmarks 5 needs a detector that gives 5 points"));
    CHECK(db_int(home.db(), "SELECT count(*) FROM samples") == 2);
}

TEST_CASE("a deployed calibration is used when its embedder is installed; another embedder's gallery is reported",
          "[cli][gallery]") {
    REQUIRE_MODELS();
    GalleryHome home;
    const auto installed = find_installed(test_home().models_dir(), test_manifest(), role::embedder);
    REQUIRE(installed);
    const EmbedderIdentity embedder = embedder_identity(*installed);  // the default pipeline's descriptors
    REQUIRE(home.run({"enroll", "--name", "Amy", bbt_photo("amy", 1).string()}).exit_code == 0);

    auto deploy = [&](const std::string& sha) {
        const auto model = home / "registry" / "models" / "face-recognition";
        std::filesystem::create_directories(model / "versions" / "3" / "artifacts");
        write_text(model / "model.json", R"({"aliases": {"production": 3}, "next_version": 4})");
        write_text(model / "versions" / "3" / "version.json", R"({"version": 3, "metrics": {}})");
        write_text(model / "versions" / "3" / "artifacts" / "calibration.json", json{{"embedder", embedder.id},
                                                                                     {"embedder_sha256", sha},
                                                                                     {"threshold", 0.42},
                                                                                     {"margin", 0.05},
                                                                                     {"far_target", 0.001},
                                                                                     {"aggregation", "mean_descriptor"}}
                                                                                    .dump());
    };
    deploy(embedder.sha256);
    const auto used = home.run({"analyze", bbt_photo("amy", 2).string()});
    REQUIRE(used.exit_code == 0);
    const auto id = json_lines(used.out)[0]["identification"];
    CHECK(id["calibration"] == "face-recognition v3");
    CHECK(id["threshold"] == 0.42);
    CHECK(id["margin"] == 0.05);
    // --far still works: the deployed file has no impostor table, the default
    // one is used. With one person, 0.1% of strangers allows a wide threshold.
    const auto far = home.run({"analyze", "--far", "0.001", bbt_photo("amy", 2).string()});
    REQUIRE(far.exit_code == 0);
    const auto far_id = json_lines(far.out)[0]["identification"];
    CHECK(far_id["calibration"] == "face-recognition v3, --far 0.001");
    CHECK(far_id["threshold"].get<double>() == Approx(threshold_for_far(default_calibration(), 0.001, 1)).margin(1e-4));

    deploy(std::string(64, '0'));
    const auto refused = home.run({"analyze", bbt_photo("amy", 2).string()});
    REQUIRE(refused.exit_code == 0);
    CHECK(refused.err.find("was measured with embedder") != std::string::npos);
    CHECK(json_lines(refused.out)[0]["identification"]["calibration"] == "default");

    // Samples from another embedder are reported and never compared.
    db_exec(home.db(), "UPDATE samples SET embedder = 'dlib_face_recognition_resnet_model_v1@0123456789ab'");
    const auto foreign = home.run({"analyze", bbt_photo("amy", 2).string()});
    REQUIRE(foreign.exit_code == 0);
    CHECK(foreign.err.find("computed by embedder 'dlib_face_recognition_resnet_model_v1@0123456789ab'") !=
          std::string::npos);
    const auto f = json_lines(foreign.out)[0]["faces"][0];
    CHECK(f["decision"] == "unknown");
    CHECK(f["distance"].is_null());
    CHECK(json::parse(home.run({"stats", "--format", "json"}).out)["embedder"]["mismatch"] == true);
}

TEST_CASE("two faceq processes writing at once: no lost rows, no 'database is locked'", "[cli][gallery]") {
    REQUIRE_MODELS();
    GALLERY_ENGINE(engine);
    GalleryHome home(engine);
    const auto people = person_folders(home, characters, bbt_photo, 5);
    std::vector<std::string> analyze{"analyze", "--store", "--jobs", "1"};
    for (const auto& p : lfw_people(1, 24)) analyze.push_back(lfw_files(p).front().string());
    // Create the database first, so both start writing to the same file.
    REQUIRE(home.run({"enroll", "--name", "First", bbt_photo("amy", 1).string()}).exit_code == 0);
    auto a = std::async(std::launch::async, [&] { return home.run(analyze); });
    auto e = std::async(std::launch::async, [&] {
        return home.run({"enroll", "--dir", people.string(), "--jobs", "1"});
    });
    const auto ra = a.get(), re = e.get();
    INFO("analyze stderr: " << ra.err << "\nenroll stderr: " << re.err);
    CHECK(ra.exit_code == 0);
    CHECK(re.exit_code == 0);
    CHECK(ra.err.find("locked") == std::string::npos);
    CHECK(re.err.find("locked") == std::string::npos);
    std::size_t faces = 0;
    for (const auto& rec : json_lines(ra.out)) faces += rec["faces"].size();
    std::int64_t added = 0;
    for (const auto& rec : json_lines(re.out)) added += rec["added"].get<std::int64_t>();
    CHECK(added == 39);  // amy1 was enrolled as First
    CHECK(db_int(home.db(), "SELECT count(*) FROM images") == 24);
    CHECK(db_int(home.db(), "SELECT count(*) FROM detections") == static_cast<std::int64_t>(faces));
    CHECK(db_int(home.db(), "SELECT count(*) FROM persons WHERE kind = 'known'") == 9);
    CHECK(db_int(home.db(),
                 "SELECT count(*) FROM samples s JOIN persons p ON p.id = s.person_id WHERE p.kind = 'known'") == 40);
    check_consistent(home.db());
}

TEST_CASE("kill -9 during enroll --dir and analyze --store: consistent, and a rerun completes", "[cli][gallery]") {
    REQUIRE_MODELS();
    GALLERY_ENGINE(engine);
    GalleryHome home(engine);
    const auto who = lfw_people(2, 60);
    const auto people = person_folders(home, who, lfw_photo, 2);
    const std::vector<std::string> enroll{"enroll", "--dir", people.string(), "--jobs", "1", "--pick", "largest"};
    // Killed (SIGKILL) once 5 persons are written: in the middle of the run.
    const bool killed =
        kill_when(home, enroll, [&] { return try_query(home.db(), "SELECT count(*) FROM persons") >= 5; });
    REQUIRE(killed);
    check_consistent(home.db());
    const auto persons_before = db_int(home.db(), "SELECT count(*) FROM persons");
    const auto samples_before = db_int(home.db(), "SELECT count(*) FROM samples");
    CHECK(persons_before < 60);
    // Persons are written whole: each has all its photos that show a face.
    CHECK(db_int(home.db(),
                 "SELECT count(*) FROM (SELECT person_id FROM samples GROUP BY person_id HAVING count(*) > 2) AS t") ==
          0);
    const auto rerun = home.run(enroll);
    INFO("killed after " << persons_before << " persons; rerun stderr: " << rerun.err);
    std::int64_t skipped = 0, added = 0, failed = 0;
    for (const auto& rec : json_lines(rerun.out)) {
        skipped += static_cast<std::int64_t>(rec["skipped"].size());
        added += rec["added"].get<std::int64_t>();
        failed += static_cast<std::int64_t>(rec["failed"].size());
    }
    CHECK(skipped == samples_before);  // everything written before is recognised, not added twice
    CHECK(db_int(home.db(), "SELECT count(*) FROM samples") == samples_before + added);
    CHECK(samples_before + added + failed == 120);
    CHECK(failed <= 2);
    check_consistent(home.db());

    std::vector<std::string> analyze{"analyze", "--store", "--jobs", "1"};
    for (const auto& p : lfw_people(1, 50)) analyze.push_back(lfw_files(p).front().string());
    REQUIRE(kill_when(home, analyze, [&] { return try_query(home.db(), "SELECT count(*) FROM images") >= 5; }));
    check_consistent(home.db());
    const auto stored_before = db_int(home.db(), "SELECT count(*) FROM images");
    CHECK(stored_before < 50);
    const auto again = home.run(analyze);
    INFO("killed after " << stored_before << " images; rerun stderr: " << again.err);
    REQUIRE(again.exit_code == 0);
    std::int64_t unchanged = 0;
    for (const auto& rec : json_lines(again.out)) unchanged += rec.value("skipped", "") == "unchanged";
    CHECK(unchanged == stored_before);
    CHECK(db_int(home.db(), "SELECT count(*) FROM images") == 50);
    check_consistent(home.db());
}

TEST_CASE("enroll --dir reports a looping or dangling entry and enrolls the other persons", "[cli][gallery]") {
    REQUIRE_MODELS();
    GalleryHome home;
    const auto people = person_folders(home, {"leonard", "penny"}, bbt_photo, 1);
    std::filesystem::create_directory_symlink(people / "loop", people / "loop");
    std::filesystem::create_directory_symlink(home / "nowhere", people / "gone");
    const auto enroll = home.run({"enroll", "--dir", people.string(), "--jobs", "1"});
    INFO("stderr: " << enroll.err);
    CHECK(enroll.exit_code == 1);
    const auto records = json_lines(enroll.out);
    REQUIRE(records.size() == 4);  // sorted by folder name: gone, leonard, loop, penny
    CHECK(records[0]["person"] == "gone");
    CHECK_THAT(records[0]["error"]["message"].get<std::string>(), Catch::Contains("cannot read"));
    CHECK(records[1]["added"] == 1);
    CHECK(records[2]["person"] == "loop");
    CHECK_THAT(records[2]["error"]["message"].get<std::string>(), Catch::Contains("symbolic links"));
    CHECK(records[3]["added"] == 1);
    std::size_t error_lines = 0;
    for (std::size_t at = 0; (at = enroll.err.find("faceq: error: ", at)) != std::string::npos; ++at) ++error_lines;
    CHECK(error_lines == 2);
}

TEST_CASE("gallery copy, export, import: SQLite to PostgreSQL and back, the same answers; bad targets refused",
          "[cli][gallery]") {
    REQUIRE_MODELS();
    REQUIRE_DATA(!test_pg_url().empty(), "a PostgreSQL test server", "FACEQ_TEST_PG",
                 "tools/pg_cluster.sh start DIR, which prints the URL to set (tools/test.sh does this itself)");
    GalleryHome home;  // SQLite
    const auto people = person_folders(home, {"howard", "penny", "raj"}, bbt_photo, 2);
    REQUIRE(home.run({"enroll", "--dir", people.string()}).exit_code == 0);
    std::vector<std::string> analyze{"analyze", "--store", (bbt() / "bbt4.jpg").string()};
    for (const auto& p : lfw_people(1, 3)) analyze.push_back(lfw_files(p).front().string());
    REQUIRE(home.run(analyze).exit_code == 0);

    TempDir pg_dir;
    const TestGalleryDb pg("postgresql", pg_dir.path());
    const std::vector<std::string> on_pg{"FACEQ_DB=" + pg.location()};
    auto run_pg = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--home", home.root()});
        return run_faceq(args, {}, on_pg);
    };
    const auto copied = home.run({"gallery", "copy", "--to", pg.location()});
    INFO("stderr: " << copied.err);
    REQUIRE(copied.exit_code == 0);
    const auto c = json_lines(copied.out).at(0);
    CHECK(c["type"] == "gallery_copy");
    CHECK(c["persons"].get<int>() >= 3 + 3);
    CHECK(c["samples"].get<int>() >= 6);
    CHECK(c["images"] == 4);
    // Every detection's thumbnail and the 6 enrolled samples' (the strangers' samples show their detections').
    CHECK(c["thumbnails"] == c["detections"].get<int>() + 6);
    CHECK(c["verified"] == true);
    CHECK(c["to"].get<std::string>().rfind("postgresql://faceq@127.0.0.1:", 0) == 0);

    // The same persons, stats and answers from either database.
    CHECK(run_pg({"search", "--name", ""}).out == home.run({"search", "--name", ""}).out);
    const auto s_pg = json::parse(run_pg({"stats", "--format", "json"}).out),
               s_sq = json::parse(home.run({"stats", "--format", "json"}).out);
    for (const char* k : {"persons", "samples", "images", "detections"}) CHECK(s_pg[k] == s_sq[k]);
    CHECK(s_pg["database"]["engine"] == "postgresql");
    CHECK(s_sq["database"]["engine"] == "sqlite");
    const auto probe = bbt_photo("penny", 5).string();
    const auto a_pg = json_lines(run_pg({"analyze", probe}).out).at(0)["faces"],
               a_sq = json_lines(home.run({"analyze", probe}).out).at(0)["faces"];
    CHECK(a_pg == a_sq);
    CHECK(a_pg.at(0)["identity"] == "penny");

    // A destination that holds a gallery is refused, in one line, exit 2.
    const auto twice = home.run({"gallery", "copy", "--to", pg.location()});
    CHECK(twice.exit_code == 2);
    CHECK(twice.err.find("already holds a gallery") != std::string::npos);
    CHECK(std::count(twice.err.begin(), twice.err.end(), '\n') == 1);

    // Export from PostgreSQL into a new file; import that file into a new home.
    const auto file = (home / "exported.db").string();
    const auto exported = run_pg({"gallery", "export", file});
    INFO("export stderr: " << exported.err);
    REQUIRE(exported.exit_code == 0);
    CHECK(json_lines(exported.out).at(0)["digest"] == c["digest"]);
    CHECK(json_lines(exported.out).at(0)["thumbnails"] == c["thumbnails"]);
    CHECK(std::filesystem::exists(file));
    CHECK_FALSE(std::filesystem::exists(file + ".part"));
    CHECK(run_pg({"gallery", "export", file}).exit_code == 2);  // never overwrites
    GalleryHome other;
    const auto imported = other.run({"gallery", "import", file});
    INFO("import stderr: " << imported.err);
    REQUIRE(imported.exit_code == 0);
    CHECK(json_lines(imported.out).at(0)["digest"] == c["digest"]);
    CHECK(other.run({"search", "--name", ""}).out == home.run({"search", "--name", ""}).out);
    CHECK(other.run({"gallery", "import", file}).exit_code == 2);  // not into a gallery that holds one
    CHECK(other.run({"gallery", "import", (home / "missing.db").string()}).exit_code == 1);

    // Bad --db values: one line, no crash.
    const auto bogus = home.run({"--db", "mysql://root:hunter3@x/db", "stats"});
    CHECK(bogus.exit_code == 2);
    CHECK(bogus.err.find("(mysql://...) is not a PostgreSQL URL") != std::string::npos);
    CHECK(bogus.err.find("hunter3") == std::string::npos);
    const auto down = run_faceq({"--home", home.root(), "--db", "postgresql://faceq:hunter2@127.0.0.1:1/x", "stats"});
    CHECK(down.exit_code == 1);
    CHECK(down.err.find("cannot connect to the gallery database") != std::string::npos);
    CHECK(down.err.find("hunter2") == std::string::npos);
    CHECK(std::count(down.err.begin(), down.err.end(), '\n') == 1);
}

TEST_CASE("bench store: concurrent writers into an empty gallery, figures printed; a real gallery refused",
          "[cli][gallery]") {
    GALLERY_ENGINE(engine);
    TempDir dir;
    const TestGalleryDb db(engine, dir.path());
    const auto r = run_faceq({"--home", dir.path().string(), "bench", "store", "--to", db.location(), "--writers", "3",
                              "--seconds", "1", "--persons", "50", "--new-share", "0.2", "--format", "jsonl"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const auto rec = json_lines(r.out).at(0);
    CHECK(rec["type"] == "store_bench");
    CHECK(rec["engine"] == engine);
    CHECK(rec["images"].get<std::int64_t>() > 10);
    CHECK(rec["detections"] == 2 * rec["images"].get<std::int64_t>());
    CHECK(rec["new_strangers"].get<std::int64_t>() > 0);
    CHECK(rec["images_per_second"].get<double>() > 0);
    // What it claims is what the database holds: every image once, each new
    // stranger one person.
    CHECK(db_int(db, "SELECT count(*) FROM images") == rec["images"].get<std::int64_t>());
    CHECK(db_int(db, "SELECT count(*) FROM detections") == rec["detections"].get<std::int64_t>());
    CHECK(db_int(db, "SELECT count(*) FROM persons WHERE kind = 'unknown'") ==
          rec["new_strangers"].get<std::int64_t>());
    check_consistent(db);
    // It never writes into a gallery that holds anything.
    const auto again = run_faceq({"--home", dir.path().string(), "bench", "store", "--to", db.location()});
    CHECK(again.exit_code == 2);
    CHECK(again.err.find("holds a gallery") != std::string::npos);
}
