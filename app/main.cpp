// pillarbox: the command line (CLI11). Each family of subcommands adds itself and runs from its
// callback; main only sets what every command shares.
#include <CLI/CLI.hpp>

#include <sys/stat.h>

#include "app/cli.hpp"

int main(int argc, char** argv) {
    using namespace pillarbox;
    // Everything the server and the CLI create (account database and its -wal/-shm, mail,
    // indexes, queue files, TLS key) is for the server's user alone: 0600 files, 0700 folders.
    ::umask(077);
    CLI::App cli{"Pillarbox: SMTP, POP3 and IMAP mail server in one process"};
    cli.require_subcommand(1);
    app::Invocation run;
    cli.add_option("-c,--config", run.config_file, "configuration file (default ./pillarbox.conf, or /etc/pillarbox/pillarbox.conf as root)");
    app::add_server_commands(cli, run);
    app::add_index_commands(cli, run);
    app::add_queue_commands(cli, run);
    app::add_account_commands(cli, run);
    CLI11_PARSE(cli, argc, argv);
    return run.exit_code;
}
