// Alias operations of the admin service layer (see aliases_service.hpp).
#include "auth/admin/aliases_service.hpp"

#include <fmt/format.h>

#include "auth/aliases_file.hpp"
#include "server/ascii.hpp"
#include "server/mail_names.hpp"

namespace pillarbox::auth::admin {

namespace {

// An alias source: user@domain, @domain (catch-all) or a bare aliases(5) name; "" when invalid.
std::string alias_source(std::string_view s) {
    if (s.size() > 1 && s.front() == '@') {
        auto a = normalise_address("x" + std::string(s));
        return a.empty() ? std::string() : a.substr(1);
    }
    if (s.find('@') == std::string_view::npos) {
        auto a = normalise_address(std::string(s) + "@x");
        return a.empty() ? std::string() : a.substr(0, a.size() - 2);
    }
    return normalise_address(s);
}

// An alias target: an address, or a bare local name (same domain as the source).
std::string alias_target(std::string_view t) {
    return t.find('@') == std::string_view::npos ? alias_source(t) : normalise_address(t);
}

// ": why" for an alias source or target refused above, or nothing when the shape was the problem.
std::string name_problem(std::string_view s) {
    std::string why;
    if (s.size() > 1 && s.front() == '@') why = names::domain_problem(s.substr(1));
    else if (s.find('@') == std::string_view::npos) why = names::local_part_problem(s);
    else why = names::address_problem(s);
    return why.empty() ? std::string() : ": " + why;
}

}  // namespace

Result<std::vector<AliasAdded>> add_alias(Admin& admin, std::string_view source, const std::vector<std::string>& targets) {
    auto src = alias_source(source);
    if (src.empty())
        return Error{Errc::InvalidAliasName,
                     fmt::format("{}: not an alias name (user@domain, @domain or a local name{})", source, name_problem(source))};
    std::vector<std::string> tgts;
    for (auto& t : targets) {
        auto tgt = alias_target(t);
        if (tgt.empty())
            return Error{Errc::InvalidAliasTarget, fmt::format("{}: not a valid address{}; nothing added", t, name_problem(t))};
        tgts.push_back(tgt);
    }
    if (auto at = src.find('@'); at != std::string::npos && !admin.domain_is_local(src.substr(at + 1)))
        return Error{Errc::DomainNotLocal,
                     fmt::format("{}: mail for {} is not delivered here; add the domain first", src, src.substr(at + 1)),
                     src.substr(at + 1)};
    std::vector<AliasAdded> out;
    for (auto& tgt : tgts) out.push_back({src, tgt, admin.db().add_alias(src, tgt)});
    return out;
}

Result<AliasesDeleted> delete_alias(Admin& admin, std::string_view source, std::string_view target) {
    auto src = alias_source(source);
    if (src.empty()) src = ascii_lower(source);
    if (src.empty()) return Error{Errc::InvalidAliasName, fmt::format("{}: not an alias name", source)};
    auto n = admin.db().delete_alias(src, target);
    if (n == 0) return Error{Errc::NoSuchAlias, fmt::format("{}: no such alias", src)};
    return AliasesDeleted{src, n};
}

std::vector<Alias> list_aliases(Admin& admin) {
    std::vector<Alias> out;
    for (auto& a : admin.db().aliases()) {
        if (out.empty() || out.back().source != a.source) out.push_back({a.source, {}});
        out.back().targets.push_back(a.target);
    }
    return out;
}

Result<AliasImport> import_aliases(Admin& admin, std::string_view text) {
    if (text.size() > kMaxAliasImport) return Error{Errc::TooLarge, "larger than 64 MiB"};
    auto parsed = parse_alias_file(text);
    AliasImport r;
    r.notes = parsed.problems;
    r.problems = parsed.problems.size();
    r.entries = parsed.entries.size();
    auto& db = admin.db();
    db.transaction([&] {
        for (auto& e : parsed.entries) {
            if (alias_source(e.source).empty()) {
                r.notes.push_back(fmt::format("line {}: {}: not a valid alias name{}; skipped", e.line, e.source, name_problem(e.source)));
                ++r.skipped;
                continue;
            }
            auto at = e.source.find('@');
            if (at != std::string::npos && !admin.domain_is_local(e.source.substr(at + 1))) {
                r.notes.push_back(fmt::format("line {}: {}: mail for {} is not delivered here; skipped", e.line, e.source,
                                              e.source.substr(at + 1)));
                ++r.skipped;
                continue;
            }
            for (auto& t : e.targets) {
                if (alias_target(t).empty()) {
                    r.notes.push_back(fmt::format("line {}: {}: target {} is not a valid address{}; skipped", e.line, e.source, t,
                                                  name_problem(t)));
                    continue;
                }
                if (db.add_alias(e.source, t)) ++r.added;
            }
        }
    });
    return r;
}

}  // namespace pillarbox::auth::admin
