#include "faceq/base/shard.hpp"

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <optional>

#include "base/fsutil.hpp"
#include "faceq/base/error.hpp"

namespace faceq {

namespace {

// A whole decimal number that fits 32 bits: digits only, no sign, no spaces
// (strtoul would take " -1" as 4294967295).
std::optional<std::uint32_t> parse_count(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || v > std::numeric_limits<std::uint32_t>::max())
        return std::nullopt;
    return static_cast<std::uint32_t>(v);
}

// The variable `name` as a whole number; nullopt when unset.
std::optional<std::uint32_t> env_number(const EnvLookup& env, const char* name) {
    const char* v = env(name);
    if (v == nullptr) return std::nullopt;
    const auto n = parse_count(v);
    if (!n) throw Error(ErrorKind::usage, fmt::format("--shard auto: {}='{}' is not a whole number", name, v));
    return n;
}

std::uint32_t required(const EnvLookup& env, const char* name, const char* why) {
    const auto n = env_number(env, name);
    if (!n) throw Error(ErrorKind::usage, fmt::format("--shard auto: {} is not set ({})", name, why));
    return *n;
}

Shard kubernetes_shard(const EnvLookup& env, std::uint32_t index) {
    const std::uint32_t count = required(env, "FACEQ_SHARD_COUNT",
                                         "a Kubernetes Indexed Job gives JOB_COMPLETION_INDEX but not the count: set "
                                         "FACEQ_SHARD_COUNT to the Job's completions");
    if (count == 0)
        throw Error(ErrorKind::usage,
                    "--shard auto: FACEQ_SHARD_COUNT=0; it must be the Job's completions, at least 1");
    if (index >= count)
        throw Error(ErrorKind::usage,
                    fmt::format("--shard auto: JOB_COMPLETION_INDEX={} is not below FACEQ_SHARD_COUNT={}; "
                                "FACEQ_SHARD_COUNT must equal the Job's completions",
                                index, count));
    return {index, count, fmt::format("JOB_COMPLETION_INDEX={}, FACEQ_SHARD_COUNT={}", index, count)};
}

Shard slurm_shard(const EnvLookup& env, std::uint32_t id) {
    const std::uint32_t count = required(env, "SLURM_ARRAY_TASK_COUNT", "Slurm sets it in array jobs");
    const std::uint32_t min = required(env, "SLURM_ARRAY_TASK_MIN", "Slurm sets it in array jobs");
    const std::uint32_t step = env_number(env, "SLURM_ARRAY_TASK_STEP").value_or(1);
    const auto state = fmt::format(
        "SLURM_ARRAY_TASK_ID={}, SLURM_ARRAY_TASK_MIN={}, SLURM_ARRAY_TASK_STEP={}, "
        "SLURM_ARRAY_TASK_COUNT={}",
        id, min, step, count);
    // A list like --array=0,2,7 has no index in 0..COUNT-1 for some task:
    // refuse it rather than let two tasks share a shard.
    if (count == 0 || step == 0 || id < min || (id - min) % step != 0 || (id - min) / step >= count)
        throw Error(ErrorKind::usage,
                    fmt::format("--shard auto: {} is not a task of a contiguous array (--array=A-B or A-B:S); "
                                "give --shard K/N instead",
                                state));
    return {(id - min) / step, count, state};
}

}  // namespace

Shard parse_shard(std::string_view spec) {
    const auto slash = spec.find('/');
    const auto index = parse_count(spec.substr(0, slash));
    const auto count = slash == std::string_view::npos ? std::nullopt : parse_count(spec.substr(slash + 1));
    if (!index || !count)
        throw Error(ErrorKind::usage,
                    fmt::format("--shard '{}': expected K/N, the 0-based index K of N shards (e.g. 0/4), or auto",
                                std::string(spec)));
    if (*count == 0)
        throw Error(ErrorKind::usage, fmt::format("--shard {}: the number of shards must be at least 1", spec));
    if (*index >= *count)
        throw Error(ErrorKind::usage, fmt::format("--shard {}: the index must be 0 to {} (shards are numbered from 0)",
                                                  spec, *count - 1));
    return {*index, *count, fmt::format("--shard {}", spec)};
}

Shard shard_from_environment(const EnvLookup& env) {
    const auto k8s = env_number(env, "JOB_COMPLETION_INDEX");
    const auto slurm = env_number(env, "SLURM_ARRAY_TASK_ID");
    if (k8s && slurm)
        throw Error(ErrorKind::usage,
                    "--shard auto: both JOB_COMPLETION_INDEX (Kubernetes) and SLURM_ARRAY_TASK_ID (Slurm) are set; "
                    "give --shard K/N");
    if (k8s) return kubernetes_shard(env, *k8s);
    if (slurm) return slurm_shard(env, *slurm);
    throw Error(ErrorKind::usage,
                "--shard auto: no scheduler's index in the environment: looked for JOB_COMPLETION_INDEX with "
                "FACEQ_SHARD_COUNT (Kubernetes Indexed Job) and SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT "
                "and SLURM_ARRAY_TASK_MIN (Slurm array job); give --shard K/N elsewhere");
}

std::uint32_t shard_of(std::string_view key, std::uint32_t count) {
    if (count == 0) throw Error(ErrorKind::internal, "shard_of: zero shards");
    const std::string hex = sha256_hex(key.data(), key.size());
    std::uint64_t prefix = 0;
    std::from_chars(hex.data(), hex.data() + 16, prefix, 16);  // 16 hex digits: the first 8 bytes, big-endian
    return static_cast<std::uint32_t>(prefix % count);
}

}  // namespace faceq
