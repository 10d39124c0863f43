// faceq/base/shard.hpp — splitting one batch among N workers that never talk
// to each other (`faceq analyze --shard K/N`, `--shard auto`).
//
// Every worker expands the same arguments, then keeps the inputs whose key
// (InputItem::key: the path relative to its folder argument, else the path as
// given) falls in its shard: shard_of(key, N) = the first 8 bytes of
// sha256(key), read as a big-endian unsigned 64-bit number, mod N. sha256 is
// defined on bytes, so every machine, compiler, architecture and faceq
// version agrees (std::hash promises none of that), it mixes well for any N,
// and a shell can reproduce it (`printf %s KEY | sha256sum`). The shards of a
// batch are disjoint and together hold every input, whatever N.
//
// Shards are numbered from 0, as Kubernetes' JOB_COMPLETION_INDEX is:
// `--shard K/N` accepts 0 <= K < N, N >= 1. shard_from_environment() reads the
// index and count a scheduler gives:
//   Kubernetes Indexed Job: JOB_COMPLETION_INDEX (0-based) and
//     FACEQ_SHARD_COUNT, which the manifest sets to the Job's completions
//     (Kubernetes does not put the count in the environment);
//   Slurm array job: index = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) /
//     SLURM_ARRAY_TASK_STEP (1 when unset), count = SLURM_ARRAY_TASK_COUNT,
//     so --array=0-3 and --array=1-4 both give shards 0..3 of 4.
//
// Errors: Error{usage} naming the value or variable and the valid range: a
// malformed or out-of-range --shard, a scheduler variable that is not a whole
// number or disagrees with the others, both schedulers' variables at once, or
// neither. Plain functions over values: thread-safe; the caller passes the
// environment in (the core never reads it).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace faceq {

struct Shard {
    std::uint32_t index = 0;  // 0-based, < count
    std::uint32_t count = 1;
    std::string source;  // where it came from, for people: "--shard 1/4", "SLURM_ARRAY_TASK_ID=2 ..."
};

// "K/N", e.g. "0/4".
Shard parse_shard(std::string_view spec);

// Looks a variable up; nullptr when unset (std::getenv fits).
using EnvLookup = std::function<const char*(const char*)>;

// The shard a Kubernetes Indexed Job or a Slurm array job gives this process.
Shard shard_from_environment(const EnvLookup& env);

// Which of `count` shards the input keyed `key` belongs to (count >= 1).
std::uint32_t shard_of(std::string_view key, std::uint32_t count);

}  // namespace faceq
