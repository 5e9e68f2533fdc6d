// The scripted conversations of tests/scripts/ (the format conversation.py documents): parsed
// once, run in-process against a session (runner.hpp) or, by conversation.py, against the binary.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace pillarbox::scripts {

struct Step {
    std::string kind;  // C, C<raw>, S, S*, S., S+, S-, S<eof>, TLS, RECONNECT, and in-process only: inject, wait
    std::string arg;
    int line = 0;
};

struct Script {
    std::filesystem::path path;
    std::string name;
    std::vector<std::pair<std::string, std::string>> config;
    std::string listener = "mx";
    std::string account;
    int deliver = 0;
    std::vector<Step> steps;
    bool in_process_only = false;  // uses inject:/wait: (fakes the binary doesn't have)
};

// Throws std::runtime_error("file:line: why") on a line it can't parse.
Script load(const std::filesystem::path& path);
std::vector<Script> load_dir(const std::filesystem::path& dir);
// C<raw>: escapes (\r \n \t \\ \xHH, {{N*TEXT}}) to bytes.
std::string unescape(const std::string& text);

}  // namespace pillarbox::scripts
