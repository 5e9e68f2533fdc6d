// Parser, expansion and typed access for pillarbox.conf (see config.hpp).
#include "config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "listener_def.hpp"

namespace pillarbox::config {
namespace {

constexpr std::size_t kMaxExpandedSize = 64 * 1024;

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

}  // namespace

std::string Diagnostic::to_string() const {
    const char* sev = severity == Error ? "error" : "warning";
    if (file.empty()) return fmt::format("{}: {}", sev, message);
    if (line == 0) return fmt::format("{}: {}: {}", file, sev, message);
    return fmt::format("{}:{}: {}: {}", file, line, sev, message);
}

std::string Diagnostic::located() const {
    if (file.empty()) return message;
    if (line == 0) return fmt::format("{}: {}", file, message);
    return fmt::format("{}:{}: {}", file, line, message);
}

Environment Environment::detect() {
    Environment env;
    env.root = geteuid() == 0;
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') std::strcpy(buf, "localhost");
    std::string h(buf);
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
    // Like Postfix, a bare host name gets .localdomain; the admin sets myhostname for real use.
    if (h.find('.') == std::string::npos) h += ".localdomain";
    env.hostname = h;
    return env;
}

std::string check_value(const ParamDef& def, const std::string& value) {
    switch (def.type) {
        case Type::String:
        case Type::Path:
        case Type::List: return "";
        case Type::Bool: return parse_bool(value).error;
        case Type::Size: return parse_size(value).error;
        case Type::Time: return parse_time(value).error;
        case Type::Count: return parse_uint(value, def.min, def.max).error;
        case Type::CidrList: return parse_cidr_list(value).error;
        case Type::Choice:
            if (std::find(def.choices.begin(), def.choices.end(), value) != def.choices.end()) return "";
            return fmt::format("bad value '{}' (one of: {})", value, fmt::join(def.choices, ", "));
        case Type::Listener: return parse_listener_line(value).error;
    }
    return "";
}

Config Config::defaults(const Environment& env) {
    std::vector<Diagnostic> diags;
    return parse("", "", env, diags);
}

Config Config::load_file(const std::string& path, bool must_exist, const Environment& env,
                         std::vector<Diagnostic>& diags) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        int err = errno;
        if (err == ENOENT && !must_exist) {
            Config c = parse("", "", env, diags);
            return c;
        }
        diags.push_back({Diagnostic::Error, path, 0, fmt::format("cannot open: {}", std::strerror(err))});
        return parse("", "", env, diags);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path, env, diags);
}

Config Config::parse(std::string_view text, const std::string& filename, const Environment& env,
                     std::vector<Diagnostic>& diags) {
    Config c;
    c.table_ = std::make_shared<const std::vector<ParamDef>>(parameter_table(env));
    c.source_ = filename;

    // Logical lines: a line starting with whitespace continues the previous one; a line whose
    // first non-blank character is '#' is a comment (a '#' later on a line is part of the value,
    // as in Postfix's main.cf).
    struct Logical { std::string text; int line; };
    std::vector<Logical> lines;
    int lineno = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++lineno;
        if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
        std::string_view t = trim(raw);
        if (t.empty() || t.front() == '#') continue;
        if (std::isspace(static_cast<unsigned char>(raw.front()))) {
            if (lines.empty()) {
                diags.push_back({Diagnostic::Error, filename, lineno, "continuation line without a parameter before it"});
                continue;
            }
            lines.back().text += ' ';
            lines.back().text += t;
            continue;
        }
        lines.push_back({std::string(t), lineno});
    }

    for (auto& l : lines) {
        auto eq = l.text.find('=');
        if (eq == std::string::npos) {
            diags.push_back({Diagnostic::Error, filename, l.line, fmt::format("missing '=' after parameter name: \"{}\"", l.text)});
            continue;
        }
        std::string name(trim(std::string_view(l.text).substr(0, eq)));
        std::string value(trim(std::string_view(l.text).substr(eq + 1)));
        if (name.empty() || !std::all_of(name.begin(), name.end(), is_name_char)) {
            diags.push_back({Diagnostic::Error, filename, l.line, fmt::format("bad parameter name \"{}\"", name)});
            continue;
        }
        if (!c.def(name)) {
            if (name.starts_with(kListenerPrefix) && name.size() > kListenerPrefix.size()) {
                ParamDef d;
                d.name = name;
                d.type = Type::Listener;
                d.doc = "A listener defined in the configuration file.";
                c.dynamic_defs_.emplace(name, std::move(d));
            } else {
                std::string hint;
                std::size_t best = 3;
                for (auto& d : *c.table_) {
                    auto dist = edit_distance(name, d.name);
                    if (dist < best) { best = dist; hint = d.name; }
                }
                diags.push_back({Diagnostic::Warning, filename, l.line,
                                 hint.empty() ? fmt::format("unknown parameter \"{}\" is ignored", name)
                                              : fmt::format("unknown parameter \"{}\" is ignored; did you mean \"{}\"?", name, hint)});
                continue;
            }
        }
        if (auto it = c.settings_.find(name); it != c.settings_.end()) {
            // The classic trap: two inet_interfaces lines, and the later one silently wins.
            diags.push_back({Diagnostic::Warning, filename, l.line,
                             fmt::format("\"{}\" is set twice: this value \"{}\" overrides \"{}\" from line {}",
                                         name, value, it->second.value, it->second.line)});
        }
        c.settings_[name] = Setting{name, value, filename, l.line};
    }
    c.expand_all(diags);
    c.validate_types(diags);
    return c;
}

