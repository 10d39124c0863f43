// cmd_completion.cpp — `faceq completion bash|zsh` and the hidden
// `faceq manpage`: the shell completion script and the man page faceq(1),
// both generated from the CLI11 App tree that main() built, so that neither
// drifts from the options (docs/packaging.md).
//
//   faceq completion bash     a bash completion script on stdout (plain bash
//                             or bash-completion; the package installs it)
//   faceq completion zsh      the same for zsh, through its bashcompinit
//   faceq manpage [--date D]  faceq.1 in roff on stdout (CMake runs it at build
//                             time; hidden from --help)
//
// What is read from the tree: every subcommand that --help shows (nested ones
// too), its options and positionals with their descriptions, type names,
// defaults (as --help shows them: capture_default_str), whether they repeat or
// are required, and their validators: CLI::IsMember's "{a,b,c}" becomes the
// option's choices, CLI::ExistingDirectory a directory argument; any other
// TEXT option or positional completes file names, numbers complete nothing.
// A subcommand or option in the empty group (hidden from --help) is left out
// of both. Not help2man: it sees one --help page and no subcommand sections.
#include <fmt/format.h>

#include <cctype>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "context.hpp"
#include "faceq/base/error.hpp"
#include "faceq/base/home.hpp"

namespace faceq::cli {
namespace {

enum class ValueKind { none, choice, file, directory, other };

struct OptionDoc {
    std::vector<std::string> names;  // "-j", "--jobs"; a positional: its name
    bool positional = false;
    bool required = false;
    bool repeats = false;
    ValueKind kind = ValueKind::none;  // none: a flag
    std::string type;                  // INT, TEXT, ... (empty for a flag)
    std::vector<std::string> choices;
    std::string description;
    std::string default_value;
    std::string envname;
    std::vector<std::string> needs, excludes;  // other options' names, as --help shows them
};

struct CommandDoc {
    CLI::App* app = nullptr;
    std::string path;  // "" for faceq itself, "gallery export", ...
    std::string description;
    std::vector<OptionDoc> options;
    std::vector<OptionDoc> positionals;
    std::vector<CLI::App*> subcommands;
    bool needs_subcommand = false;
};

std::vector<std::string> split_choices(const std::string& set) {
    std::vector<std::string> out;
    std::string item;
    for (char c : set.substr(1, set.size() - 2)) {
        if (c == ',') {
            out.push_back(item);
            item.clear();
        } else {
            item += c;
        }
    }
    if (!item.empty()) out.push_back(item);
    return out;
}

OptionDoc describe(CLI::Option* opt) {
    OptionDoc doc;
    doc.positional = !opt->nonpositional();
    if (doc.positional) {
        doc.names.push_back(opt->get_name(true));
    } else {
        for (const auto& s : opt->get_snames()) doc.names.push_back("-" + s);
        for (const auto& l : opt->get_lnames()) doc.names.push_back("--" + l);
    }
    doc.required = opt->get_required();
    doc.repeats =
        opt->get_items_expected_max() > 1 || opt->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll;
    doc.description = opt->get_description();
    doc.default_value = opt->get_default_str();
    doc.envname = opt->get_envname();
    for (const CLI::Option* o : opt->get_needs()) doc.needs.push_back(o->get_name());
    for (const CLI::Option* o : opt->get_excludes()) doc.excludes.push_back(o->get_name());
    if (opt->get_items_expected_max() == 0) return doc;  // a flag
    const std::string type_name = opt->get_type_name();
    doc.type = type_name.substr(0, type_name.find(':'));
    doc.kind = doc.type == "TEXT" ? ValueKind::file : ValueKind::other;
    // CLI11 2.1 counts no validators: get_validator(i) throws past the last one.
    std::vector<std::string> validators;
    try {
        for (int i = 0;; ++i) validators.push_back(opt->get_validator(i)->get_description());
    } catch (const CLI::OptionNotFound&) {
    }
    for (const std::string& d : validators) {
        if (d.size() >= 2 && d.front() == '{' && d.back() == '}' && d.find("->") == std::string::npos) {
            doc.kind = ValueKind::choice;
            doc.choices = split_choices(d);
        } else if (d == "DIR") {
            doc.kind = ValueKind::directory;
        } else if (d == "FILE" || d == "PATH(existing)" || d == "PATH(non-existing)") {
            doc.kind = ValueKind::file;
        }
    }
    return doc;
}

bool shown(const CLI::App* app) { return !app->get_name().empty() && !app->get_group().empty(); }

CommandDoc describe(CLI::App* app, const std::string& path, bool completion) {
    CommandDoc doc;
    doc.app = app;
    doc.path = path;
    doc.description = app->get_description();
    // -h/--help is said once, for faceq itself; completion offers it everywhere.
    const CLI::Option* help = path.empty() || completion ? nullptr : app->get_help_ptr();
    for (CLI::Option* opt : app->get_options([help](CLI::Option* o) { return !o->get_group().empty() && o != help; })) {
        OptionDoc o = describe(opt);
        (o.positional ? doc.positionals : doc.options).push_back(std::move(o));
    }
    doc.subcommands = app->get_subcommands([](CLI::App* s) { return shown(s); });
    doc.needs_subcommand = app->get_require_subcommand_min() > 0;
    return doc;
}

// Every shown command, depth first, faceq itself first; `completion`: for
// the completion script (-h/--help in every command).
void walk(CLI::App* app, const std::string& path, bool completion, std::vector<CommandDoc>& out) {
    out.push_back(describe(app, path, completion));
    const auto subs = out.back().subcommands;
    for (CLI::App* sub : subs)
        walk(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), completion, out);
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
    return out;
}

// ---------------------------------------------------------------- roff

// Text for a roff line: backslashes escaped, a leading '.' or '\'' made
// literal, every non-ASCII character as \[uXXXX] (groff and mandoc both read
// it; the help texts hold em dashes and the like).
std::string roff(const std::string& text, bool minus = false) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\\') {
            out += "\\e";
        } else if (c == '-' && minus) {
            out += "\\-";
        } else if (c == '\n') {
            out += "\n.br\n";
        } else if (c < 0x80) {
            if ((c == '.' || c == '\'') && (out.empty() || out.back() == '\n')) out += "\\&";
            out += static_cast<char>(c);
        } else {
            int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
            unsigned cp = c & (0x3F >> extra);
            for (; extra > 0 && i + 1 < text.size(); --extra) cp = (cp << 6) | (text[++i] & 0x3F);
            out += fmt::format("\\[u{:04X}]", cp);
        }
    }
    return out;
}

