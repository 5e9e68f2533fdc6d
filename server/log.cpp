// Log line formatting and the stderr/file sinks (see log.hpp).
#include "log.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

namespace pillarbox::log {
namespace {

std::string short_hostname();

struct State {
    std::mutex mu;
    std::string name = "pillarbox";
    std::string host = short_hostname();
    Level min = Level::Info;
    std::FILE* file = nullptr;
};

std::string short_hostname() {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::string h(host);
    h = h.substr(0, h.find('.'));
    return h.empty() ? "localhost" : h;
}

State& state() {
    static State s;
    return s;
}

const char* prefix(Level l) {
    switch (l) {
        case Level::Debug: return "debug: ";
        case Level::Info: return "";
        case Level::Warning: return "warning: ";
        case Level::Error: return "error: ";
        case Level::Fatal: return "fatal: ";
    }
    return "";
}

}  // namespace

Level parse_level(std::string_view name) {
    if (name == "debug") return Level::Debug;
    if (name == "warning") return Level::Warning;
    if (name == "error") return Level::Error;
    return Level::Info;
}

std::string configure(std::string_view syslog_name, Level min_level, const std::string& file) {
    State& s = state();
    std::lock_guard lock(s.mu);
    s.name = std::string(syslog_name);
    s.min = min_level;
    if (s.file) std::fclose(s.file);
    s.file = nullptr;
    if (file.empty()) return "";
    s.file = std::fopen(file.c_str(), "a");
    if (!s.file) return fmt::format("cannot open log file {}: {}", file, std::strerror(errno));
    return "";
}

bool enabled(Level level) { return level >= state().min; }

void write(Level level, std::string_view service, std::string_view id, std::string_view message) {
    State& s = state();
    char stamp[32];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
    static const pid_t pid = getpid();  // a system call per line otherwise (glibc doesn't cache it)
    std::lock_guard lock(s.mu);
    std::string out = fmt::format("{} {} {}/{}[{}]: {}{}{}{}\n", stamp, s.host, s.name,
                                  service, pid, id, id.empty() ? "" : ": ", prefix(level), message);
    std::fwrite(out.data(), 1, out.size(), stderr);
    if (s.file) {
        std::fwrite(out.data(), 1, out.size(), s.file);
        std::fflush(s.file);
    }
}

}  // namespace pillarbox::log
