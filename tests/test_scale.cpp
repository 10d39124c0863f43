// tests/test_scale.cpp — several machines on one PostgreSQL gallery,
// simulated here (issue 13): `faceq analyze --store --shard K/4` processes
// with separate homes, and two `faceq serve` replicas, all writing one
// database on the test server (FACEQ_TEST_PG). Checked: every image recorded
// once, every detection once, one stranger id per recurring stranger, the
// same identities as one SQLite process over the same photos, a worker
// killed with SIGKILL and rerun leaves no duplicate and no gap, and a
// replica names a person another replica registered within a second.
// Slow ([.slow]: ~1-2 min): the release part of tools/test.sh runs it.
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cmath>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "serve_process.hpp"
#include "test_gallery_db.hpp"
#include "test_models.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;
using nlohmann::json;

namespace {

const auto lfw = [] { return data_dir() / "lfw-dev" / "lfw-deepfunneled"; };

#define REQUIRE_PG()                                                                                    \
    REQUIRE_DATA(!test_pg_url().empty(), "a PostgreSQL test server", "FACEQ_TEST_PG",                   \
                 "tools/pg_cluster.sh start DIR, which prints the URL to set (tools/test.sh does this " \
                 "itself)")

// A home sharing the test models.
struct WorkerHome {
    TempDir dir;
    WorkerHome() { std::filesystem::create_directory_symlink(test_home().models_dir(), dir / "models"); }
    std::string root() const { return dir.path().string(); }
};

std::vector<json> lines(const std::string& out) {
    std::vector<json> records;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (json::accept(line)) records.push_back(json::parse(line));
    return records;
}

// The LFW persons in name order with at least `per_person` photos, each
// with its first `per_person` photos.
std::vector<std::vector<std::filesystem::path>> lfw_persons(std::size_t count, std::size_t per_person) {
    std::vector<std::filesystem::path> persons;
    for (const auto& e : std::filesystem::directory_iterator(lfw())) persons.push_back(e.path());
    std::sort(persons.begin(), persons.end());
    std::vector<std::vector<std::filesystem::path>> out;
    for (const auto& p : persons) {
        std::vector<std::filesystem::path> files;
        for (const auto& f : std::filesystem::directory_iterator(p)) files.push_back(f.path());
        if (files.size() < per_person) continue;
        std::sort(files.begin(), files.end());
        files.resize(per_person);
        out.push_back(files);
        if (out.size() == count) break;
    }
    return out;
}

// A folder of symlinks to `people` persons' photos, the same strangers
// recurring in every shard, chosen so that who is who does not depend on the
// order the photos are met in: a person's faces (the largest of each photo)
// are all within 0.50 of each other, and every other face in the folder
// (other persons', and the people behind them) is 0.60 or more away. The
// stranger rule decides at 0.53: a face nearer that band could join one
// stranger or make a new one depending on which photos came first, in one
// process as in several (measured: 16 or 17 persons for the same 50 faces).
// Returns the folder and how many faces the photos hold.
std::pair<std::filesystem::path, std::size_t> recurring_strangers(const TempDir& dir, std::size_t people,
                                                                  std::size_t per_person) {
    using Face = std::vector<float>;
    const auto candidates = lfw_persons(48, per_person);
    std::vector<std::string> args{"--home", test_home().root.string(), "analyze", "--embeddings", "--jobs", "2"};
    for (const auto& files : candidates)
        for (const auto& f : files) args.push_back(f.string());
    const auto run = run_faceq(args);
    REQUIRE(run.exit_code == 0);
    std::map<std::string, std::vector<Face>> faces;  // photo -> its faces, the largest first
    for (const auto& r : lines(run.out)) {
        auto fs = r["faces"];
        std::vector<json> sorted(fs.begin(), fs.end());
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const json& a, const json& b) { return a["bbox"]["width"] > b["bbox"]["width"]; });
        for (const auto& f : sorted) faces[r["file"]].push_back(f["embedding"].get<Face>());
    }
    auto distance = [](const Face& a, const Face& b) {
        double s = 0;
        for (std::size_t i = 0; i < 128; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
        return std::sqrt(s);
    };
    const auto folder = dir / "photos";
    std::filesystem::create_directories(folder);
    std::vector<Face> chosen;  // every face of the persons taken so far
    std::size_t taken = 0, face_count = 0;
    for (const auto& files : candidates) {
        if (taken == people) break;
        std::vector<Face> mine, behind;
        for (const auto& f : files) {
            const auto it = faces.find(f.string());
            if (it == faces.end() || it->second.empty()) break;
            mine.push_back(it->second[0]);
            behind.insert(behind.end(), it->second.begin() + 1, it->second.end());
        }
        if (mine.size() != per_person) continue;
        bool clear = true;
        for (std::size_t a = 0; a < mine.size(); ++a)
            for (std::size_t b = a + 1; b < mine.size(); ++b) clear = clear && distance(mine[a], mine[b]) <= 0.50;
        std::vector<Face> all = mine;
        all.insert(all.end(), behind.begin(), behind.end());
        for (std::size_t a = 0; a < all.size(); ++a) {
            for (std::size_t b = std::max(a + 1, mine.size()); b < all.size(); ++b)
                clear = clear && distance(all[a], all[b]) >= 0.60;  // the people behind: apart from everyone
            for (const auto& c : chosen) clear = clear && distance(all[a], c) >= 0.60;
        }
        if (!clear) continue;
        for (const auto& f : files) std::filesystem::create_symlink(f, folder / f.filename());
        chosen.insert(chosen.end(), all.begin(), all.end());
        face_count += all.size();
        ++taken;
    }
    INFO("LFW persons clear of the stranger band among the first 48: " << taken);
    REQUIRE(taken == people);
    return {folder, face_count};
}