// Escaped roff text filled into lines of at most ~78 bytes at spaces (mandoc
// -T lint asks for it; a line break in filled text is a space). None of the
// escapes made here holds a space; a line that would start with '.' or '\''
// gets \& first.
std::string wrap(const std::string& text) {
    std::string out, line, word;
    std::istringstream lines(text);
    std::string input;
    const auto end_line = [&] {
        if (!line.empty() && (line.front() == '.' || line.front() == '\'')) line = "\\&" + line;
        out += line + "\n";
        line.clear();
    };
    while (std::getline(lines, input)) {
        if (!input.empty() && input.front() == '.' && input.rfind(".br", 0) == 0) {
            out += input + "\n";
            continue;
        }
        std::istringstream words(input);
        while (words >> word) {
            if (!line.empty() && line.size() + 1 + word.size() > 78) {
                // A line ending in '.' ends a sentence to roff (two spaces):
                // not so before a lower-case word ("e.g. 0.01", "vs. the").
                if (std::string(".?!").find(line.back()) != std::string::npos &&
                    !std::isupper(static_cast<unsigned char>(word.front())))
                    line += "\\&";
                end_line();
            }
            line += (line.empty() ? "" : " ") + word;
        }
        if (!line.empty()) end_line();
    }
    if (!out.empty()) out.pop_back();
    return out;
}

