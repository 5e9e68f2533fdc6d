// Script file parsing (see script.hpp).
#include "tests/unit/scripts/script.hpp"

#include <algorithm>
#include <fstream>
#include <stdexcept>

namespace pillarbox::scripts {

Script load(const std::filesystem::path& path) {
    Script s;
    s.path = path;
    s.name = path.filename().string();
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path.string() + ": cannot open");
    std::string raw;
    for (int n = 1; std::getline(in, raw); ++n) {
        if (!raw.empty() && raw.back() == '\r') raw.pop_back();
        auto first = raw.find_first_not_of(" \t");
        if (first == std::string::npos || raw[first] == '#') continue;
        // KIND: [ARG], KIND one of the words below (as conversation.py's pattern).
        static const std::vector<std::string> kKinds{"config", "listener", "account", "deliver", "inject", "wait", "C<raw>",
                                                     "C", "S*", "S.", "S+", "S-", "S<eof>", "S", "TLS", "RECONNECT"};
        std::string kind, arg;
        for (auto& k : kKinds)
            if (raw.compare(0, k.size() + 1, k + ":") == 0) {
                std::string rest = raw.substr(k.size() + 1);
                if (!rest.empty() && rest[0] != ' ') continue;
                kind = k;
                arg = rest.empty() ? rest : rest.substr(1);
                break;
            }
        if (kind.empty()) throw std::runtime_error(path.string() + ":" + std::to_string(n) + ": cannot parse " + raw);
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
            static const std::vector<std::string> known{"mx", "submission", "submissions", "pop3", "pop3s", "imap", "imaps"};
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
    // {{N*TEXT}} first, as conversation.py does (TEXT up to the first "}}").
    std::string expanded;
    for (std::size_t at = 0;;) {
        auto open = text.find("{{", at);
        auto star = open == std::string::npos ? open : text.find('*', open);
        auto close = star == std::string::npos ? star : text.find("}}", star);
        bool digits = star != std::string::npos && star > open + 2 &&
                      text.find_first_not_of("0123456789", open + 2) == star;
        if (close == std::string::npos || !digits) {
            expanded += text.substr(at);
            break;
        }
        expanded += text.substr(at, open - at);
        for (int i = std::stoi(text.substr(open + 2, star - open - 2)); i > 0; --i) expanded += text.substr(star + 1, close - star - 1);
        at = close + 2;
    }
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
