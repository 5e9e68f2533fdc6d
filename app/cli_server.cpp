// pillarbox serve, config, check and version: the commands about the server itself.
#include "app/cli.hpp"

#include <CLI/CLI.hpp>

#include <openssl/crypto.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>

#include "app/protocols.hpp"
#include "app/serve.hpp"
#include "server/file_modes.hpp"
#include "server/server.hpp"
#include "server/tls.hpp"

namespace pillarbox::app {

using config::Config;
using config::Diagnostic;

namespace {

struct ConfigOptions {
    bool non_default = false;  // -n
    bool defaults = false;     // -d
    bool expand = false;       // -x
    bool doc = false;          // --doc: the Markdown reference
    std::vector<std::string> names;
};

int config(const ConfigPath& cfg, const config::Environment& env, const ConfigOptions& opt) {
    if (opt.doc) {
        std::cout << parameter_reference(env);
        return 0;
    }
    std::vector<Diagnostic> diags;
    Config c = Config::load_file(cfg.path, cfg.explicit_, env, diags);
    print_diagnostics(diags);
    std::vector<std::string> names = opt.names.empty() ? c.names() : opt.names;
    int rc = 0;
    for (auto& n : names) {
        if (!c.def(n)) {
            std::cerr << "pillarbox: warning: " << n << ": unknown parameter\n";
            rc = 1;
            continue;
        }
        if (opt.non_default && !c.is_set(n)) continue;
        std::string value = opt.defaults ? c.default_value(n) : opt.expand ? c.get(n) : c.raw(n);
        std::cout << n << " =" << (value.empty() ? "" : " ") << value << "\n";
    }
    return rc;
}

// fix (check --fix): chmod what is looser than 0700/0600 in the data folder (see file_modes.hpp).
int check(const ConfigPath& cfg, const config::Environment& env, bool fix) {
    std::vector<Diagnostic> diags;
    Config c = Config::load_file(cfg.path, cfg.explicit_, env, diags);
    // The registry for its listener checks (an SMTP listener's restriction lists); no session runs.
    auto protocols = protocol_registry(SessionServices::make());
    auto rt = build_runtime(c, diags, /*create_files=*/false, &protocols);
    auto add = [&](Diagnostic::Severity sev, std::string msg) { diags.push_back({sev, "", 0, std::move(msg)}); };
    bool loose = false;  // modes looser than 0700/0600 left in the data folder
    if (rt) {
        namespace fs = std::filesystem;
        const auto& s = rt->settings;
        std::error_code ec;
        fs::path dir(s.data_directory);
        if (!fs::exists(dir, ec)) {
            fs::path parent = fs::absolute(dir, ec).parent_path();
            if (::access(parent.c_str(), W_OK) != 0)
                add(Diagnostic::Error, fmt::format("data_directory {} does not exist and {} is not writable", s.data_directory, parent.string()));
            else
                add(Diagnostic::Warning, fmt::format("data_directory {} does not exist yet; serve creates it", s.data_directory));
        } else {
            struct stat st{};
            if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
                add(Diagnostic::Error, fmt::format("data_directory {} is not a directory", s.data_directory));
            else if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0)
                add(Diagnostic::Error, fmt::format("data_directory {} is not writable by uid {}", s.data_directory, geteuid()));
            else if ((st.st_mode & S_IWOTH) && !fix)
                add(Diagnostic::Error, fmt::format("data_directory {} is world-writable", s.data_directory));
            // Everything in the data folder is the server's alone: account database (password
            // hashes, SCRAM keys), mail, indexes, queue, TLS key.
            constexpr std::size_t kShown = 100;
            auto found = files::find_loose_modes(dir, fix);
            std::size_t shown = 0;
            for (auto& l : found) {
                if (!l.error.empty()) {
                    add(Diagnostic::Error, fmt::format("{}: mode {:04o}, should be {:04o}; chmod failed: {}", l.path, l.mode, l.wanted, l.error));
                    continue;
                }
                if (++shown > kShown) continue;
                if (l.fixed) std::cerr << fmt::format("pillarbox: {}: mode {:04o} changed to {:04o}\n", l.path, l.mode, l.wanted);
                else std::cerr << fmt::format("pillarbox: warning: {}: mode {:04o}, should be {:04o}\n", l.path, l.mode, l.wanted);
            }
            if (shown > kShown)
                std::cerr << fmt::format("pillarbox: {} more path(s) {}\n", shown - kShown, fix ? "changed" : "with a looser mode");
            if (!fix && !found.empty()) {
                loose = true;
                std::cerr << fmt::format("pillarbox: {} path(s) in {} give group or others access; repair with: pillarbox check --fix\n",
                                         found.size(), s.data_directory);
            }
        }
        for (auto& [name, ls] : rt->listeners) {
            for (auto& ep : ls->line.endpoints)
                if (ep.port < 1024 && !env.root)
                    add(Diagnostic::Error, fmt::format("listen_{}: port {} needs root (ports below 1024 are privileged)", name, ep.port));
            if (ls->line.tls == config::TlsMode::None) continue;
            auto ts = tls::TlsSettings::from(*ls->config);
            std::string err;
            auto files = tls::resolve_cert_files(ts, s.hostname, s.data_directory, false, err);
            if (files.missing) {
                add(Diagnostic::Warning, fmt::format("listen_{}: no tls_cert_file; serve generates a self-signed certificate for {} in {}",
                                                     name, s.hostname, files.cert));
                continue;
            }
            struct stat st{};
            if (::stat(files.key.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) && (st.st_mode & S_IROTH))
                add(Diagnostic::Error, fmt::format("listen_{}: private key {} is readable by everyone", name, files.key));
        }
    }
    print_diagnostics(diags);
    bool errors = std::any_of(diags.begin(), diags.end(), [](const Diagnostic& d) { return d.severity == Diagnostic::Error; });
    if (errors || loose) {
        std::cerr << "pillarbox: " << cfg.path << ": " << (errors ? "errors found" : "file modes too loose") << "\n";
        return 1;
    }
    std::cerr << "pillarbox: " << (c.source().empty() ? cfg.path + " not found, embedded defaults" : cfg.path) << ": OK\n";
    return 0;
}

int version() {
    fmt::print("pillarbox {}\nTLS: {}\nSQLite: {}\n", PILLARBOX_VERSION, OpenSSL_version(OPENSSL_VERSION), sqlite3_libversion());
    return 0;
}

}  // namespace