std::string bold(const std::string& s) { return "\\fB" + roff(s, true) + "\\fR"; }
std::string italic(const std::string& s) { return "\\fI" + roff(s, true) + "\\fR"; }

std::string option_heading(const OptionDoc& o) {
    std::vector<std::string> names;
    for (const auto& n : o.names) names.push_back(o.positional ? italic(n) : bold(n));
    std::string head = join(names, ", ");
    if (!o.positional && o.kind != ValueKind::none)
        head += " " + italic(o.kind == ValueKind::choice ? join(o.choices, "|") : o.type);
    if (o.repeats) head += " ...";
    return head;
}

std::string option_text(const OptionDoc& o) {
    std::string text = o.description;
    std::vector<std::string> notes;
    if (o.required) notes.push_back("required");
    if (o.positional && o.kind == ValueKind::choice) notes.push_back("one of " + join(o.choices, ", "));
    if (!o.default_value.empty()) notes.push_back("default: " + o.default_value);
    if (!o.envname.empty()) notes.push_back("environment: " + o.envname);
    if (!o.needs.empty()) notes.push_back("needs " + join(o.needs, ", "));
    if (!o.excludes.empty()) notes.push_back("not with " + join(o.excludes, ", "));
    if (!notes.empty()) text += (text.empty() ? "" : " ") + ("(" + join(notes, "; ") + ")");
    return wrap(roff(text));
}

std::string synopsis(const CommandDoc& c) {
    std::string s = bold(c.path.empty() ? "faceq" : "faceq " + c.path);
    if (!c.options.empty()) s += " [" + italic("OPTIONS") + "]";
    if (!c.subcommands.empty()) s += c.needs_subcommand ? " " + italic("COMMAND") : " [" + italic("COMMAND") + "]";
    for (const auto& p : c.positionals) {
        const std::string name = italic(p.names.front()) + (p.repeats ? " ..." : "");
        s += p.required ? " " + name : " [" + name + "]";
    }
    return s;
}

void write_options(std::ostream& out, const std::vector<OptionDoc>& options) {
    for (const auto& o : options) out << ".TP\n" << option_heading(o) << "\n" << option_text(o) << "\n";
}

