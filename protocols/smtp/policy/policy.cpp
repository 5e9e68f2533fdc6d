// PolicySettings from pillarbox.conf (Postfix names and defaults) and the PolicyEngine that
// orders the restriction lists per SMTP command.
#include "protocols/smtp/policy/policy.hpp"

#include <fmt/format.h>

#include <map>
#include <set>
#include <stdexcept>

// Designated initializers leave the other ParamDef members at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "protocols/smtp/policy/table_text.hpp"
#include "server/ascii.hpp"
#include "server/config.hpp"
#include "server/config_values.hpp"

namespace pillarbox::smtp::policy {

namespace {

// The reply code parameters; their defaults are in server/parameters.cpp.
struct CodeParam {
    const char* name;
    int Codes::*field;
};

const CodeParam kCodes[] = {
    {"reject_code", &Codes::reject_code},
    {"defer_code", &Codes::defer_code},
    {"access_map_reject_code", &Codes::access_map_reject_code},
    {"access_map_defer_code", &Codes::access_map_defer_code},
    {"relay_domains_reject_code", &Codes::relay_domains_reject_code},
    {"unknown_address_reject_code", &Codes::unknown_address_reject_code},
    {"unknown_hostname_reject_code", &Codes::unknown_hostname_reject_code},
    {"unknown_client_reject_code", &Codes::unknown_client_reject_code},
    {"non_fqdn_reject_code", &Codes::non_fqdn_reject_code},
    {"invalid_hostname_reject_code", &Codes::invalid_hostname_reject_code},
    {"maps_rbl_reject_code", &Codes::maps_rbl_reject_code},
    {"unknown_virtual_mailbox_reject_code", &Codes::unlisted_recipient_reject_code},
};

struct ListParam {
    const char* name;
    RestrictionList PolicySettings::*field;
    Stage stage;
};

const ListParam kLists[] = {
    {"smtpd_client_restrictions", &PolicySettings::client_restrictions, Stage::Client},
    {"smtpd_helo_restrictions", &PolicySettings::helo_restrictions, Stage::Helo},
    {"smtpd_sender_restrictions", &PolicySettings::sender_restrictions, Stage::Sender},
    {"smtpd_relay_restrictions", &PolicySettings::relay_restrictions, Stage::Relay},
    {"smtpd_recipient_restrictions", &PolicySettings::recipient_restrictions, Stage::Recipient},
    {"smtpd_data_restrictions", &PolicySettings::data_restrictions, Stage::Data},
    {"smtpd_end_of_data_restrictions", &PolicySettings::end_of_data_restrictions, Stage::EndOfData},
};

bool list_has(const std::vector<std::string>& l, std::string_view name) {
    for (auto& x : l)
        if (ascii_iequals(x, name)) return true;
    return false;
}

}  // namespace

std::vector<config::ParamDef> parameter_defs() {
    // One definition of each parameter, in server/parameters.cpp (it generates the docs); this
    // picks out the ones the policy reads.
    static const char* const kOther[] = {"smtpd_helo_required", "smtpd_delay_reject", "relay_domains",
                                         "parent_domain_matches_subdomains", "smtpd_null_access_lookup_key",
                                         "unknown_address_tempfail_action", "header_checks",
                                         "smtpd_sender_login_maps", "recipient_delimiter"};
    std::set<std::string, std::less<>> names(std::begin(kOther), std::end(kOther));
    for (auto& l : kLists) names.insert(l.name);
    for (auto& c : kCodes) names.insert(c.name);
    std::vector<config::ParamDef> t;
    for (auto& d : config::parameter_table(config::Environment{}))
        if (names.count(d.name)) t.push_back(std::move(d));
    return t;
}

PolicySettings PolicySettings::from(const config::Config& c) {
    return from_values([&c](std::string_view name) -> std::optional<std::string> {
        if (!c.def(name)) return std::nullopt;
        return c.get(name);
    });
}

PolicySettings PolicySettings::from_values(const Lookup& get) {
    PolicySettings s;
    std::map<std::string, std::string, std::less<>> defaults;
    for (auto& d : parameter_defs()) defaults[d.name] = d.default_value;
    auto value = [&](std::string_view name) {
        if (auto v = get(name)) return *v;
        return defaults.at(std::string(name));
    };

    for (auto& c : kCodes) {
        auto n = config::parse_uint(value(c.name), 400, 599);
        if (!n) s.errors.push_back(fmt::format("{}: {} (a 4xx or 5xx reply code)", c.name, n.error));
        else s.codes.*(c.field) = static_cast<int>(*n.value);
    }
    for (auto [name, field] : {std::pair{"smtpd_helo_required", &PolicySettings::helo_required},
                               std::pair{"smtpd_delay_reject", &PolicySettings::delay_reject}}) {
        auto b = config::parse_bool(value(name));
        if (!b) s.errors.push_back(fmt::format("{}: {}", name, b.error));
        else s.*field = *b.value;
    }
    const std::string tempfail = ascii_lower(detail::trim(value("unknown_address_tempfail_action")));
    if (tempfail == "defer_if_permit") s.codes.unknown_address_tempfail_defer_if_permit = true;
    else if (tempfail == "defer") s.codes.unknown_address_tempfail_defer_if_permit = false;
    else s.errors.push_back(fmt::format("unknown_address_tempfail_action: '{}' is not defer_if_permit or defer", tempfail));

    const auto parent = config::split_list(value("parent_domain_matches_subdomains"));
    s.codes.lookup.parent_matches_subdomains = list_has(parent, "smtpd_access_maps");
    s.relay_domains_match_subdomains = list_has(parent, "relay_domains");
    s.codes.lookup.null_sender_key = value("smtpd_null_access_lookup_key");
    s.codes.lookup.recipient_delimiter = value("recipient_delimiter");

    // One load per table even when several lists name it.
    std::map<std::string, std::shared_ptr<const AccessMap>, std::less<>> cache;
    TableLoader loader = [&cache, base = file_table_loader()](std::string_view spec, std::string& error,
                                                             std::vector<std::string>& problems) {
        if (auto it = cache.find(spec); it != cache.end()) return it->second;
        auto t = base(spec, error, problems);
        if (t) cache.emplace(std::string(spec), t);
        return t;
    };
    for (auto& l : kLists) {
        std::string error;
        auto parsed = RestrictionList::parse(value(l.name), l.stage, error, s.warnings, loader);
        if (!parsed) s.errors.push_back(error);
        else s.*(l.field) = std::move(*parsed);
    }

    for (auto& item : config::split_list(value("relay_domains"))) {
        if (!item.empty() && item.front() == '/') {
            try {
                for (auto& line : detail::logical_lines(detail::read_file(item)))
                    for (auto& d : config::split_list(line.text)) s.relay_domains.push_back(ascii_lower(d));
            } catch (const std::exception& e) {
                s.errors.push_back(fmt::format("relay_domains: {}", e.what()));
            }
        } else if (item.find(':') != std::string::npos) {
            try {
                s.relay_domain_tables.push_back(AccessMap::load(item, s.warnings));
            } catch (const std::exception& e) {
                s.errors.push_back(fmt::format("relay_domains: {}", e.what()));
            }
        } else {
            std::string d = ascii_lower(item);
            if (!d.empty() && d.back() == '.') d.pop_back();
            s.relay_domains.push_back(d);
        }
    }

    for (auto& spec : config::split_list(value("smtpd_sender_login_maps"))) {
        try {
            s.sender_login_maps.push_back(AccessMap::load(spec, s.warnings, AccessMap::Values::Text));
        } catch (const std::exception& e) {
            s.errors.push_back(fmt::format("smtpd_sender_login_maps: {}", e.what()));
        }
    }

    auto hc = config::split_list(value("header_checks"));
    if (!hc.empty()) {
        try {
            s.header_checks = HeaderChecks::load(hc, s.warnings);
        } catch (const std::exception& e) {
            s.errors.push_back(fmt::format("header_checks: {}", e.what()));
        }
    }

    // Settings the session does not act on yet are refused rather than ignored: an admin who sets
    // them expects mail to be refused that would otherwise get through.
    if (!s.delay_reject)
        s.errors.push_back("smtpd_delay_reject: 'no' is not supported yet (client, HELO and sender "
                           "restrictions are evaluated at RCPT TO only); remove the setting");
    for (auto [name, list] : {std::pair{"smtpd_data_restrictions", &PolicySettings::data_restrictions},
                              std::pair{"smtpd_end_of_data_restrictions", &PolicySettings::end_of_data_restrictions}})
        if (!(s.*list).empty())
            s.errors.push_back(fmt::format("{}: not enforced yet; leave it empty", name));
    // Postfix's rule: one of the two RCPT lists must refuse unauthorized destinations.
    if (s.errors.empty() && !s.relay_restrictions.has_relay_guard() && !s.recipient_restrictions.has_relay_guard())
        s.errors.push_back("smtpd_relay_restrictions or smtpd_recipient_restrictions must contain at least one of "
                           "reject_unauth_destination, defer_unauth_destination, reject, defer or defer_if_permit "
                           "(otherwise this server would be an open relay)");
    return s;
}

std::string PolicySettings::validate() const {
    std::string out;
    for (auto& e : errors) out += (out.empty() ? "" : "\n") + e;
    return out;
}

bool PolicySettings::is_relay_domain(std::string_view domain) const {
    std::string d = ascii_lower(domain);
    if (!d.empty() && d.back() == '.') d.pop_back();
    if (d.empty() || d.front() == '[') return false;
    auto ends_with = [](std::string_view s, std::string_view suffix) {
        return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
    };
    for (auto& r : relay_domains) {
        if (r.empty()) continue;
        if (r.front() == '.') {
            if (ends_with(d, r)) return true;
            continue;
        }
        if (d == r) return true;
        if (relay_domains_match_subdomains && ends_with(d, "." + r)) return true;
    }
    for (auto& t : relay_domain_tables) {
        if (t.lookup_key(d)) return true;
        for (auto dot = d.find('.'); dot != std::string::npos && dot + 1 < d.size(); dot = d.find('.', dot + 1)) {
            if (t.lookup_key(d.substr(dot))) return true;  // ".example.com" always means subdomains
            if (relay_domains_match_subdomains && t.lookup_key(d.substr(dot + 1))) return true;
        }
    }
    return false;
}

bool PolicySettings::uses_sender_login_maps() const {
    for (auto* l : {&client_restrictions, &helo_restrictions, &sender_restrictions, &relay_restrictions,
                    &recipient_restrictions, &data_restrictions, &end_of_data_restrictions})
        if (l->uses_sender_login_maps()) return true;
    return false;
}

std::vector<std::string> PolicySettings::sender_login_owners(std::string_view sender) const {
    std::vector<std::string> out;
    auto at = sender.rfind('@');
    if (sender.empty()) return out;
    std::string full = ascii_lower(sender);
    std::vector<std::string> keys{full};
    if (at != std::string_view::npos && at > 0) {
        std::string local = full.substr(0, at), domain = full.substr(at + 1);
        const auto& delim = codes.lookup.recipient_delimiter;
        if (!delim.empty())
            if (auto d = local.find_first_of(delim); d != std::string::npos && d > 0) keys.push_back(local.substr(0, d) + "@" + domain);
        keys.push_back("@" + domain);
    }
    for (auto& t : sender_login_maps) {
        std::optional<AccessMap::Match> m;
        if (t.type() == AccessMap::Type::Regex) {
            m = t.lookup_key(sender);
        } else {
            for (auto& k : keys)
                if ((m = t.lookup_key(k))) break;
        }
        if (!m) continue;
        // "bob@example.com, carol@example.com" or blank-separated.
        for (auto& login : config::split_list(m->action.text)) out.push_back(login);
        break;
    }
    return out;
}

void PolicyEngine::check_connect(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const {
    if (s_.delay_reject) return done(Decision{});
    evaluate_lists({s_.client_restrictions}, ctx, s_.codes, r, std::move(done));
}

void PolicyEngine::check_helo(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const {
    if (s_.delay_reject) return done(Decision{});
    evaluate_lists({s_.helo_restrictions}, ctx, s_.codes, r, std::move(done));
}

void PolicyEngine::check_mail(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const {
    if (s_.helo_required && !ctx.helo) {
        Decision d;
        d.kind = Decision::Kind::Reject;
        d.code = 503;
        d.enhanced = "5.5.1";
        d.text = "Error: send HELO/EHLO first";
        d.log.push_back(fmt::format("reject: MAIL from {}[{}]: {}; proto={}", ctx.client_name, ctx.client_address,
                                    d.reply(), ctx.protocol));
        return done(std::move(d));
    }
    if (s_.delay_reject) return done(Decision{});
    evaluate_lists({s_.sender_restrictions}, ctx, s_.codes, r, std::move(done));
}

void PolicyEngine::check_rcpt(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const {
    Context c = ctx;
    if (c.recipient) {
        auto at = c.recipient->rfind('@');
        c.recipient_relay = at != std::string::npos && s_.is_relay_domain(std::string_view(*c.recipient).substr(at + 1));
    }
    std::vector<RestrictionList> lists;
    if (s_.delay_reject) lists = {s_.client_restrictions, s_.helo_restrictions, s_.sender_restrictions};
    lists.push_back(s_.relay_restrictions);
    lists.push_back(s_.recipient_restrictions);
    evaluate_lists(std::move(lists), c, s_.codes, r, std::move(done));
}

void PolicyEngine::check_data(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const {
    evaluate_lists({s_.data_restrictions}, ctx, s_.codes, r, std::move(done));
}

void PolicyEngine::check_end_of_data(const Context& ctx, dns::Resolver* r, std::function<void(Decision)> done) const {
    evaluate_lists({s_.end_of_data_restrictions}, ctx, s_.codes, r, std::move(done));
}

}  // namespace pillarbox::smtp::policy
