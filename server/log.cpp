// Log line formatting and the stderr/file sinks (see log.hpp).
#include "log.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "loop_guard.hpp"

namespace pillarbox::log {
namespace {

std::string short_hostname();

struct State {
    std::mutex mu;
    std::string name = "pillarbox";
    std::string host = short_hostname();
    Level min = Level::Info;
    std::FILE* file = nullptr;
    asio::io_context* loop = nullptr;  // lines written on its thread wait for the end of its turn
    std::string pending;               // those lines, not yet written
    bool flush_posted = false;
    std::time_t stamp_second = -1;     // the time stamp, formatted once per second
    char stamp[32] = {};
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

// Under s.mu.
void emit(State& s, std::string_view out) {
    if (out.empty()) return;
    std::fwrite(out.data(), 1, out.size(), stderr);
    if (s.file) {
        std::fwrite(out.data(), 1, out.size(), s.file);
        std::fflush(s.file);
    }
}

void flush_pending(State& s) {
    emit(s, s.pending);
    s.pending.clear();
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
    flush_pending(s);  // gathered lines go to the file they were written for
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

void gather_on(asio::io_context* loop) {
    State& s = state();
    std::lock_guard lock(s.mu);
    flush_pending(s);
    s.loop = loop;
}

void flush() {
    State& s = state();
    std::lock_guard lock(s.mu);
    s.flush_posted = false;
    flush_pending(s);
}

void write(Level level, std::string_view service, std::string_view id, std::string_view message) {
    State& s = state();
    static const pid_t pid = getpid();  // a system call per line otherwise (glibc doesn't cache it)
    std::time_t now = std::time(nullptr);
    std::lock_guard lock(s.mu);
    if (now != s.stamp_second) {
        std::tm tm{};
        localtime_r(&now, &tm);
        std::strftime(s.stamp, sizeof s.stamp, "%b %e %H:%M:%S", &tm);
        s.stamp_second = now;
    }
    std::string out = fmt::format("{} {} {}/{}[{}]: {}{}{}{}\n", s.stamp, s.host, s.name,
                                  service, pid, id, id.empty() ? "" : ": ", prefix(level), message);
    // The loop's lines of one turn (a connection's "connect from", another's "from=", a third's
    // "disconnect") go out in one write at the turn's end: a write per line was 4 % of the
    // server's CPU under bench/smtp. Warnings and worse, and other threads' lines, go at once,
    // after what is gathered, so the order holds.
    if (s.loop && level < Level::Warning && on_loop_thread() && s.pending.size() < kGatherLimit) {
        s.pending += out;
        if (!std::exchange(s.flush_posted, true)) asio::post(*s.loop, [] { flush(); });
        return;
    }
    flush_pending(s);
    emit(s, out);
}

}  // namespace pillarbox::log