std::string man_page(CLI::App& app, const std::string& date) {
    std::vector<CommandDoc> commands;
    walk(&app, "", false, commands);
    std::ostringstream out;
    out << ".\\\" faceq.1 - generated by `faceq manpage` from faceq's command-line definition; do not edit.\n";
    out << ".TH FACEQ 1 " << (date.empty() ? "\"\"" : "\"" + date + "\"") << " \"faceq " << faceq::version()
        << "\" \"User Commands\"\n";
    // The summary after "faceq — " in faceq's own description.
    const std::string& about = commands.front().description;
    const auto dash = about.find("\xE2\x80\x94 ");
    out << ".SH NAME\nfaceq \\- " << roff(dash == std::string::npos ? about : about.substr(dash + 4)) << "\n";
    out << ".SH SYNOPSIS\n";
    out << bold("faceq") << " [" << italic("OPTIONS") << "] " << italic("COMMAND") << " [" << italic("ARGS")
        << "]\n.br\n"
        << bold("faceq --version") << "\n";
    out << ".SH DESCRIPTION\n"
        << wrap(
               roff("faceq finds the faces in photos, describes them (landmarks, gender, age, a 128-D descriptor) and "
                    "identifies them against a gallery of known persons, offline. Each subcommand below does one part; "
                    "the global options come before the subcommand. Records go to stdout as JSON Lines (one JSON "
                    "object a line), messages for people to stderr."))
        << "\n";
    out << ".SH OPTIONS\n";
    write_options(out, commands.front().options);
    out << ".SH COMMANDS\n";
    for (std::size_t i = 1; i < commands.size(); ++i) {
        const auto& c = commands[i];
        out << ".SS \"" << roff("faceq " + c.path, true) << "\"\n";
        out << wrap(synopsis(c)) << "\n.PP\n" << wrap(roff(c.description)) << "\n";
        if (!c.subcommands.empty()) {
            std::vector<std::string> names;
            for (const CLI::App* s : c.subcommands) names.push_back(bold(s->get_name()));
            out << ".PP\n" << wrap("Subcommands: " + join(names, ", ") + ".") << "\n";
        }
        write_options(out, c.positionals);
        write_options(out, c.options);
    }
    out << ".SH ENVIRONMENT\n";
    const std::pair<const char*, const char*> env[] = {
        {"FACEQ_HOME", "The state directory (models, gallery, registry) when --home is not given."},
        {"XDG_DATA_HOME",
         "Without FACEQ_HOME, the state directory is $XDG_DATA_HOME/faceq, else "
         "$HOME/.local/share/faceq."},
        {"FACEQ_DB", "The gallery's PostgreSQL database when --db is not given."},
        {"FACEQ_DATA_DIR", "The directory holding models.json when --data-dir is not given."},
        {"FACEQ_MIRROR",
         "A local directory (or URL) to download models and datasets from instead of their "
         "upstream addresses."},
        {"FACEQ_API_KEY", "The API key of faceq serve when --api-key-file is not given."},
        {"NO_COLOR", "When set and not empty, no colour on stderr with --color auto."},
    };
    for (const auto& [name, text] : env) out << ".TP\n" << bold(name) << "\n" << wrap(roff(text)) << "\n";
    out << ".SH FILES\n"
        << ".TP\n"
        << bold("/usr/share/faceq/models.json") << "\n"
        << wrap(roff("The models faceq knows, with their checksums (data/ of the source tree, or next to the binary)."))
        << "\n.TP\n"
        << italic("HOME") << "/models, " << italic("HOME") << "/faceq.db\n"
        << roff("Downloaded models and the SQLite gallery, under the state directory (--home).") << "\n"
        << ".TP\n"
        << bold("/etc/default/faceq") << ", " << bold("/etc/faceq/api-key") << ", " << bold("/var/lib/faceq") << "\n"
        << wrap(roff("With the Debian package: the settings and the API key of the service faceq.service (faceq "
                     "serve as the user faceq), and its state directory; models for it are downloaded with "
                     "sudo -u faceq faceq --home /var/lib/faceq download models."))
        << "\n";
    out << ".SH EXIT STATUS\n"
        << ".TP\n0\nSuccess.\n.TP\n1\n"
        << roff("Failure, including a batch in which some inputs failed.") << "\n.TP\n2\n"
        << roff("Usage error: an unknown option, a bad value, a missing argument.") << "\n";
    out << ".SH SEE ALSO\n"
        << wrap(roff(
               "The README and docs/ of faceq's source tree (installed under /usr/share/doc/faceq by the package)."))
        << "\n";
    return out.str();
}

// ---------------------------------------------------------------- bash

std::string shell_quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// A subcommand with fallthrough (`models list --name X`) also takes its
// parent's options after it, and so on up while the parent has it too:
// completion offers them with its own.
void add_fallthrough_options(std::vector<CommandDoc>& commands) {
    std::vector<std::vector<OptionDoc>> inherited(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
        std::set<std::string> names;
        for (const auto& o : commands[i].options) names.insert(o.names.begin(), o.names.end());
        for (const CLI::App* a = commands[i].app; a->get_fallthrough() && a->get_parent(); a = a->get_parent())
            for (const auto& parent : commands)
                if (parent.app == a->get_parent())
                    for (const auto& o : parent.options)
                        if (!names.count(o.names.front())) {
                            names.insert(o.names.begin(), o.names.end());
                            inherited[i].push_back(o);
                        }
    }
    for (std::size_t i = 0; i < commands.size(); ++i)
        commands[i].options.insert(commands[i].options.end(), inherited[i].begin(), inherited[i].end());
}

