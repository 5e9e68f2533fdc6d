// pillarbox.conf: the main.cf grammar (name = value, # comments, continuation lines, $name and
// ${name} expansion), the table of known parameters with defaults, and typed access.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <typeindex>
#include <vector>

#include "config_values.hpp"

namespace pillarbox::config {

enum class Type { String, Bool, Size, Time, Count, List, CidrList, Path, Choice, Listener };

struct ParamDef {
    std::string name;
    std::string default_value;  // unexpanded, may reference $other
    Type type = Type::String;
    bool per_listener = false;  // may be overridden on a listen_* line
    std::uint64_t min = 0, max = UINT64_MAX;  // Count range
    std::vector<std::string> choices;         // Choice values
    std::string doc;            // one paragraph, goes to docs/configuration.md
    // A default that cannot be written as $expansion (mydomain = myhostname minus its first label).
    std::function<std::string(const class Config&)> computed_default;
};

// Facts about the machine that decide the embedded defaults.
struct Environment {
    bool root = false;
    std::string hostname;  // fully qualified, lower case
    static Environment detect();
};

// Every known parameter for this environment, in documentation order.
std::vector<ParamDef> parameter_table(const Environment& env);

// A listener's name is the parameter name without this prefix: listen_smtp -> smtp.
inline constexpr std::string_view kListenerPrefix = "listen_";

struct Diagnostic {
    enum Severity { Warning, Error } severity = Warning;
    std::string file;  // empty for command-line or internal problems
    int line = 0;
    std::string message;
    std::string to_string() const;  // "file:line: warning: message"
    std::string located() const;    // "file:line: message" (the log adds the severity)
};

struct Setting {
    std::string name;
    std::string value;  // unexpanded, as written (continuations joined by one space)
    std::string file;
    int line = 0;
};

// Values derived from one Config (a protocol's parsed settings), made on first use and kept
// with it, so a connection doesn't read and parse its parameters again. One per type. A copy
// of a Config starts without them: its values may differ.
class DerivedValues {
public:
    DerivedValues() = default;
    DerivedValues(const DerivedValues&) {}
    DerivedValues& operator=(const DerivedValues&) {
        std::lock_guard lock(mutex_);
        values_.clear();
        return *this;
    }

    template <typename T, typename Make>
    std::shared_ptr<const T> get(Make&& make) const {
        {
            std::lock_guard lock(mutex_);
            if (auto it = values_.find(typeid(T)); it != values_.end()) return std::static_pointer_cast<const T>(it->second);
        }
        auto made = std::make_shared<const T>(make());  // unlocked: make() may read other derived values
        std::lock_guard lock(mutex_);
        auto [it, added] = values_.emplace(typeid(T), made);
        return std::static_pointer_cast<const T>(it->second);
    }

private:
    mutable std::mutex mutex_;
    mutable std::map<std::type_index, std::shared_ptr<const void>> values_;
};

class Config {
public:
    // Blocking: reads the file. A missing file is an error only when must_exist.
    static Config load_file(const std::string& path, bool must_exist, const Environment& env,
                            std::vector<Diagnostic>& diags);
    static Config parse(std::string_view text, const std::string& filename, const Environment& env,
                        std::vector<Diagnostic>& diags);
    static Config defaults(const Environment& env);

    // Copy with NAME=VALUE pairs replacing settings (a listener's overrides), re-expanded and
    // re-validated; problems are reported at `where`.
    Config with_overrides(const std::vector<std::pair<std::string, std::string>>& overrides,
                          const Setting& where, std::vector<Diagnostic>& diags) const;

    const ParamDef* def(std::string_view name) const;
    const Setting* setting(std::string_view name) const;  // null when not set in the file
    bool is_set(std::string_view name) const { return setting(name) != nullptr; }
    std::string default_value(std::string_view name) const;
    std::string raw(std::string_view name) const;  // as set, or the default, unexpanded
    const std::string& get(std::string_view name) const;  // expanded

    bool get_bool(std::string_view name) const;
    std::uint64_t get_size(std::string_view name) const;
    std::uint64_t get_count(std::string_view name) const;
    std::chrono::milliseconds get_time(std::string_view name) const;
    std::vector<std::string> get_list(std::string_view name) const;
    std::vector<Cidr> get_cidrs(std::string_view name) const;

    // Known parameters plus listen_* names defined in the file, sorted.
    std::vector<std::string> names() const;
    std::vector<std::string> listener_names() const;  // listen_* parameters with a non-empty value
    const std::string& source() const { return source_; }

    // T made by make() from this Config, once (see DerivedValues).
    template <typename T, typename Make>
    std::shared_ptr<const T> derived(Make&& make) const {
        return derived_.get<T>(std::forward<Make>(make));
    }

private:
    void expand_all(std::vector<Diagnostic>& diags);
    void validate_types(std::vector<Diagnostic>& diags) const;
    std::string expand(const std::string& name, std::vector<std::string>& stack,
                       std::vector<Diagnostic>& diags);
    void locate(std::string_view name, Diagnostic& d) const;

    std::shared_ptr<const std::vector<ParamDef>> table_;
    std::map<std::string, ParamDef, std::less<>> dynamic_defs_;  // listen_* from the file
    std::map<std::string, Setting, std::less<>> settings_;
    std::map<std::string, std::string, std::less<>> expanded_;
    std::string source_;  // the file this came from ("" for embedded defaults)
    DerivedValues derived_;
};

// Checks one value against a parameter's type; returns an error message or "".
std::string check_value(const ParamDef& def, const std::string& value);

}  // namespace pillarbox::config