// Who is who, ids aside: the faces (photo file name + box corner) grouped by
// the person the gallery gave them; faces without a person apart.
struct Grouping {
    std::set<std::set<std::string>> persons;
    std::set<std::string> without_person;
    bool operator==(const Grouping& o) const { return persons == o.persons && without_person == o.without_person; }
};

std::string face_key(const std::string& path, std::int64_t x, std::int64_t y) {
    return std::filesystem::path(path).filename().string() + "#" + std::to_string(x) + "," + std::to_string(y);
}

// From `faceq analyze --store` records.
Grouping grouping_of(const std::vector<json>& records) {
    std::map<std::string, std::set<std::string>> by_person;
    Grouping g;
    for (const auto& r : records)
        for (const auto& f : r.value("faces", json::array())) {
            const auto key = face_key(r["file"], f["bbox"]["x"], f["bbox"]["y"]);
            if (f["person_id"].is_string())
                by_person[f["person_id"]].insert(key);
            else
                g.without_person.insert(key);
        }
    for (auto& [id, faces] : by_person) g.persons.insert(faces);
    return g;
}

// From the gallery's rows.
Grouping grouping_of(const TestGalleryDb& db) {
    PGconn* c = PQconnectdb(db.location().c_str());
    REQUIRE(PQstatus(c) == CONNECTION_OK);
    PGresult* r = PQexec(c,
                         "SELECT i.path, d.box_x, d.box_y, p.public_id FROM faceq.detections d"
                         " JOIN faceq.images i ON i.id = d.image_id LEFT JOIN faceq.persons p ON p.id = d.person_id");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    std::map<std::string, std::set<std::string>> by_person;
    Grouping g;
    for (int i = 0; i < PQntuples(r); ++i) {
        const auto key =
            face_key(PQgetvalue(r, i, 0), std::stoll(PQgetvalue(r, i, 1)), std::stoll(PQgetvalue(r, i, 2)));
        if (PQgetisnull(r, i, 3))
            g.without_person.insert(key);
        else
            by_person[PQgetvalue(r, i, 3)].insert(key);
    }
    PQclear(r);
    PQfinish(c);
    for (auto& [id, faces] : by_person) g.persons.insert(faces);
    return g;
}

// Nothing recorded twice: one image row per content, one detection per face.
void check_no_duplicates(const TestGalleryDb& db) {
    CHECK(db_int(db, "SELECT count(*) FROM (SELECT 1 FROM images GROUP BY sha256, models HAVING count(*) > 1) AS t") ==
          0);
    CHECK(db_int(db,
                 "SELECT count(*) FROM (SELECT 1 FROM detections GROUP BY image_id, box_x, box_y, box_w, box_h"
                 " HAVING count(*) > 1) AS t") == 0);
    CHECK(db_int(db,
                 "SELECT count(*) FROM (SELECT 1 FROM samples GROUP BY person_id, embedder, source_sha256, box_x,"
                 " box_y HAVING count(*) > 1) AS t") == 0);
}