void add_server_commands(CLI::App& cli, Invocation& run) {
    cli.add_subcommand("serve", "run the server in the foreground")->callback([&run] {
        auto env = run.env();
        run.exit_code = serve(run.config_path(env), env);
    });
    auto copt = std::make_shared<ConfigOptions>();
    auto* config_cmd = cli.add_subcommand("config", "print effective parameter values, like postconf");
    config_cmd->add_flag("-n", copt->non_default, "only parameters set in the configuration file");
    config_cmd->add_flag("-d", copt->defaults, "default values");
    config_cmd->add_flag("-x", copt->expand, "expand $name references");
    config_cmd->add_flag("--doc", copt->doc, "print the parameter reference in Markdown");
    config_cmd->add_option("NAME", copt->names, "parameters to print");
    config_cmd->callback([&run, copt] {
        auto env = run.env();
        run.exit_code = config(run.config_path(env), env, *copt);
    });
    auto fix = std::make_shared<bool>(false);
    auto* check_cmd = cli.add_subcommand("check", "validate configuration, files and permissions, like postfix check");
    check_cmd->add_flag("--fix", *fix, "make what is in the data folder private again (folders 0700, files 0600)");
    check_cmd->callback([&run, fix] {
        auto env = run.env();
        run.exit_code = check(run.config_path(env), env, *fix);
    });
    cli.add_subcommand("version", "print version and library versions")->callback([&run] { run.exit_code = version(); });
}

std::string parameter_reference(const config::Environment& env) {
    std::string out =
        "# Configuration reference\n\n"
        "Generated by `pillarbox config --doc`; a test keeps it in step with the code.\n\n"
        "`pillarbox.conf` uses Postfix's main.cf grammar: `name = value` lines; a line starting with\n"
        "whitespace continues the previous one; a line whose first non-blank character is `#` is a\n"
        "comment (a `#` later in a line is part of the value). `$name`, `${name}` and `$(name)` expand\n"
        "to another parameter's value, `${name?text}` to text when name is non-empty, `${name:text}`\n"
        "to text when name is empty, `$$` to a literal `$`. Unknown names, names set twice and\n"
        "expansion loops are reported with file:line (`pillarbox check`).\n\n"
        "Values: sizes take k, M, G (binary: 1M = 1048576); times take s, m, h, d, w (a bare number\n"
        "is seconds); booleans are yes/no; lists are separated by commas and/or whitespace; networks\n"
        "are written `192.0.2.0/24` and `[2001:db8::]/32`.\n\n"
        "Listeners are parameters named `listen_NAME`: `PROTOCOL TLS-MODE ADDRESS... [NAME=VALUE...]`\n"
        "where PROTOCOL is smtp, pop3, imap or http; TLS-MODE is none, starttls or implicit; an\n"
        "ADDRESS is `PORT` (every address of inet_interfaces), `IPv4:PORT` or `[IPv6]:PORT`; and\n"
        "NAME=VALUE pairs override parameters marked *per listener* for that listener only. Add your\n"
        "own, e.g. `listen_smtp_alt = smtp starttls 2525` for a VPS whose provider blocks port 25;\n"
        "set one to an empty value to switch it off.\n\n"
        "Defaults below are for a server run as an ordinary user; run as root the listeners use the\n"
        "standard ports and data_directory is /var/lib/pillarbox.\n\n";
    config::Environment doc_env = env;
    doc_env.root = false;
    doc_env.hostname = "(the system host name)";
    Config c = Config::defaults(doc_env);
    for (auto& d : config::parameter_table(doc_env)) {
        std::string def = d.computed_default ? "(computed)" : d.default_value;
        out += fmt::format("## {}\n\nDefault: `{}`{}\n\n{}\n\n", d.name, def.empty() ? "(empty)" : def,
                           d.per_listener ? " — per listener" : "", d.doc);
    }
    return out;
}

}  // namespace pillarbox::app
