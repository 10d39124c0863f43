// runs.cpp — see faceq/training/runs.hpp.
#include "faceq/training/runs.hpp"

#include <fmt/format.h>

#include <system_error>

#include "base/subprocess.hpp"
#include "faceq/base/error.hpp"

namespace faceq {

RunOutcome run_experiment(Registry& registry, const RunSpec& spec, const RunBody& body, const LogFn& log) {
    const RunInfo started = registry.create_run(spec.experiment, spec.params, spec.tags, spec.source_version);
    // Ends the run FAILED should anything escape below without ending it.
    RunGuard guard(registry, started.id);
    if (log) log(fmt::format("run {} ({}) started", started.id, spec.experiment));
    RunOutcome outcome;
    try {
        body(registry, started);
        guard.finish();
    } catch (const Error& e) {
        guard.fail(e.what());
        if (e.kind() != ErrorKind::interrupted) throw;
        outcome.interrupted = true;
    } catch (const std::exception& e) {
        guard.fail(e.what());
        throw;
    }
    outcome.run = registry.run(started.id);
    return outcome;
}

std::string source_version(const std::filesystem::path& data_dir) {
    std::error_code ec;
    const std::filesystem::path tree = std::filesystem::weakly_canonical(data_dir, ec).parent_path();
    if (ec || !std::filesystem::exists(tree / ".git", ec)) return "";
    try {
        const ProgramResult git =
            run_program({"git", "-C", tree.string(), "describe", "--always", "--dirty", "--abbrev=12"}, false);
        if (!git.succeeded()) return "";
        std::string out = git.output;
        while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
        return out;
    } catch (const Error&) {
        return "";  // the version is a note on the run, never a reason to fail it
    }
}

}  // namespace faceq