std::string bash_script(CLI::App& app) {
    std::vector<CommandDoc> commands;
    walk(&app, "", true, commands);
    add_fallthrough_options(commands);
    std::ostringstream out;
    out << "# bash completion for faceq(1) — generated by `faceq completion bash` from faceq " << faceq::version()
        << "'s\n# own command-line definition; do not edit. Plain bash: source it. With bash-completion,\n"
           "# installed as /usr/share/bash-completion/completions/faceq, it loads on first use.\n\n";
    out << "# _faceq_command PATH: for the command PATH (\"\" for faceq itself, \"gallery export\", ...),\n"
           "# its subcommands, options, options taking a value, and what its positional\n"
           "# arguments are (file, dir or none). Returns 1 for an unknown PATH.\n"
           "_faceq_command() {\n    case \"$1\" in\n";
    for (const auto& c : commands) {
        std::vector<std::string> subs, opts, vals;
        for (const CLI::App* s : c.subcommands) subs.push_back(s->get_name());
        for (const auto& o : c.options)
            for (const auto& n : o.names) {
                opts.push_back(n);
                if (o.kind != ValueKind::none) vals.push_back(n);
            }
        std::string pos = "none";
        for (const auto& p : c.positionals)
            if (p.kind == ValueKind::file || p.kind == ValueKind::other)
                pos = "file";
            else if (p.kind == ValueKind::directory && pos == "none")
                pos = "dir";
            else if (p.kind == ValueKind::choice)
                pos = "words:" + join(p.choices, " ");
        out << "        " << shell_quoted(c.path) << ")\n            _faceq_subs=" << shell_quoted(join(subs, " "))
            << "\n            _faceq_opts=" << shell_quoted(join(opts, " "))
            << "\n            _faceq_vals=" << shell_quoted(join(vals, " "))
            << "\n            _faceq_pos=" << shell_quoted(pos) << " ;;\n";
    }
    out << "        *) return 1 ;;\n    esac\n}\n\n";
    out << "# _faceq_value PATH OPTION: completes the value of OPTION of the command PATH.\n"
           "_faceq_value() {\n    case \"$1|$2\" in\n";
    for (const auto& c : commands)
        for (const auto& o : c.options) {
            if (o.kind == ValueKind::none || o.kind == ValueKind::other) continue;
            std::vector<std::string> labels;
            for (const auto& n : o.names) labels.push_back(shell_quoted(c.path + "|" + n));
            out << "        " << join(labels, " | ") << ") ";
            if (o.kind == ValueKind::choice)
                out << "_faceq_words " << shell_quoted(join(o.choices, " "));
            else
                out << (o.kind == ValueKind::directory ? "_faceq_files -d" : "_faceq_files");
            out << " ;;\n";
        }
    out << "        *) COMPREPLY=() ;; # a number: nothing to offer\n    esac\n}\n\n";
    out << R"BASH(_faceq_words() {
    local IFS=$' \t\n'
    COMPREPLY=($(compgen -W "$1" -- "$cur"))
}

