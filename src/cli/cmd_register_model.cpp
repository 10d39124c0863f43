// cmd_register_model.cpp — `faceq register-model`: turn a finished training
// run into a new version of a registered model (the reference's
// register_model.py).
//
//   faceq register-model [--name NAME] [--run RUN_ID] [--description TEXT]
//
// NAME defaults to age-gender; RUN_ID to the newest FINISHED run that trains
// NAME (tag model_name). The run's artifacts are copied into the version, so
// the version stays usable after the run is gone. stdout: the version as one
// JSON line.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "context.hpp"
#include "faceq/models/registry.hpp"

namespace faceq::cli {
namespace {

struct RegisterCmd {
    std::string name = "age-gender", run_id, description;
};

int register_model_cmd(const Context& ctx, const RegisterCmd& cmd) {
    Registry registry(ctx.home);
    const std::string run_id = cmd.run_id.empty() ? registry.last_successful_run(cmd.name).id : cmd.run_id;
    const ModelVersion v = registry.register_model(cmd.name, run_id, cmd.description);
    const std::string key = v.tags.value("primary_metric", "");
    std::string metric;
    if (!key.empty() && v.metrics.contains(key) && v.metrics[key].is_number())
        metric = fmt::format(" ({} {:.4g})", key, v.metrics[key].get<double>());
    ctx.info(fmt::format("registered '{}' version {} from run {}{}", v.name, v.version, run_id, metric));
    nlohmann::json j{{"name", v.name},
                     {"version", v.version},
                     {"run_id", v.run_id},
                     {"experiment", v.experiment},
                     {"created_at", v.created_at},
                     {"metrics", v.metrics},
                     {"path", v.dir.string()}};
    print_record("registered_model", std::move(j));
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_register_model(CLI::App& app, Context& ctx) {
    auto cmd = std::make_shared<RegisterCmd>();
    CLI::App* sub = app.add_subcommand("register-model", "Register a finished training run as a new model version");
    sub->add_option("--name", cmd->name, "Registered model (age-gender, face-recognition, smoke)")
        ->capture_default_str();
    sub->add_option("--run", cmd->run_id, "Run id (default: the newest finished run for NAME)");
    sub->add_option("--description", cmd->description, "A note kept with the version");
    return {sub, [&ctx, cmd]() { return register_model_cmd(ctx, *cmd); }};
}

}  // namespace faceq::cli
