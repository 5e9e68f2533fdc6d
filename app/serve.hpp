// pillarbox serve: the protocol registry, the Server, the shared services and the loop.
#pragma once
#include "app/cli.hpp"

namespace pillarbox::app {

// Runs until SIGTERM/SIGINT has drained the connections. 0, or 1 when the start failed.
int serve(const ConfigPath& cfg, const config::Environment& env);

}  // namespace pillarbox::app
