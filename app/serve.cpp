// pillarbox serve (see serve.hpp).
#include "app/serve.hpp"

#include <asio/io_context.hpp>

#include <csignal>

#include "app/protocols.hpp"
#include "app/services.hpp"
#include "server/log.hpp"
#include "server/loop_guard.hpp"
#include "server/server.hpp"

namespace pillarbox::app {

int serve(const ConfigPath& cfg, const config::Environment& env) {
    // Filled by start_services before the first connection is served.
    auto sessions = SessionServices::make();
    std::signal(SIGPIPE, SIG_IGN);
    asio::io_context loop(1);
    Server server(loop, env, cfg.path, cfg.explicit_, protocol_registry(sessions));
    if (!server.start()) return 1;
    // Signals first: a SIGHUP or SIGTERM that arrives while services start is handled once the
    // loop runs instead of killing the process.
    server.handle_signals();
    // Created once the configuration is loaded and the listeners are up; lives until the loop
    // ends, and goes before the server and the loop.
    std::shared_ptr<MailServices> services;
    try {
        services = start_services(loop, server, *server.runtime().config, sessions);
    } catch (const std::exception& e) {
        log::error("master", "{}; not starting", e.what());
        return 1;
    }
    mark_loop_thread(true);
    log::gather_on(&loop);
    struct StopGathering {
        ~StopGathering() {
            mark_loop_thread(false);
            log::gather_on(nullptr);  // writes what the last turn gathered
        }
    } stop_gathering;
    loop.run();
    return 0;
}

}  // namespace pillarbox::app
