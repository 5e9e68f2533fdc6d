// Script file parsing (see script.hpp).
#include "tests/unit/scripts/script.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <stdexcept>

namespace pillarbox::scripts {

Script load(const std::filesystem::path& path) {
    Script s;
    s.path = path;
    s.name = path.filename().string();
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path.string() + ": cannot open");
    static const std::regex kLine(
        R"(^(config|listener|account|deliver|inject|wait|C|C<raw>|S|S\*|S\.|S\+|S-|S<eof>|TLS|RECONNECT):(?: (.*))?$)");
    std::string raw;
    for (int n = 1; std::getline(in, raw); ++n) {
        if (!raw.empty() && raw.back() == '\r') raw.pop_back();
        auto first = raw.find_first_not_of(" \t");
        if (first == std::string::npos || raw[first] == '#') continue;
        std::smatch m;
        if (!std::regex_match(raw, m, kLine)) throw std::runtime_error(path.string() + ":" + std::to_string(n) + ": cannot parse " + raw);
        std::string kind = m[1], arg = m[2];
        auto where = [&] { return path.string() + ":" + std::to_string(n) + ": "; };
        auto trim = [](std::string v) {
            v.erase(0, v.find_first_not_of(" \t"));
            v.erase(v.find_last_not_of(" \t") + 1);
            return v;
        };
        if (kind == "config") {
            auto eq = arg.find('=');
            if (eq == std::string::npos) throw std::runtime_error(where() + "config needs NAME = VALUE");
            s.config.emplace_back(trim(arg.substr(0, eq)), trim(arg.substr(eq + 1)));
        } else if (kind == "listener") {
            static const std::vector<std::string> known{"mx", "submission", "submissions", "pop3", "pop3s"};
            if (std::find(known.begin(), known.end(), arg) == known.end()) throw std::runtime_error(where() + "unknown listener " + arg);
            s.listener = arg;
        } else if (kind == "account") {
            s.account = trim(arg);
        } else if (kind == "deliver") {
            s.deliver = std::stoi(arg);
        } else {
            if (kind == "inject" || kind == "wait") s.in_process_only = true;
            s.steps.push_back({kind, arg, n});
        }
    }
    return s;
}

std::vector<Script> load_dir(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> paths;
    for (auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".txt") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    std::vector<Script> out;
    for (auto& p : paths) out.push_back(load(p));
    return out;
}

std::string unescape(const std::string& text) {
    // {{N*TEXT}} first, as conversation.py does.
    std::string expanded;
    static const std::regex kRepeat(R"(\{\{(\d+)\*(.*?)\}\})");
    auto begin = std::sregex_iterator(text.begin(), text.end(), kRepeat);
    std::size_t at = 0;
    for (auto it = begin; it != std::sregex_iterator(); ++it) {
        expanded += text.substr(at, static_cast<std::size_t>(it->position()) - at);
        for (int i = std::stoi((*it)[1]); i > 0; --i) expanded += (*it)[2];
        at = static_cast<std::size_t>(it->position() + it->length());
    }
    expanded += text.substr(at);
    std::string out;
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    for (std::size_t i = 0; i < expanded.size(); ++i) {
        char c = expanded[i];
        if (c == '\\' && i + 1 < expanded.size()) {
            char e = expanded[i + 1];
            if (e == 'r' || e == 'n' || e == 't' || e == '\\') {
                out += e == 'r' ? '\r' : e == 'n' ? '\n' : e == 't' ? '\t' : '\\';
                ++i;
                continue;
            }
            if (e == 'x' && i + 3 < expanded.size() && hex(expanded[i + 2]) && hex(expanded[i + 3])) {
                out += static_cast<char>(std::stoi(expanded.substr(i + 2, 2), nullptr, 16));
                i += 3;
                continue;
            }
        }
        out += c;
    }
    return out;
}

}  // namespace pillarbox::scripts
