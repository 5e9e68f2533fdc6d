// Postfix-maillog-like log lines to stderr and, when configured, a file:
//   Nov 29 10:40:00 mail pillarbox/smtpd[4242]: 1A2B3C4D: connect from unknown[192.0.2.1]:50000
// Never pass passwords or message bodies here.
#pragma once
#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace asio {
class io_context;
}

namespace pillarbox::log {

enum class Level { Debug, Info, Warning, Error, Fatal };

Level parse_level(std::string_view name);  // debug, info, warning, error; unknown -> Info

// Takes effect for all later lines; returns an error message when the file can't be opened
// (then lines go to stderr only).
std::string configure(std::string_view syslog_name, Level min_level, const std::string& file);

bool enabled(Level level);

// Info and debug lines written on `loop`'s thread (see loop_guard.hpp) are gathered and written
// together when the loop has run what was ready, up to kGatherLimit bytes. Null: every line is
// written at once (the default, and what commands other than serve use). flush() writes what
// is gathered; serve calls it when the loop has stopped.
inline constexpr std::size_t kGatherLimit = 64 * 1024;
void gather_on(asio::io_context* loop);
void flush();

void write(Level level, std::string_view service, std::string_view id, std::string_view message);

template <typename... Args>
void line(Level level, std::string_view service, std::string_view id, fmt::format_string<Args...> f, Args&&... args) {
    if (!enabled(level)) return;
    write(level, service, id, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
void info(std::string_view service, fmt::format_string<Args...> f, Args&&... args) {
    line(Level::Info, service, "", f, std::forward<Args>(args)...);
}
template <typename... Args>
void warning(std::string_view service, fmt::format_string<Args...> f, Args&&... args) {
    line(Level::Warning, service, "", f, std::forward<Args>(args)...);
}
template <typename... Args>
void error(std::string_view service, fmt::format_string<Args...> f, Args&&... args) {
    line(Level::Error, service, "", f, std::forward<Args>(args)...);
}

}  // namespace pillarbox::log
