// tests/test_cli_completion.cpp — the man page (`faceq manpage`) and the
// shell completion (`faceq completion bash|zsh`) that cmd_completion.cpp
// generates from the CLI11 tree, checked against what `faceq ... --help`
// shows: every subcommand, nested ones too, has its section and every option
// its entry, groff reads the page without a warning, and bash (the real one,
// without bash-completion) completes subcommands, options, option values and
// paths with the script. Needs no models and no data; ~1 s.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

using namespace faceq::test;

namespace {

// The names under "Subcommands:" in a --help page.
std::vector<std::string> help_subcommands(const std::string& help) {
    std::vector<std::string> names;
    std::istringstream in(help);
    bool in_list = false;
    for (std::string line; std::getline(in, line);) {
        if (line == "Subcommands:") {
            in_list = true;
        } else if (in_list) {
            std::smatch m;
            if (std::regex_search(line, m, std::regex("^  ([a-z][a-z0-9-]*)  ")))
                names.push_back(m[1]);
            else if (line.empty())
                in_list = false;
        }
    }
    return names;
}

// The option names (-j, --jobs) a --help page lists.
std::vector<std::string> help_options(const std::string& help) {
    std::vector<std::string> names;
    std::istringstream in(help);
    const std::regex option_line("^  (-[-a-zA-Z0-9]+(,-[-a-zA-Z0-9]+)*)");
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (!std::regex_search(line, m, option_line)) continue;
        std::istringstream parts(m[1].str());
        for (std::string name; std::getline(parts, name, ',');) names.push_back(name);
    }
    return names;
}

// Every command path ("analyze", "gallery export", ...) --help shows, depth
// first, with its --help page.
void command_paths(const std::vector<std::string>& prefix,
                   std::vector<std::pair<std::vector<std::string>, std::string>>& out) {
    std::vector<std::string> args = prefix;
    args.push_back("--help");
    const auto help = run_faceq(args);
    REQUIRE(help.exit_code == 0);
    if (!prefix.empty()) out.emplace_back(prefix, help.out);
    for (const auto& sub : help_subcommands(help.out)) {
        auto path = prefix;
        path.push_back(sub);
        command_paths(path, out);
    }
}

std::string roff_name(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '-' ? std::string("\\-") : std::string(1, c);
    return out;
}

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
    return out;
}

}  // namespace

TEST_CASE("faceq manpage has a section for every subcommand and an entry for every option --help shows",
          "[completion]") {
    const auto page = run_faceq({"manpage", "--date", "2026-12-01"});
    REQUIRE(page.exit_code == 0);
    CHECK(page.out.rfind(".\\\" faceq.1", 0) == 0);
    CHECK(page.out.find(".TH FACEQ 1 \"2026-12-01\" \"faceq ") != std::string::npos);

    std::vector<std::pair<std::vector<std::string>, std::string>> paths;
    command_paths({}, paths);
    // More than the top level: nested subcommands (gallery export, models list) are walked.
    REQUIRE(paths.size() > 40);
    std::set<std::string> seen;
    for (const auto& [path, help] : paths) {
        const std::string section = ".SS \"" + roff_name("faceq " + joined(path)) + "\"\n";
        const auto at = page.out.find(section);
        INFO(joined(path));
        REQUIRE(at != std::string::npos);
        CHECK(seen.insert(joined(path)).second);
        // Its options are listed in its own section, before the next one.
        const auto end = page.out.find(".SS ", at + section.size());
        const std::string body = page.out.substr(at, end == std::string::npos ? std::string::npos : end - at);
        for (const auto& option : help_options(help)) {
            if (option == "-h" || option == "--help") continue;  // said once, for faceq itself
            INFO(option);
            CHECK(body.find("\\fB" + roff_name(option) + "\\fR") != std::string::npos);
        }
    }
    CHECK(seen.count("gallery export") == 1);
    CHECK(seen.count("models list") == 1);
    // The hidden build command documents nothing about itself.
    CHECK(page.out.find(".SS \"faceq manpage") == std::string::npos);
    // A choice list from CLI::IsMember, and a default as --help shows it.
    CHECK(page.out.find("\\fB\\-\\-detector\\fR \\fIhog|cnn|yunet\\fR\nFace detector (default: yunet)") !=
          std::string::npos);

    // groff, with every warning on, finds nothing to say.
    TempDir dir;
    std::ofstream(dir / "faceq.1") << page.out;
    const auto groff = run_command({"groff", "-ww", "-z", "-man", (dir / "faceq.1").string()});
    CHECK(groff.exit_code == 0);
    CHECK(groff.err.empty());
}