Config Config::with_overrides(const std::vector<std::pair<std::string, std::string>>& overrides,
                              const Setting& where, std::vector<Diagnostic>& diags) const {
    Config c = *this;
    for (auto& [name, value] : overrides) {
        const ParamDef* d = def(name);
        if (!d) {
            diags.push_back({Diagnostic::Error, where.file, where.line,
                             fmt::format("{}: unknown parameter \"{}\" in override", where.name, name)});
            continue;
        }
        if (!d->per_listener) {
            diags.push_back({Diagnostic::Error, where.file, where.line,
                             fmt::format("{}: \"{}\" cannot be set per listener", where.name, name)});
            continue;
        }
        c.settings_[name] = Setting{name, value, where.file, where.line};
    }
    std::vector<Diagnostic> local;
    c.expand_all(local);
    c.validate_types(local);
    for (auto& d : local) {
        d.file = where.file;
        d.line = where.line;
        d.message = fmt::format("{}: {}", where.name, d.message);
        diags.push_back(std::move(d));
    }
    return c;
}

const ParamDef* Config::def(std::string_view name) const {
    for (auto& d : *table_)
        if (d.name == name) return &d;
    if (auto it = dynamic_defs_.find(name); it != dynamic_defs_.end()) return &it->second;
    return nullptr;
}

const Setting* Config::setting(std::string_view name) const {
    auto it = settings_.find(name);
    return it == settings_.end() ? nullptr : &it->second;
}

std::string Config::default_value(std::string_view name) const {
    const ParamDef* d = def(name);
    if (!d) return "";
    if (d->computed_default) return d->computed_default(*this);
    return d->default_value;
}

std::string Config::raw(std::string_view name) const {
    if (auto* s = setting(name)) return s->value;
    return default_value(name);
}

const std::string& Config::get(std::string_view name) const {
    static const std::string empty;
    auto it = expanded_.find(name);
    return it == expanded_.end() ? empty : it->second;
}

void Config::locate(std::string_view name, Diagnostic& d) const {
    if (auto* s = setting(name)) {
        d.file = s->file;
        d.line = s->line;
    } else {
        d.file = source_.empty() ? "(defaults)" : source_;
        d.line = 0;
        d.message = fmt::format("default value of {}: {}", name, d.message);
    }
}

void Config::expand_all(std::vector<Diagnostic>& diags) {
    expanded_.clear();
    std::vector<std::string> all;
    for (auto& d : *table_) all.push_back(d.name);
    for (auto& [n, d] : dynamic_defs_) all.push_back(n);
    // Computed defaults read other expanded values, so they go last.
    std::stable_partition(all.begin(), all.end(), [&](const std::string& n) { return !def(n)->computed_default || is_set(n); });
    for (auto& n : all) {
        std::vector<std::string> stack;
        expand(n, stack, diags);
    }
}