// `faceq --home HOME ARGS...` in the background with FACEQ_DB set, its
// output in files of the home.
class Worker {
public:
    Worker(const WorkerHome& home, std::vector<std::string> args, const std::string& db)
        : out_(home.dir / "worker.out"), err_(home.dir / "worker.err") {
        args.insert(args.begin(), {FACEQ_BINARY, "--home", home.root()});
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        auto env = detail::child_environment({"FACEQ_DB=" + db});
        std::vector<char*> envp;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&actions);
        REQUIRE(rc == 0);
    }
    ~Worker() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    void kill() {
        ::kill(pid_, SIGKILL);
        wait();
    }
    std::string out() const { return file_text(out_); }
    std::string err() const { return file_text(err_); }

private:
    std::filesystem::path out_, err_;
    pid_t pid_ = 0;
};

std::int64_t images_in(const TestGalleryDb& db) { return try_query(db, "SELECT count(*) FROM images"); }

}  // namespace

TEST_CASE(
    "four analyze --shard K/4 workers on one PostgreSQL gallery: each photo once, one id per stranger, as one "
    "SQLite process; a killed worker rerun",
    "[cli][gallery][.slow]") {
    REQUIRE_MODELS();
    REQUIRE_SHARED();
    REQUIRE_PG();
    TempDir dir;
    // 8 strangers, 4 photos each (and the people behind some of them); nobody enrolled.
    const auto [photos, faces] = recurring_strangers(dir, 8, 4);

    // One process, SQLite: the reference grouping.
    WorkerHome single;
    const auto ref = run_faceq({"--home", single.root(), "analyze", "--store", "--jobs", "2", photos.string()});
    INFO("single stderr: " << ref.err);
    REQUIRE(ref.exit_code == 0);
    const auto ref_records = lines(ref.out);
    REQUIRE(ref_records.size() == 32);
    const Grouping want = grouping_of(ref_records);
    CHECK(want.persons.size() == 8 + (faces - 32));  // one id per stranger; each person behind alone
    CHECK(want.without_person.empty());

    for (const bool kill_one : {false, true}) {
        INFO((kill_one ? "with worker 2 killed (SIGKILL) and rerun" : "four workers"));
        TempDir db_dir;
        const TestGalleryDb db("postgresql", db_dir.path());
        db.open();  // the schema, before the workers race to it
        std::vector<WorkerHome> homes(4);
        std::vector<std::unique_ptr<Worker>> workers;
        for (int k = 0; k < 4; ++k)
            workers.push_back(
                std::make_unique<Worker>(homes[static_cast<std::size_t>(k)],
                                         std::vector<std::string>{"analyze", "--store", "--jobs", "1", "--shard",
                                                                  std::to_string(k) + "/4", photos.string()},
                                         db.location()));
        if (kill_one) {
            // Worker 2 dies once the gallery holds a few images, in the middle of its shard.
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
            while (images_in(db) < 6 && std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            workers[2]->kill();
        }
        std::size_t stored = 0;
        for (int k = 0; k < 4; ++k) {
            if (kill_one && k == 2) continue;
            auto& w = *workers[static_cast<std::size_t>(k)];
            INFO("worker " << k << " stderr: " << w.err());
            CHECK(w.wait() == 0);
            for (const auto& r : lines(w.out())) stored += r.value("stored", false);
        }
        if (kill_one) {
            check_no_duplicates(db);
            const auto before = images_in(db);
            CHECK(before < 32);  // worker 2's shard was cut short
            Worker rerun(homes[2], {"analyze", "--store", "--jobs", "1", "--shard", "2/4", photos.string()},
                         db.location());
            INFO("rerun stderr: " << rerun.err());
            CHECK(rerun.wait() == 0);
            std::size_t skipped = 0;
            for (const auto& r : lines(rerun.out())) {
                stored += r.value("stored", false);
                skipped += r.value("skipped", "") == "unchanged";
            }
            CHECK(static_cast<std::int64_t>(stored + skipped) >= 32 - before);
        } else {
            CHECK(stored == 32);  // each photo recorded by exactly one worker
        }
        CHECK(images_in(db) == 32);
        CHECK(db_int(db, "SELECT count(*) FROM detections") == static_cast<std::int64_t>(faces));
        check_no_duplicates(db);
        const Grouping got = grouping_of(db);
        CHECK(got.without_person == want.without_person);
        CHECK(got.persons.size() == want.persons.size());
        CHECK(got == want);
    }
}

TEST_CASE(
    "two serve replicas on one PostgreSQL gallery: /analyze and /register at once, one stranger id, a "
    "registered person named by the other replica within a second",
    "[serve][gallery][.slow]") {
    REQUIRE_MODELS();
    REQUIRE_SHARED();
    REQUIRE_PG();
    TempDir db_dir;
    const TestGalleryDb db("postgresql", db_dir.path());
    db.open();
    const std::vector<std::string> env{"FACEQ_DB=" + db.location()};
    ServeHome home_a, home_b;
    ServeProcess a(home_a.root(), {"--port", "0", "--jobs", "1"}, env),
        b(home_b.root(), {"--port", "0", "--jobs", "1"}, env);
    httplib::Client ca("127.0.0.1", a.port()), cb("127.0.0.1", b.port());
    for (auto* c : {&ca, &cb}) {
        c->set_read_timeout(180, 0);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
        for (;;) {
            auto res = c->Get("/health");
            if (res && res->status == 200) break;
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    auto form = [](const std::filesystem::path& path, const std::string& person = {}) {
        const auto bytes = read_bytes(path);
        httplib::MultipartFormDataItems items{
            {"file", std::string(bytes.begin(), bytes.end()), path.filename().string(), "image/jpeg"}};
        if (!person.empty()) items.push_back({"person_name", person, "", ""});
        return items;
    };
    auto files_of = [](const std::string& who) {
        std::vector<std::filesystem::path> files;
        for (const auto& e : std::filesystem::directory_iterator(lfw() / who)) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        return files;
    };
    const auto stranger = files_of("Aaron_Peirsol");  // 4 photos, never registered
    const auto known = files_of("Abdullah_Gul");      // registered on A, then analysed on B

    // At once: A registers Abdullah Gul; both replicas analyse the stranger's
    // photos, each photo sent to both.
    auto reg = std::async(std::launch::async, [&] { return ca.Post("/register", form(known[0], "Abdullah Gul")); });
    std::vector<std::future<httplib::Result>> analyses;
    for (const auto& f : stranger) {
        analyses.push_back(std::async(std::launch::async, [&, f] { return ca.Post("/analyze", form(f)); }));
        analyses.push_back(std::async(std::launch::async, [&, f] { return cb.Post("/analyze", form(f)); }));
    }
    std::set<std::string> stranger_ids;
    int stored = 0;
    for (auto& fut : analyses) {
        const auto res = fut.get();
        REQUIRE(res);
        INFO(res->body.substr(0, 500));
        REQUIRE(res->status == 200);
        const auto j = json::parse(res->body);
        stored += j["stored"].get<bool>();
        for (const auto& f : j["faces"])
            if (f["person_id"].is_string() && f["bbox"]["width"].get<int>() > 60) stranger_ids.insert(f["person_id"]);
    }
    const auto registered = reg.get();
    REQUIRE(registered);
    INFO(registered->body);
    REQUIRE(registered->status == 200);
    CHECK(stored == static_cast<int>(stranger.size()));  // each photo recorded once, by one replica
    CHECK(stranger_ids.size() == 1);                     // one id for the stranger, whichever replica met him
    CHECK(images_in(db) == static_cast<std::int64_t>(stranger.size()));
    check_no_duplicates(db);

    // B names the person A registered: within a second of the registration.
    const auto t0 = std::chrono::steady_clock::now();
    std::string identity;
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1)) {
        const auto res = cb.Post("/analyze", form(known[1]));
        REQUIRE(res);
        const auto j = json::parse(res->body);
        REQUIRE(j["faces"].size() >= 1);
        identity = j["faces"][0]["identity"];
        if (identity == "Abdullah Gul") break;
    }
    CHECK(identity == "Abdullah Gul");
}