TEST_CASE("faceq completion bash completes subcommands\\, nested ones\\, options\\, values and paths in plain bash",
          "[completion]") {
    const auto script = run_faceq({"completion", "bash"});
    REQUIRE(script.exit_code == 0);
    TempDir dir;
    std::ofstream(dir / "faceq.bash") << script.out;
    const auto syntax = run_command({"bash", "-n", (dir / "faceq.bash").string()});
    REQUIRE(syntax.exit_code == 0);
    CHECK(syntax.err.empty());

    std::filesystem::create_directories(dir / "photos" / "album");
    std::ofstream(dir / "photos" / "a.jpg") << "x";
    // Each case: the words typed, the last being the one completed; what bash offers, sorted.
    std::ofstream(dir / "driver.sh") << R"(source "$1"
cd "$2"
complete_line() {
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  _faceq faceq "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' ' -
}
complete_line faceq an
complete_line faceq gallery ex
complete_line faceq models l
complete_line faceq analyze --det
complete_line faceq analyze --detector y
complete_line faceq analyze --detector = c
complete_line faceq --color al
complete_line faceq --home /tmp gal
complete_line faceq bench detection photos/al
complete_line faceq analyze -r photos/a
complete_line faceq serve --port 80
complete_line faceq completion z
complete_line faceq models list --na
complete_line faceq analyze --ho
)";
    const auto run = run_command({"bash", "--norc", "--noprofile", (dir / "driver.sh").string(),
                                  (dir / "faceq.bash").string(), dir.path().string()});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(run.out ==
          "analyze\n"
          "export\n"
          "list\n"
          "--detector\n"
          "yunet\n"
          "cnn\n"
          "always\n"
          "gallery\n"
          "photos/album\n"
          "photos/a.jpg photos/album\n"
          "\n"
          "zsh\n"
          // `models` falls through: --name (of models) after `list`; analyze does not: no --home.
          "--name\n"
          "\n");
}

TEST_CASE(
    "faceq completion zsh is the bash script behind zsh's bashcompinit\\, as an fpath file; another shell is a "
    "usage error; a failed write is an error",
    "[completion]") {
    const auto bash = run_faceq({"completion", "bash"});
    const auto zsh = run_faceq({"completion", "zsh"});
    REQUIRE(zsh.exit_code == 0);
    // A file for $fpath (compinit autoloads it by its #compdef line) that
    // also completes the first word it was autoloaded for.
    CHECK(zsh.out.rfind("#compdef faceq\n", 0) == 0);
    CHECK(zsh.out.find("autoload -U +X bashcompinit && bashcompinit\n") != std::string::npos);
    CHECK(zsh.out.find(bash.out) != std::string::npos);
    CHECK(zsh.out.find("_bash_complete -F _faceq") > zsh.out.find(bash.out));

    const auto fish = run_faceq({"completion", "fish"});
    CHECK(fish.exit_code == 2);
    CHECK(fish.err.find("fish") != std::string::npos);
    CHECK(fish.out.empty());

    // A failed write (here: a full disk) is an error, not a truncated file with exit 0.
    for (const char* command : {"completion bash", "manpage"}) {
        const auto full = run_command({"sh", "-c", std::string("\"$0\" ") + command + " >/dev/full", FACEQ_BINARY});
        INFO(command);
        CHECK(full.exit_code == 1);
        CHECK(full.err.find("cannot write the") != std::string::npos);
    }
}
