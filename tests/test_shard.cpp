// tests/test_shard.cpp — splitting a batch among workers (faceq/base/shard.hpp)
// and the keys expand_inputs() gives them: --shard K/N parsing, the shard a
// Kubernetes Indexed Job or a Slurm array job gives through the environment
// (a map here), the hash pinned to values computed with coreutils' sha256sum,
// and keys that do not depend on where a folder is mounted.
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <sstream>

#include "faceq/base/batch.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/shard.hpp"
#include "test_support.hpp"

using namespace faceq;
using namespace faceq::test;

namespace {

using Env = std::map<std::string, std::string>;

Shard from(const Env& env) {
    return shard_from_environment([&env](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

// The usage error `f` throws; fails the test when it throws none or another.
template <typename F>
std::string usage_error(F f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::usage);
        return e.what();
    }
    FAIL("no error thrown");
    return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("parse_shard takes K/N with 0 <= K < N and names the valid range otherwise", "[shard]") {
    const Shard s = parse_shard("2/3");
    CHECK(s.index == 2);
    CHECK(s.count == 3);
    CHECK(parse_shard("0/1").count == 1);
    CHECK(parse_shard("4294967294/4294967295").index == 4294967294u);

    CHECK(contains(usage_error([] { parse_shard("2/2"); }), "the index must be 0 to 1"));
    CHECK(contains(usage_error([] { parse_shard("3/3"); }), "0 to 2"));
    CHECK(contains(usage_error([] { parse_shard("0/0"); }), "at least 1"));
    for (const char* bad : {"x", "", "1", "1/", "/2", "-1/2", "1/-2", "+1/2", " 1/2", "1/2 ", "1/2/3", "1.0/2", "0x1/2",
                            "0/4294967296", "auto/2"}) {
        INFO("spec: '" << bad << "'");
        CHECK(contains(usage_error([bad] { parse_shard(bad); }), "expected K/N"));
    }
}

TEST_CASE("--shard auto reads a Kubernetes Indexed Job's index and FACEQ_SHARD_COUNT", "[shard]") {
    const Shard s = from({{"JOB_COMPLETION_INDEX", "3"}, {"FACEQ_SHARD_COUNT", "4"}});
    CHECK(s.index == 3);
    CHECK(s.count == 4);
    CHECK(contains(s.source, "JOB_COMPLETION_INDEX=3"));

    CHECK(contains(usage_error([] { from({{"JOB_COMPLETION_INDEX", "0"}}); }), "FACEQ_SHARD_COUNT is not set"));
    CHECK(contains(usage_error([] {
                       from({{"JOB_COMPLETION_INDEX", "4"}, {"FACEQ_SHARD_COUNT", "4"}});
                   }),
                   "JOB_COMPLETION_INDEX=4 is not below FACEQ_SHARD_COUNT=4"));
    CHECK(contains(usage_error([] {
                       from({{"JOB_COMPLETION_INDEX", "0"}, {"FACEQ_SHARD_COUNT", "0"}});
                   }),
                   "FACEQ_SHARD_COUNT=0"));
    CHECK(contains(usage_error([] {
                       from({{"JOB_COMPLETION_INDEX", "one"}, {"FACEQ_SHARD_COUNT", "2"}});
                   }),
                   "JOB_COMPLETION_INDEX='one' is not a whole number"));
}

TEST_CASE("--shard auto normalises a Slurm array's task ids to 0..COUNT-1", "[shard]") {
    // --array=0-2
    for (std::uint32_t id = 0; id < 3; ++id) {
        const Shard s = from({{"SLURM_ARRAY_TASK_ID", std::to_string(id)},
                              {"SLURM_ARRAY_TASK_MIN", "0"},
                              {"SLURM_ARRAY_TASK_COUNT", "3"}});
        CHECK(s.index == id);
        CHECK(s.count == 3);
    }
    // --array=1-3: task 1 is shard 0
    CHECK(from({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}).index ==
          0);
    // --array=10-14:2 (10, 12, 14): task 14 is shard 2 of 3
    const Shard stepped = from({{"SLURM_ARRAY_TASK_ID", "14"},
                                {"SLURM_ARRAY_TASK_MIN", "10"},
                                {"SLURM_ARRAY_TASK_STEP", "2"},
                                {"SLURM_ARRAY_TASK_COUNT", "3"}});
    CHECK(stepped.index == 2);
    CHECK(stepped.count == 3);

    CHECK(contains(usage_error([] {
                       from({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "2"}});
                   }),
                   "SLURM_ARRAY_TASK_MIN is not set"));
    CHECK(contains(usage_error([] {
                       from({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "1"}});
                   }),
                   "SLURM_ARRAY_TASK_COUNT is not set"));
    // --array=0,2,7 (COUNT 3): task 7 has no shard of its own
    CHECK(contains(
        usage_error([] {
            from({{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_COUNT", "3"}});
        }),
        "not a task of a contiguous array"));
    CHECK(contains(
        usage_error([] {
            from({{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_COUNT", "3"}});
        }),
        "SLURM_ARRAY_TASK_ID=0"));
}

TEST_CASE("--shard auto without a scheduler, or with two, is a usage error naming the variables", "[shard]") {
    const std::string none = usage_error([] { from({{"FACEQ_SHARD_COUNT", "2"}, {"SLURM_ARRAY_TASK_COUNT", "2"}}); });
    for (const char* name :
         {"JOB_COMPLETION_INDEX", "FACEQ_SHARD_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"})
        CHECK(contains(none, name));
    CHECK(contains(usage_error([] {
                       from({{"JOB_COMPLETION_INDEX", "0"},
                             {"FACEQ_SHARD_COUNT", "2"},
                             {"SLURM_ARRAY_TASK_ID", "0"},
                             {"SLURM_ARRAY_TASK_MIN", "0"},
                             {"SLURM_ARRAY_TASK_COUNT", "2"}});
                   }),
                   "both"));
}

TEST_CASE("shard_of is sha256's first 8 bytes, big-endian, mod N", "[shard]") {
    // Expected values from `printf %s KEY | sha256sum | cut -c1-16`, mod N
    // (python3 int(h, 16) % N): an implementation independent of ours.
    struct Pinned {
        const char* key;
        std::uint32_t mod2, mod3, mod7, mod1000003;
    };
    for (const auto& p : {Pinned{"x.jpg", 0, 2, 5, 327485}, Pinned{"sub/2008_002470.jpg", 1, 2, 1, 530802},
                          Pinned{"", 0, 1, 1, 224200}, Pinned{"2008_002470.jpg", 0, 0, 0, 205360}}) {
        INFO("key: '" << p.key << "'");
        CHECK(shard_of(p.key, 1) == 0);
        CHECK(shard_of(p.key, 2) == p.mod2);
        CHECK(shard_of(p.key, 3) == p.mod3);
        CHECK(shard_of(p.key, 7) == p.mod7);
        CHECK(shard_of(p.key, 1000003) == p.mod1000003);
    }
    // Not degenerate: 1000 numbered names spread over 4 shards near evenly.
    std::map<std::uint32_t, int> sizes;
    for (int i = 0; i < 1000; ++i) ++sizes[shard_of("IMG_" + std::to_string(1000 + i) + ".jpg", 4)];
    REQUIRE(sizes.size() == 4);
    for (const auto& [shard, size] : sizes) {
        INFO("shard " << shard);
        CHECK(size > 200);
        CHECK(size < 300);
    }
}

TEST_CASE("expand_inputs keys a folder's images relative to the folder, wherever it is mounted", "[shard]") {
    TempDir tmp;
    const auto photos = tmp / "a" / "photos";
    std::filesystem::create_directories(photos / "sub");
    for (const char* name : {"x.jpg", "y.png", "sub/z.jpg"}) write_text(photos / name, "not decoded here");
    // The same folder at another root, as another worker would mount it.
    std::filesystem::create_directories(tmp / "mnt");
    std::filesystem::create_directory_symlink(photos, tmp / "mnt" / "pictures");

    const auto keys = [](const std::vector<InputItem>& items) {
        std::vector<std::string> out;
        for (const auto& item : items) out.push_back(item.key);
        return out;
    };
    const std::vector<std::string> expected{"sub/z.jpg", "x.jpg", "y.png"};
    const auto here = expand_inputs({photos.string()}, true, nullptr);
    const auto there = expand_inputs({(tmp / "mnt" / "pictures").string() + "/"}, true, nullptr);
    CHECK(keys(here) == expected);
    CHECK(keys(there) == expected);
    CHECK(here[1].path == (photos / "x.jpg").string());
    // Without -r the subfolder is not walked; the keys stay relative.
    CHECK(keys(expand_inputs({photos.string()}, false, nullptr)) == std::vector<std::string>{"x.jpg", "y.png"});

    // A file given directly, or on stdin, is keyed by the path as given; a
    // folder named on stdin is walked like a folder argument.
    std::istringstream stdin_paths((photos / "x.jpg").string() + "\n" + (photos / "sub").string() + "\n");
    const auto mixed = expand_inputs({"-", "relative/w.jpg"}, false, &stdin_paths);
    CHECK(keys(mixed) == std::vector<std::string>{(photos / "x.jpg").string(), "z.jpg", "relative/w.jpg"});

    // An error item (a folder without images) has a key too, so it lands in one shard.
    std::filesystem::create_directories(tmp / "empty");
    const auto empty = expand_inputs({(tmp / "empty").string()}, false, nullptr);
    REQUIRE(empty.size() == 1);
    CHECK(empty[0].error.has_value());
    CHECK(empty[0].key == (tmp / "empty").string());
}