# _faceq_files [-d]: file (or directory) names, by bash-completion's _filedir
# when it is loaded, else by compgen.
_faceq_files() {
    if declare -f _filedir >/dev/null; then
        _filedir "$@"
        return
    fi
    local IFS=$'\n'
    if [[ "$1" == -d ]]; then
        COMPREPLY=($(compgen -d -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    type compopt &>/dev/null && compopt -o filenames 2>/dev/null
    return 0
}

_faceq() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" word opt="" i skip=0
    local _faceq_subs _faceq_opts _faceq_vals _faceq_pos
    COMPREPLY=()
    ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD - 1]}"
    # The subcommands typed so far; an option's value is skipped. bash splits
    # --option=value into three words (= is in COMP_WORDBREAKS).
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if ((skip)); then
            skip=0
            continue
        fi
        _faceq_command "$path" || return 0
        case "$word" in
            =) skip=1 ;;
            --*=*) ;;
            -*) [[ " $_faceq_vals " == *" $word "* && "${COMP_WORDS[i + 1]}" != = ]] && skip=1 ;;
            *) [[ " $_faceq_subs " == *" $word "* ]] && path="${path:+$path }$word" ;;
        esac
    done
    _faceq_command "$path" || return 0
    if [[ "$cur" == = ]]; then
        opt="$prev"
        cur=""
    elif [[ "$prev" == = ]] && ((COMP_CWORD > 1)); then
        opt="${COMP_WORDS[COMP_CWORD - 2]}"
    elif [[ "$cur" == --*=* ]]; then
        opt="${cur%%=*}"
        cur="${cur#*=}"
    elif [[ "$prev" == -* && " $_faceq_vals " == *" $prev "* ]]; then
        opt="$prev"
    fi
    if [[ -n "$opt" ]]; then
        [[ " $_faceq_vals " == *" $opt "* ]] && _faceq_value "$path" "$opt"
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        _faceq_words "$_faceq_opts"
    elif [[ -n "$_faceq_subs" ]]; then
        _faceq_words "$_faceq_subs"
    else
        case "$_faceq_pos" in
            file) _faceq_files ;;
            dir) _faceq_files -d ;;
            words:*) _faceq_words "${_faceq_pos#words:}" ;;
        esac
    fi
    return 0
}
complete -F _faceq faceq
)BASH";
    return out.str();
}

struct CompletionCommand {
    std::string shell;
};

// Writes `text` to stdout; a full disk or a closed pipe is an error, so that
// the build step writing faceq.1 (cmake/packaging.cmake) fails, not ships a
// truncated file.
int print(const std::string& text, const char* what) {
    std::cout << text << std::flush;
    if (!std::cout) throw Error(ErrorKind::io, fmt::format("cannot write the {} to stdout", what));
    return 0;
}

}  // namespace

std::pair<CLI::App*, Runner> register_completion(CLI::App& app, Context& /*ctx*/) {
    auto cmd = std::make_shared<CompletionCommand>();
    auto* sub = app.add_subcommand(
        "completion", "Print a shell completion script (e.g. source <(faceq completion bash) in ~/.bashrc)");
    sub->add_option("shell", cmd->shell, "The shell")->required()->check(CLI::IsMember({"bash", "zsh"}));
    return {sub, [cmd, &app] {
                // zsh runs the bash script through its bashcompinit. As a file _faceq in
                // $fpath, compinit autoloads it for the first `faceq <TAB>`: it then
                // defines the functions and completes that first word too.
                std::string text;
                if (cmd->shell == "zsh")
                    text +=
                        "#compdef faceq\n"
                        "# zsh completion for faceq, through zsh's bashcompinit: a file _faceq in $fpath\n"
                        "# (the package: /usr/share/zsh/vendor-completions), or source <(faceq completion "
                        "zsh)\n# in ~/.zshrc after compinit.\n"
                        "autoload -U +X bashcompinit && bashcompinit\n";
                text += bash_script(app);
                if (cmd->shell == "zsh") text += "if (( ${+compstate} )); then _bash_complete -F _faceq; fi\n";
                return print(text, "completion script");
            }};
}

std::pair<CLI::App*, Runner> register_manpage(CLI::App& app, Context& /*ctx*/) {
    auto date = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("manpage", "Print the man page faceq(1) in roff (used by the build)");
    sub->group("");  // hidden: a build step, not a user's command
    sub->add_option("--date", *date, "The page's date (YYYY-MM-DD)");
    return {sub, [date, &app] { return print(man_page(app, *date), "man page"); }};
}

}  // namespace faceq::cli
