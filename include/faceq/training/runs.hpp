// faceq/training/runs.hpp — one training run's lifecycle in the registry
// (models/registry.hpp), the same for every experiment:
//
//   create the run RUNNING (params, tags, the source version)
//   run the body              -> FINISHED
//   the body throws Error{interrupted} (the user stopped it between steps)
//                             -> FAILED with the message, and the outcome
//                                says "interrupted" (the CLI exits 128+signal)
//   the body throws anything else
//                             -> FAILED with the message, and the exception
//                                propagates unchanged
// A process killed meanwhile leaves the run RUNNING, which the registry reads
// as FAILED once the process is gone.
//
// source_version() names the faceq source tree a run was trained from, so a
// version can be traced back to code: `git describe --always --dirty
// --abbrev=12` of the tree that holds the data directory, run without a shell.
//
// Errors: run_experiment throws what the registry throws when the run cannot
// be created or ended, and what the body throws (except Error{interrupted}).
// source_version never throws.
// Thread-safety: run_experiment runs the body on the calling thread.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "faceq/base/progress.hpp"
#include "faceq/models/registry.hpp"

namespace faceq {

struct RunSpec {
    std::string experiment;  // "age-gender", "recognition", "smoke", ...
    nlohmann::json params = nlohmann::json::object();
    nlohmann::json tags = nlohmann::json::object();
    std::string source_version;  // see source_version(); "" when unknown
};

struct RunOutcome {
    RunInfo run;               // as recorded when it ended: FINISHED, or FAILED with its error
    bool interrupted = false;  // the body threw Error{interrupted}
};

// The work of a run: may log step metrics, write artifacts under
// run.artifacts_dir() and update the run's params and final metrics.
using RunBody = std::function<void(Registry& registry, const RunInfo& run)>;

// Runs `body` as a registry run (see above). `log` gets "run <id>
// (<experiment>) started" once the run exists.
RunOutcome run_experiment(Registry& registry, const RunSpec& spec, const RunBody& body, const LogFn& log);

// `git describe --always --dirty --abbrev=12` of the source tree whose data/
// directory is `data_dir`; "" for an installed faceq (no .git beside data/),
// or when git is missing or fails.
std::string source_version(const std::filesystem::path& data_dir);

}  // namespace faceq
