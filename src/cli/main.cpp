// main.cpp — global flags, home resolution, subcommand dispatch, and the only
// catch-all. Exit codes: 0 ok, 1 failure (including a partly failed batch),
// 2 usage error.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/home.hpp"
#include "faceq/identity/gallery.hpp"
#include "faceq/pipeline/compute.hpp"

namespace {

std::filesystem::path default_home() {
    if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::filesystem::path(xdg) / "faceq";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::filesystem::path(home) / ".local" / "share" / "faceq";
    return std::filesystem::current_path() / ".faceq";
}

std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return (v && *v) ? std::string(v) : fallback;
}

std::filesystem::path executable_path() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path() : p;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace faceq;
    cli::Context ctx;
    CLI::App app{"faceq — fast, offline face analytics: detect, identify, estimate age and gender"};
    app.require_subcommand(0, 1);
    std::string home_flag, db_flag, color = "auto", data_dir_flag;
    bool quiet = false, verbose = false, version_flag = false;
    app.set_version_flag("");
    app.add_flag("--version", version_flag, "Print the version (with -v: libraries and BLAS)");
    app.add_option("--home", home_flag, "State directory (default: $FACEQ_HOME, else $XDG_DATA_HOME/faceq)");
    app.add_option("--db", db_flag,
                   "The gallery's PostgreSQL database, as a libpq URL or key=value string (default: $FACEQ_DB, "
                   "else the SQLite file faceq.db in the home)");
    app.add_option("--data-dir", data_dir_flag, "Directory holding models.json (default: installed data/)");
    app.add_flag("-q,--quiet", quiet, "Only errors on stderr");
    app.add_flag("-v,--verbose", verbose, "More detail on stderr");
    app.add_option("--color", color, "Colour on stderr")->check(CLI::IsMember({"auto", "always", "never"}));

    std::vector<std::pair<CLI::App*, cli::Runner>> commands;
    for (auto reg : {cli::register_analyze, cli::register_download, cli::register_bench, cli::register_prepare,
                     cli::register_train, cli::register_runs, cli::register_register_model, cli::register_deploy,
                     cli::register_models})
        commands.push_back(reg(app, ctx));
    for (auto reg : {cli::register_enroll, cli::register_search, cli::register_stats, cli::register_persons,
                     cli::register_prune, cli::register_cluster, cli::register_gallery, cli::register_export})
        commands.push_back(reg(app, ctx));
    commands.push_back(cli::register_serve(app, ctx));
    // Last: they read the tree the others built.
    commands.push_back(cli::register_completion(app, ctx));
    commands.push_back(cli::register_manpage(app, ctx));

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    ctx.verbosity = quiet ? -1 : (verbose ? 1 : 0);
    ctx.stderr_tty = ::isatty(STDERR_FILENO) == 1;
    const bool no_color = std::getenv("NO_COLOR") && *std::getenv("NO_COLOR");
    ctx.color = color == "always" || (color == "auto" && ctx.stderr_tty && !no_color);
    ctx.home.root = !home_flag.empty() ? std::filesystem::path(home_flag)
                                       : std::filesystem::path(env_or("FACEQ_HOME", default_home().string()));
    ctx.home.database_url = !db_flag.empty() ? db_flag : env_or("FACEQ_DB", "");
    ctx.data_dir = resolve_data_dir(env_or("FACEQ_DATA_DIR", data_dir_flag), executable_path());
    if (data_dir_flag.size()) ctx.data_dir = data_dir_flag;
    ctx.mirror = env_or("FACEQ_MIRROR", "");

    if (version_flag) {
        std::cout << "faceq " << faceq::version() << "\n";
        if (verbose) {
            std::cout << "blas: " << compute_description() << "\n";
            std::cout << "home: " << ctx.home.root.string() << "\n";
            std::cout << "data: " << ctx.data_dir.string() << "\n";
        }
        return 0;
    }

    try {
        if (!ctx.home.database_url.empty() && !Gallery::is_database_url(ctx.home.database_url)) {
            // Not echoed whole: it may hold a password.
            const auto scheme = ctx.home.database_url.find("://");
            throw Error(ErrorKind::usage,
                        fmt::format("--db/FACEQ_DB{} is not a PostgreSQL URL (postgresql://user@host:port/dbname) or "
                                    "key=value string; without it the gallery is the SQLite file in the home",
                                    scheme == std::string::npos
                                        ? std::string()
                                        : fmt::format(" ({}://...)", ctx.home.database_url.substr(0, scheme))));
        }
        for (auto& [sub, run] : commands)
            if (sub->parsed()) return run();
        std::cout << app.help();
        return 2;
    } catch (const faceq::Error& e) {
        ctx.error(e.what());
        return e.kind() == ErrorKind::usage ? 2 : 1;
    } catch (const std::exception& e) {
        ctx.error(fmt::format("unexpected failure: {}", e.what()));
        return 1;
    }
}