// $name, ${name}, $(name), ${name?text} (text when name is non-empty), ${name:text} (text when
// name is empty), $$ for a literal '$' -- Postfix's main.cf expansion rules.
std::string Config::expand(const std::string& name, std::vector<std::string>& stack, std::vector<Diagnostic>& diags) {
    if (auto it = expanded_.find(name); it != expanded_.end()) return it->second;
    if (std::find(stack.begin(), stack.end(), name) != stack.end()) {
        std::string chain;
        auto from = std::find(stack.begin(), stack.end(), name);
        for (auto it = from; it != stack.end(); ++it) chain += *it + " -> ";
        chain += name;
        Diagnostic d{Diagnostic::Error, "", 0, fmt::format("parameter expansion loop: {}", chain)};
        locate(*from, d);
        diags.push_back(d);
        return "";
    }
    stack.push_back(name);
    const std::string value = raw(name);
    std::string out;
    for (std::size_t i = 0; i < value.size();) {
        char ch = value[i];
        if (ch != '$' || i + 1 >= value.size()) { out += ch; ++i; continue; }
        char next = value[i + 1];
        if (next == '$') { out += '$'; i += 2; continue; }
        std::string ref, text;
        char op = 0;
        if (next == '{' || next == '(') {
            char close = next == '{' ? '}' : ')';
            auto end = value.find(close, i + 2);
            if (end == std::string::npos) {
                Diagnostic d{Diagnostic::Error, "", 0, fmt::format("{}: missing '{}' in \"{}\"", name, close, value)};
                locate(name, d);
                diags.push_back(d);
                out += value.substr(i);
                break;
            }
            std::string inner = value.substr(i + 2, end - i - 2);
            auto opos = inner.find_first_of("?:");
            if (opos != std::string::npos) {
                op = inner[opos];
                text = inner.substr(opos + 1);
                inner = inner.substr(0, opos);
            }
            ref = inner;
            i = end + 1;
        } else {
            std::size_t j = i + 1;
            while (j < value.size() && is_name_char(value[j])) ++j;
            if (j == i + 1) { out += ch; ++i; continue; }
            ref = value.substr(i + 1, j - i - 1);
            i = j;
        }
        if (!def(ref)) {
            Diagnostic d{Diagnostic::Warning, "", 0, fmt::format("{}: undefined parameter ${} expands to nothing", name, ref)};
            locate(name, d);
            diags.push_back(d);
            continue;
        }
        std::string v = expand(ref, stack, diags);
        if (op == '?') out += v.empty() ? "" : text;
        else if (op == ':') out += v.empty() ? text : "";
        else out += v;
        if (out.size() > kMaxExpandedSize) {
            // $a$a$a... chains double at every step; stop long before memory runs out.
            Diagnostic d{Diagnostic::Error, "", 0, fmt::format("{}: value longer than {} bytes after expansion", name, kMaxExpandedSize)};
            locate(name, d);
            diags.push_back(d);
            out.clear();
            break;
        }
    }
    stack.pop_back();
    expanded_[name] = out;
    return out;
}

void Config::validate_types(std::vector<Diagnostic>& diags) const {
    auto check = [&](const ParamDef& d) {
        std::string err = check_value(d, get(d.name));
        if (err.empty()) return;
        Diagnostic diag{Diagnostic::Error, "", 0, fmt::format("{}: {}", d.name, err)};
        locate(d.name, diag);
        diags.push_back(diag);
    };
    for (auto& d : *table_) check(d);
    for (auto& [n, d] : dynamic_defs_) check(d);
}

namespace {
[[noreturn]] void bad_access(std::string_view name, const std::string& err) {
    throw std::logic_error(fmt::format("config value {} used without validation: {}", name, err));
}
}  // namespace

bool Config::get_bool(std::string_view name) const {
    auto r = parse_bool(get(name));
    if (!r) bad_access(name, r.error);
    return *r.value;
}
std::uint64_t Config::get_size(std::string_view name) const {
    auto r = parse_size(get(name));
    if (!r) bad_access(name, r.error);
    return *r.value;
}
std::uint64_t Config::get_count(std::string_view name) const {
    auto r = parse_uint(get(name), 0, UINT64_MAX);
    if (!r) bad_access(name, r.error);
    return *r.value;
}
std::chrono::milliseconds Config::get_time(std::string_view name) const {
    auto r = parse_time(get(name));
    if (!r) bad_access(name, r.error);
    return *r.value;
}
std::vector<std::string> Config::get_list(std::string_view name) const { return split_list(get(name)); }
std::vector<Cidr> Config::get_cidrs(std::string_view name) const {
    auto r = parse_cidr_list(get(name));
    if (!r) bad_access(name, r.error);
    return *r.value;
}

std::vector<std::string> Config::names() const {
    std::set<std::string> s;
    for (auto& d : *table_) s.insert(d.name);
    for (auto& [n, d] : dynamic_defs_) s.insert(n);
    return {s.begin(), s.end()};
}

std::vector<std::string> Config::listener_names() const {
    std::vector<std::string> out;
    for (auto& n : names())
        if (def(n)->type == Type::Listener && !trim(get(n)).empty()) out.push_back(n);
    return out;
}

}  // namespace pillarbox::config
