// Tests for the SMTP policy engine: access maps (text, cidr, pcre), restriction verbs with a
// scripted DNS resolver, the open-relay guard, list ordering, and header_checks.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>

#include "protocols/smtp/policy/access_map.hpp"
#include "protocols/smtp/policy/header_checks.hpp"
#include "protocols/smtp/policy/policy.hpp"
#include "protocols/smtp/policy/restrictions.hpp"
#include "server/config.hpp"
#include "server/dns.hpp"
#include "tests/unit/test_config.hpp"

using namespace pillarbox;
using namespace pillarbox::smtp::policy;

namespace {

// The build passes the source directory: __FILE__ is relative to the build directory.
#ifdef PILLARBOX_UNIT_TEST_DIR
std::filesystem::path fixtures() { return std::filesystem::path(PILLARBOX_UNIT_TEST_DIR) / "protocols/smtp/fixtures"; }
#else
std::filesystem::path fixtures() { return std::filesystem::path(__FILE__).parent_path() / "fixtures"; }
#endif

std::string fixture(const char* name) { return (fixtures() / name).string(); }

// The parameters' defaults (server/parameters.cpp): Postfix's reply codes, parent matching for
// smtpd_access_maps, recipient_delimiter "+" and the null sender as "<>".
const Codes& default_codes() {
    static const Codes codes = PolicySettings::from(test::config()).codes;
    return codes;
}
const LookupOptions& default_lookup() { return default_codes().lookup; }

// Scripted answers keyed by "name/TYPE"; anything unscripted is NotFound. In async mode the
// callbacks wait for run(), as c-ares would answer later on the loop.
class FakeResolver : public dns::Resolver {
public:
    static const char* type_name(dns::Type t) {
        switch (t) {
            case dns::Type::A: return "A";
            case dns::Type::AAAA: return "AAAA";
            case dns::Type::MX: return "MX";
            case dns::Type::TXT: return "TXT";
            case dns::Type::PTR: return "PTR";
        }
        return "?";
    }
    void set(const std::string& name, dns::Type t, std::vector<std::string> records) {
        dns::Answer a;
        a.status = dns::Answer::Status::Ok;
        a.records = std::move(records);
        answers[key(name, t)] = a;
    }
    void tempfail(const std::string& name, dns::Type t) {
        dns::Answer a;
        a.status = dns::Answer::Status::TempFail;
        a.error = "SERVFAIL";
        answers[key(name, t)] = a;
    }
    void lookup(const std::string& name, dns::Type type, std::function<void(dns::Answer)> cb) override {
        queries.push_back(key(name, type));
        dns::Answer a;
        a.status = dns::Answer::Status::NotFound;
        if (auto it = answers.find(key(name, type)); it != answers.end()) a = it->second;
        if (async) queued.push_back([cb = std::move(cb), a] { cb(a); });
        else cb(a);
    }
    void run() {
        while (!queued.empty()) {
            auto q = std::move(queued);
            queued.clear();
            for (auto& f : q) f();
        }
    }
    static std::string key(const std::string& name, dns::Type t) { return name + "/" + type_name(t); }

    std::map<std::string, dns::Answer> answers;
    std::vector<std::string> queries;
    std::vector<std::function<void()>> queued;
    bool async = false;
};

// Tables by name, from text, for lists in tests: "texthash:NAME", "cidr:NAME", "pcre:NAME".
struct Tables {
    std::map<std::string, std::pair<AccessMap::Type, std::string>> text;
    std::vector<std::string> problems;
    TableLoader loader() {
        return [this](std::string_view spec, std::string& error,
                      std::vector<std::string>& probs) -> std::shared_ptr<const AccessMap> {
            auto it = text.find(std::string(spec));
            if (it == text.end()) return file_table_loader()(spec, error, probs);
            return std::make_shared<const AccessMap>(
                AccessMap::parse(it->second.first, it->second.second, std::string(spec), probs));
        };
    }
};

Context rcpt_context() {
    Context c;
    c.command = "RCPT";
    c.client_address = "203.0.113.5";
    c.client_name = "mail.example.net";
    c.helo = "mail.example.net";
    c.sender = "alice@example.net";
    c.recipient = "bob@example.com";
    c.recipient_local = true;
    return c;
}

RestrictionList parse_list(std::string_view text, Stage stage = Stage::Recipient, Tables* tables = nullptr) {
    std::string error;
    std::vector<std::string> problems;
    auto l = tables ? RestrictionList::parse(text, stage, error, problems, tables->loader())
                    : RestrictionList::parse(text, stage, error, problems);
    INFO(error);
    REQUIRE(l);
    return *l;
}

Decision run_list(const RestrictionList& l, const Context& ctx, FakeResolver* r = nullptr, const Codes& codes = default_codes()) {
    std::optional<Decision> out;
    int calls = 0;
    l.evaluate(ctx, codes, r, [&](Decision d) {
        ++calls;
        out = std::move(d);
    });
    if (r) r->run();
    REQUIRE(calls == 1);
    return *out;
}

Decision eval(std::string_view text, const Context& ctx, FakeResolver* r = nullptr, Tables* tables = nullptr,
              Stage stage = Stage::Recipient, const Codes& codes = default_codes()) {
    return run_list(parse_list(text, stage, tables), ctx, r, codes);
}

std::string parse_error(std::string_view text, Tables* tables = nullptr) {
    std::string error;
    std::vector<std::string> problems;
    auto l = tables ? RestrictionList::parse(text, Stage::Client, error, problems, tables->loader())
                    : RestrictionList::parse(text, Stage::Client, error, problems);
    CHECK_FALSE(l);
    return error;
}

std::optional<Action::Kind> kind_of(const std::optional<AccessMap::Match>& m) {
    if (!m) return std::nullopt;
    return m->action.kind;
}

AccessMap text_map(std::string_view text, std::vector<std::string>* problems = nullptr) {
    std::vector<std::string> p;
    auto m = AccessMap::parse(AccessMap::Type::Text, text, "test", problems ? *problems : p);
    return m;
}

PolicySettings settings_with(std::map<std::string, std::string> values) {
    return PolicySettings::from_values([values](std::string_view name) -> std::optional<std::string> {
        auto it = values.find(std::string(name));
        if (it == values.end()) return std::nullopt;
        return it->second;
    });
}

Decision check_rcpt(const PolicySettings& s, const Context& ctx, FakeResolver* r = nullptr) {
    PolicyEngine engine(s);
    std::optional<Decision> out;
    engine.check_rcpt(ctx, r, [&](Decision d) { out = std::move(d); });
    if (r) r->run();
    REQUIRE(out);
    return *out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// access(5) actions

TEST_CASE("access actions parse like Postfix, case-insensitively", "[policy][access]") {
    std::string err;
    auto p = [&](std::string_view v) { return Action::parse(v, err); };
    CHECK(p("OK")->kind == Action::Kind::Ok);
    CHECK(p("ok")->kind == Action::Kind::Ok);
    CHECK(p("permit")->kind == Action::Kind::Ok);
    CHECK(p("20240101")->kind == Action::Kind::Ok);  // all-numeric means OK
    auto r = p("REJECT no thanks");
    CHECK(r->kind == Action::Kind::Reject);
    CHECK(r->code == 0);
    CHECK(r->text == "no thanks");
    CHECK(p("reject")->text.empty());
    auto e = p("REJECT 5.7.9 custom code");
    CHECK(e->enhanced == "5.7.9");
    CHECK(e->text == "custom code");
    CHECK(p("DEFER later")->kind == Action::Kind::Defer);
    auto n5 = p("550 5.1.1 no such user");
    CHECK(n5->kind == Action::Kind::Reject);
    CHECK(n5->code == 550);
    CHECK(n5->enhanced == "5.1.1");
    auto n4 = p("421 5.7.0 wrong class");
    CHECK(n4->kind == Action::Kind::Defer);
    CHECK(n4->enhanced == "4.7.0");  // the enhanced class follows the reply code
    CHECK(p("DISCARD")->kind == Action::Kind::Discard);
    CHECK(p("HOLD why")->kind == Action::Kind::Hold);
    CHECK(p("DUNNO")->kind == Action::Kind::Dunno);
    CHECK(p("WARN watch")->kind == Action::Kind::Warn);
    CHECK(p("INFO note")->kind == Action::Kind::Info);
    CHECK(p("DEFER_IF_REJECT x")->kind == Action::Kind::DeferIfReject);
    CHECK(p("DEFER_IF_PERMIT x")->kind == Action::Kind::DeferIfPermit);
    CHECK_FALSE(p("PREPEND X-Foo: bar"));
    CHECK(err.find("not supported") != std::string::npos);
    CHECK_FALSE(p("FILTER smtp:[127.0.0.1]:10025"));
    CHECK_FALSE(p("REDIRECT a@b"));
    CHECK_FALSE(p("BLAH"));
    CHECK(err.find("unknown action") != std::string::npos);
    CHECK_FALSE(p("check_sender_access hash:/x"));
    CHECK_FALSE(p(""));
    CHECK_FALSE(p("250 ok"));  // only 4NN and 5NN carry text
}

TEST_CASE("access text tables: comments, continuation lines, duplicates and bad lines", "[policy][access]") {
    std::vector<std::string> problems;
    auto m = text_map("# comment\n"
                      "\n"
                      "Example.COM  REJECT first\n"
                      "example.com  OK\n"
                      "   # indented comment\n"
                      "long.example REJECT one\n"
                      "  two\n"
                      "nothing\n"
                      "bad.example FROBNICATE\n",
                      &problems);
    CHECK(m.size() == 2);
    REQUIRE(problems.size() == 3);
    CHECK(problems[0] == "test:4: duplicate key 'example.com'; line skipped");
    CHECK(problems[1].find("test:8: missing action") == 0);
    CHECK(problems[2].find("test:9: unknown action") == 0);
    auto first = m.lookup_key("EXAMPLE.com");
    REQUIRE(first);
    CHECK(first->action.text == "first");
    CHECK(m.lookup_key("long.example")->action.text == "one  two");
}

TEST_CASE("access client lookups: hostname, parent domains, address and prefixes", "[policy][access]") {
    auto m = text_map("host.example.com REJECT host\n"
                      "example.org REJECT parent\n"
                      ".example.net REJECT dotted\n"
                      "192.0.2.7 REJECT full\n"
                      "198.51.100 REJECT three\n"
                      "10.1 REJECT two\n"
                      "172 REJECT one\n"
                      "2001:db8:1 REJECT v6prefix\n"
                      "dunno.example DUNNO\n"
                      "unknown REJECT never\n");
    auto text = [&](std::string_view ip, std::string_view host, LookupOptions o = default_lookup()) -> std::string {
        auto r = m.lookup_client(ip, host, o);
        return r ? r->action.text + "|" + r->key : "";
    };
    CHECK(text("203.0.113.1", "Host.Example.COM") == "host|host.example.com");
    CHECK(text("203.0.113.1", "a.b.example.org") == "parent|example.org");
    CHECK(text("203.0.113.1", "a.example.net").empty());  // ".domain" only without parent matching
    CHECK(text("192.0.2.7", "unknown") == "full|192.0.2.7");
    CHECK(text("198.51.100.9", "unknown") == "three|198.51.100");
    CHECK(text("10.1.2.3", "unknown") == "two|10.1");
    CHECK(text("172.16.0.1", "unknown") == "one|172");
    CHECK(text("::ffff:172.16.0.1", "unknown") == "one|172");  // v4-mapped is IPv4
    CHECK(text("2001:db8:1:2::5", "unknown") == "v6prefix|2001:db8:1");
    CHECK(text("203.0.113.1", "unknown").empty());  // "unknown" is not a name to look up
    // DUNNO ends the search: the address is not tried after the name.
    CHECK(kind_of(m.lookup_client("192.0.2.7", "dunno.example", default_lookup())) == Action::Kind::Dunno);

    // Without smtpd_access_maps in parent_domain_matches_subdomains only ".domain" matches subdomains.
    LookupOptions strict = default_lookup();
    strict.parent_matches_subdomains = false;
    CHECK(text("203.0.113.1", "a.b.example.org", strict).empty());
    CHECK(text("203.0.113.1", "example.org", strict) == "parent|example.org");
    CHECK(text("203.0.113.1", "a.example.net", strict) == "dotted|.example.net");
}

TEST_CASE("access address lookups: user@domain, extensions, domains, user@ and <>", "[policy][access]") {
    auto m = text_map("joe+list@example.com REJECT full-ext\n"
                      "joe@example.com REJECT full\n"
                      "example.org REJECT domain\n"
                      "sales@ REJECT localpart\n"
                      "ann+x@ REJECT localpart-ext\n"
                      "ann@ REJECT localpart-base\n"
                      "<> REJECT null\n");
    auto text = [&](std::string_view a, LookupOptions o = default_lookup()) -> std::string {
        auto r = m.lookup_address(a, o);
        return r ? r->action.text : "";
    };
    CHECK(text("Joe+List@Example.com") == "full-ext");
    CHECK(text("joe+other@example.com") == "full");  // user+ext@domain, then user@domain
    CHECK(text("joe@example.com") == "full");
    CHECK(text("anyone@mail.example.org") == "domain");
    CHECK(text("sales@anywhere.test") == "localpart");
    CHECK(text("ann+x@anywhere.test") == "localpart-ext");  // user+ext@ before user@
    CHECK(text("ann+y@anywhere.test") == "localpart-base");
    CHECK(text("") == "null");
    LookupOptions other_key = default_lookup();
    other_key.null_sender_key = "<null>";
    CHECK(text("", other_key).empty());
    LookupOptions no_delim = default_lookup();
    no_delim.recipient_delimiter = "";
    CHECK(text("joe+other@example.com", no_delim).empty());
    CHECK(text("nobody@example.net").empty());
}

TEST_CASE("access tables load from hash: source files, never .db", "[policy][access]") {
    std::vector<std::string> problems;
    auto m = AccessMap::load("hash:" + fixture("access"), problems);
    CHECK(problems.empty());
    CHECK(m.type() == AccessMap::Type::Text);
    CHECK(kind_of(m.lookup_address("x@spammer.example", default_lookup())) == Action::Kind::Reject);
    // ".sub.example" is the pattern for subdomains only when parent matching is off.
    CHECK_FALSE(m.lookup_client("203.0.113.1", "a.sub.example", default_lookup()));
    LookupOptions strict = default_lookup();
    strict.parent_matches_subdomains = false;
    CHECK(kind_of(m.lookup_client("203.0.113.1", "a.sub.example", strict)) == Action::Kind::Defer);
    CHECK(kind_of(m.lookup_address("friend@example.org", default_lookup())) == Action::Kind::Ok);
    CHECK(kind_of(m.lookup_address("abuse@spammer.example", default_lookup())) == Action::Kind::Reject);  // domain before user@
    CHECK(kind_of(m.lookup_address("abuse@elsewhere.test", default_lookup())) == Action::Kind::Ok);
    CHECK(kind_of(m.lookup_client("192.0.2.10", "unknown", default_lookup())) == Action::Kind::Dunno);
    CHECK(kind_of(m.lookup_client("192.0.2.11", "unknown", default_lookup())) == Action::Kind::Reject);
    CHECK(m.lookup_key("multi.example")->action.text == "this text is    continued on the next line");
    auto texthash = AccessMap::load("texthash:" + fixture("access"), problems);
    CHECK(texthash.size() == m.size());
    CHECK_THROWS_AS(AccessMap::load("hash:" + fixture("no-such-file"), problems), std::runtime_error);
    CHECK_THROWS_AS(AccessMap::load("mysql:/etc/x.cf", problems), std::runtime_error);
    CHECK_THROWS_AS(AccessMap::load("/etc/postfix/access", problems), std::runtime_error);
}

TEST_CASE("cidr tables: first match wins, negation, IPv6, if/endif, bad lines", "[policy][access][cidr]") {
    std::vector<std::string> problems;
    auto m = AccessMap::load("cidr:" + fixture("clients.cidr"), problems);
    CHECK(problems.empty());
    CHECK(kind_of(m.lookup_client("192.0.2.1", "unknown", default_lookup())) == Action::Kind::Ok);
    auto r = m.lookup_client("192.0.2.99", "anything.example", default_lookup());
    REQUIRE(r);
    CHECK(r->action.text == "Listed network");
    CHECK(r->key == "192.0.2.0/24");
    auto v6 = m.lookup_client("2001:db8::25", "unknown", default_lookup());
    REQUIRE(v6);
    CHECK(v6->action.code == 554);
    // !198.51.100.0/24 matches everything outside that network: DUNNO there.
    CHECK(kind_of(m.lookup_client("203.0.113.9", "unknown", default_lookup())) == Action::Kind::Dunno);
    CHECK(kind_of(m.lookup_client("198.51.100.7", "unknown", default_lookup())) == Action::Kind::Hold);
    CHECK_FALSE(m.lookup_client("198.51.100.8", "unknown", default_lookup()));
    CHECK(kind_of(m.lookup_domain("[192.0.2.1]", default_lookup())) == Action::Kind::Ok);  // HELO address literal
    CHECK_FALSE(m.lookup_address("user@example.com", default_lookup()));

    problems.clear();
    auto n = AccessMap::parse(AccessMap::Type::Cidr,
                              "if 10.0.0.0/8\n"
                              "10.1.0.0/16 REJECT inner\n"
                              "endif\n"
                              "10.1.2.3 OK\n"
                              "192.0.2.1/24 REJECT host bits\n"
                              "garbage REJECT x\n"
                              "10.9.9.9\n"
                              "endif\n",
                              "inline", problems);
    CHECK(n.lookup_client("10.1.2.3", "unknown", default_lookup())->action.text == "inner");
    CHECK(kind_of(n.lookup_client("10.2.0.1", "unknown", default_lookup())) == std::nullopt);
    REQUIRE(problems.size() == 4);
    CHECK(problems[0].find("inline:5:") == 0);
    CHECK(problems[0].find("host bits") != std::string::npos);
    CHECK(problems[1].find("inline:6:") == 0);
    CHECK(problems[2].find("inline:7: missing action") == 0);
    CHECK(problems[3].find("inline:8: endif without if") == 0);
}

TEST_CASE("pcre access tables match whole keys with $n substitution", "[policy][access][pcre]") {
    std::vector<std::string> problems;
    auto m = AccessMap::parse(AccessMap::Type::Regex,
                              "/^(.*)-outgoing@example\\.com$/ 550 Use $1@example.com instead\n"
                              "/^friend@/ OK\n"
                              "/^192\\.0\\.2\\./ REJECT regex net\n"
                              "/^dyn-.*\\.example\\.net$/ REJECT dynamic\n"
                              "/broken( REJECT x\n"
                              "/x/ NOPE\n",
                              "pcre:inline", problems);
    CHECK(problems.size() == 2);
    auto r = m.lookup_address("List-Outgoing@Example.COM", default_lookup());
    REQUIRE(r);
    CHECK(r->action.code == 550);
    CHECK(r->action.text == "Use List@example.com instead");
    CHECK(kind_of(m.lookup_address("FRIEND@anywhere", default_lookup())) == Action::Kind::Ok);
    CHECK(m.lookup_client("192.0.2.5", "unknown", default_lookup())->action.text == "regex net");
    CHECK(m.lookup_client("203.0.113.1", "DYN-1.example.net", default_lookup())->action.text == "dynamic");
    CHECK_FALSE(m.lookup_address("user@example.com", default_lookup()));
    // Whole-string semantics: no parent-domain search for regexp tables.
    CHECK_FALSE(m.lookup_client("203.0.113.1", "x.dyn-1.example.org", default_lookup()));
}

// ---------------------------------------------------------------------------------------------
// Restriction lists: parsing

TEST_CASE("restriction lists: parse errors name the parameter and the problem", "[policy][parse]") {
    CHECK(parse_error("permit_mynetworks, reject_everything") ==
          "smtpd_client_restrictions: unknown or unsupported restriction 'reject_everything'");
    CHECK(parse_error("check_client_access").find("needs a table") != std::string::npos);
    CHECK(parse_error("check_client_access permit").find("TYPE:PATH") != std::string::npos);
    CHECK(parse_error("check_sender_access hash:/nonexistent/pillarbox/access").find("cannot open table") !=
          std::string::npos);
    CHECK(parse_error("check_sender_access ldap:/etc/x.cf").find("unsupported type") != std::string::npos);
    CHECK(parse_error("hash:/etc/postfix/access").find("bare table") != std::string::npos);
    CHECK(parse_error("reject_rbl_client").find("needs a DNS zone") != std::string::npos);
    CHECK(parse_error("reject_rbl_client zen..example").find("bad DNS zone") != std::string::npos);
    CHECK(parse_error("reject_rbl_client zen.example=127.0.0").find("four octets") != std::string::npos);
    CHECK(parse_error("reject_rbl_client zen.example=127.0.0.[2..1]").find("bad range") != std::string::npos);
    CHECK(parse_error("check_policy_service inet:127.0.0.1:10023").find("unsupported") != std::string::npos);

    std::string error;
    std::vector<std::string> problems;
    auto l = RestrictionList::parse("PERMIT_MYNETWORKS,reject_unauth_destination   warn_if_reject", Stage::Relay,
                                    error, problems);
    REQUIRE(l);
    CHECK(problems.size() == 1);  // a dangling warn_if_reject
    CHECK(l->has_relay_guard());
    CHECK(RestrictionList::parse("", Stage::Relay, error, problems)->empty());
    CHECK_FALSE(RestrictionList::parse("permit_mynetworks warn_if_reject reject", Stage::Relay, error, problems)
                    ->has_relay_guard());
}

// ---------------------------------------------------------------------------------------------
// Restriction verbs

TEST_CASE("permit, reject and defer end the list with stage-specific replies", "[policy][verbs]") {
    Context c = rcpt_context();
    CHECK(eval("permit", c).kind == Decision::Kind::Permit);
    CHECK(eval("", c).kind == Decision::Kind::Continue);
    auto r = eval("reject", c);
    CHECK(r.kind == Decision::Kind::Reject);
    CHECK(r.reply() == "554 5.7.1 <bob@example.com>: Recipient address rejected: Access denied");
    auto cl = eval("reject", c, nullptr, nullptr, Stage::Client);
    CHECK(cl.reply() == "554 5.7.1 <mail.example.net[203.0.113.5]>: Client host rejected: Access denied");
    CHECK(eval("reject", c, nullptr, nullptr, Stage::Helo).text ==
          "<mail.example.net>: Helo command rejected: Access denied");
    CHECK(eval("reject", c, nullptr, nullptr, Stage::Sender).text ==
          "<alice@example.net>: Sender address rejected: Access denied");
    CHECK(eval("reject", c, nullptr, nullptr, Stage::Data).text == "<DATA>: Data command rejected: Access denied");
    auto d = eval("defer", c);
    CHECK(d.kind == Decision::Kind::Defer);
    CHECK(d.reply() == "450 4.7.1 <bob@example.com>: Recipient address rejected: Access denied");
    // The first verdict wins: nothing after permit runs.
    CHECK(eval("permit, reject", c).kind == Decision::Kind::Permit);
    Codes codes = default_codes();
    codes.reject_code = 550;
    CHECK(eval("reject", c, nullptr, nullptr, Stage::Recipient, codes).code == 550);
}

TEST_CASE("reject log lines read like Postfix's", "[policy][log]") {
    Context c = rcpt_context();
    c.client_name = "unknown";
    c.recipient_local = false;
    c.recipient = "victim@elsewhere.example";
    auto d = eval("reject_unauth_destination", c);
    REQUIRE(d.log.size() == 1);
    CHECK(d.log[0] ==
          "reject: RCPT from unknown[203.0.113.5]: 554 5.7.1 <victim@elsewhere.example>: Relay access denied; "
          "from=<alice@example.net> to=<victim@elsewhere.example> proto=ESMTP helo=<mail.example.net>");
    Context connect;
    connect.command = "CONNECT";
    connect.protocol = "SMTP";
    connect.client_address = "192.0.2.1";
    auto r = eval("reject", connect, nullptr, nullptr, Stage::Client);
    CHECK(r.log[0] == "reject: CONNECT from unknown[192.0.2.1]: 554 5.7.1 <unknown[192.0.2.1]>: "
                      "Client host rejected: Access denied; proto=SMTP");
}

TEST_CASE("permit_mynetworks and permit_sasl_authenticated", "[policy][verbs]") {
    Context c = rcpt_context();
    CHECK(eval("permit_mynetworks", c).kind == Decision::Kind::Continue);
    c.client_in_mynetworks = true;
    CHECK(eval("permit_mynetworks", c).kind == Decision::Kind::Permit);
    Context a = rcpt_context();
    CHECK(eval("permit_sasl_authenticated, reject", a).kind == Decision::Kind::Reject);
    a.sasl_authenticated = true;
    a.sasl_username = "alice";
    CHECK(eval("permit_sasl_authenticated, reject", a).kind == Decision::Kind::Permit);
}

TEST_CASE("reject_unauth_destination, defer_unauth_destination, permit_auth_destination", "[policy][verbs][relay]") {
    Context c = rcpt_context();
    c.recipient_local = false;
    c.recipient = "x@remote.example";
    auto r = eval("reject_unauth_destination", c);
    CHECK(r.reply() == "554 5.7.1 <x@remote.example>: Relay access denied");
    auto d = eval("defer_unauth_destination", c);
    CHECK(d.kind == Decision::Kind::Defer);
    CHECK(d.reply() == "454 4.7.1 <x@remote.example>: Relay access denied");
    CHECK(eval("permit_auth_destination", c).kind == Decision::Kind::Continue);

    c.recipient_relay = true;  // relay_domains
    CHECK(eval("reject_unauth_destination", c).kind == Decision::Kind::Continue);
    CHECK(eval("permit_auth_destination", c).kind == Decision::Kind::Permit);

    Context local = rcpt_context();
    CHECK(eval("reject_unauth_destination", local).kind == Decision::Kind::Continue);
    // Sender-specified routing is never an authorized destination, even to a local domain.
    for (auto routed : {"x@remote.example@example.com", "x%remote.example@example.com", "remote!x@example.com"}) {
        local.recipient = routed;
        CHECK(eval("reject_unauth_destination", local).kind == Decision::Kind::Reject);
    }
    // Without a recipient (CONNECT, MAIL with smtpd_delay_reject=no) there is nothing to check.
    Context none;
    none.client_address = "192.0.2.1";
    CHECK(eval("reject_unauth_destination", none).kind == Decision::Kind::Continue);
}

TEST_CASE("HELO syntax verbs: non-FQDN and invalid names", "[policy][verbs][helo]") {
    Context c = rcpt_context();
    auto helo = [&](std::string name, std::string_view verb) {
        c.helo = std::move(name);
        return eval(verb, c);
    };
    CHECK(helo("mail.example.net", "reject_non_fqdn_helo_hostname").kind == Decision::Kind::Continue);
    CHECK(helo("mail.example.net.", "reject_non_fqdn_helo_hostname").kind == Decision::Kind::Continue);
    CHECK(helo("[192.0.2.1]", "reject_non_fqdn_helo_hostname").kind == Decision::Kind::Continue);
    CHECK(helo("[IPv6:2001:db8::1]", "reject_non_fqdn_helo_hostname").kind == Decision::Kind::Continue);
    auto nf = helo("localhost", "reject_non_fqdn_helo_hostname");
    CHECK(nf.reply() == "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname");
    CHECK(helo("[300.1.1.1]", "reject_non_fqdn_helo_hostname").kind == Decision::Kind::Reject);

    CHECK(helo("localhost", "reject_invalid_helo_hostname").kind == Decision::Kind::Continue);
    CHECK(helo("my_host.example", "reject_invalid_helo_hostname").kind == Decision::Kind::Continue);
    auto inv = helo("bad..name", "reject_invalid_helo_hostname");
    CHECK(inv.reply() == "501 5.5.2 <bad..name>: Helo command rejected: Invalid name");
    for (auto bad : {"-lead.example", "trail-.example", "sp ace", "1.2.3.4", "[1.2.3]", "a@b", ""}) {
        INFO(bad);
        CHECK(helo(bad, "reject_invalid_helo_hostname").kind == Decision::Kind::Reject);
    }
    CHECK(helo(std::string(64, 'a') + ".example", "reject_invalid_helo_hostname").kind == Decision::Kind::Reject);
    // No HELO yet: skipped (that is what smtpd_helo_required is for).
    c.helo.reset();
    CHECK(eval("reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname", c).kind == Decision::Kind::Continue);
}

TEST_CASE("reject_non_fqdn_sender and reject_non_fqdn_recipient", "[policy][verbs]") {
    Context c = rcpt_context();
    CHECK(eval("reject_non_fqdn_sender, reject_non_fqdn_recipient", c).kind == Decision::Kind::Continue);
    c.sender = "user@localhost";
    CHECK(eval("reject_non_fqdn_sender", c).reply() ==
          "504 5.5.2 <user@localhost>: Sender address rejected: need fully-qualified address");
    c.sender = "";  // the null sender is fine
    CHECK(eval("reject_non_fqdn_sender", c).kind == Decision::Kind::Continue);
    c.sender = "user@[192.0.2.1]";
    CHECK(eval("reject_non_fqdn_sender", c).kind == Decision::Kind::Continue);
    c.recipient = "bob";
    CHECK(eval("reject_non_fqdn_recipient", c).text ==
          "<bob>: Recipient address rejected: need fully-qualified address");
    c.recipient = "Postmaster";  // RFC 5321 requires accepting the unqualified postmaster
    CHECK(eval("reject_non_fqdn_recipient", c).kind == Decision::Kind::Continue);
}

TEST_CASE("reject_unknown_sender_domain asks DNS for MX, A and AAAA", "[policy][verbs][dns]") {
    Context c = rcpt_context();
    c.sender = "alice@example.net";
    FakeResolver dns;

    SECTION("no records: unknown_address_reject_code (450 by default)") {
        auto d = eval("reject_unknown_sender_domain", c, &dns);
        CHECK(d.kind == Decision::Kind::Defer);
        CHECK(d.reply() == "450 4.1.8 <alice@example.net>: Sender address rejected: Domain not found");
        CHECK(dns.queries == std::vector<std::string>{"example.net/MX", "example.net/A", "example.net/AAAA"});
        Codes codes = default_codes();
        codes.unknown_address_reject_code = 550;
        auto hard = eval("reject_unknown_sender_domain", c, &dns, nullptr, Stage::Sender, codes);
        CHECK(hard.reply() == "550 5.1.8 <alice@example.net>: Sender address rejected: Domain not found");
    }
    SECTION("an MX is enough") {
        dns.set("example.net", dns::Type::MX, {"10 mx.example.net"});
        CHECK(eval("reject_unknown_sender_domain", c, &dns).kind == Decision::Kind::Continue);
        CHECK(dns.queries.size() == 1);
    }
    SECTION("an AAAA record alone is enough") {
        dns.set("example.net", dns::Type::AAAA, {"2001:db8::25"});
        CHECK(eval("reject_unknown_sender_domain", c, &dns).kind == Decision::Kind::Continue);
    }
    SECTION("a null MX refuses mail with 550 5.7.27") {
        dns.set("example.net", dns::Type::MX, {"0 "});
        CHECK(eval("reject_unknown_sender_domain", c, &dns).reply() ==
              "550 5.7.27 <alice@example.net>: Sender address rejected: Domain example.net does not accept mail "
              "(nullMX)");
    }
    SECTION("null sender, local sender and address literals are not looked up") {
        c.sender = "";
        CHECK(eval("reject_unknown_sender_domain", c, &dns).kind == Decision::Kind::Continue);
        c.sender = "me@example.com";
        c.sender_local = true;
        CHECK(eval("reject_unknown_sender_domain", c, &dns).kind == Decision::Kind::Continue);
        c.sender_local = false;
        c.sender = "me@[192.0.2.1]";
        CHECK(eval("reject_unknown_sender_domain", c, &dns).kind == Decision::Kind::Continue);
        CHECK(dns.queries.empty());
    }
    SECTION("temporary failure: defer_if_permit -- a later reject still wins, else 450") {
        dns.tempfail("example.net", dns::Type::MX);
        auto d = eval("reject_unknown_sender_domain", c, &dns);
        CHECK(d.kind == Decision::Kind::Defer);
        CHECK(d.reply() == "450 4.1.8 <alice@example.net>: Sender address rejected: Domain not found");
        CHECK(d.warnings.size() == 1);
        auto later = eval("reject_unknown_sender_domain, reject", c, &dns);
        CHECK(later.kind == Decision::Kind::Reject);
        CHECK(later.code == 554);
        // An explicit permit later still becomes the deferral.
        CHECK(eval("reject_unknown_sender_domain, permit", c, &dns).kind == Decision::Kind::Defer);
        Codes now = default_codes();
        now.unknown_address_tempfail_defer_if_permit = false;  // unknown_address_tempfail_action = defer
        CHECK(eval("reject_unknown_sender_domain, reject", c, &dns, nullptr, Stage::Sender, now).kind ==
              Decision::Kind::Defer);
    }
    SECTION("a temporary failure on one type does not hide a record of another") {
        dns.tempfail("example.net", dns::Type::MX);
        dns.set("example.net", dns::Type::A, {"192.0.2.25"});
        CHECK(eval("reject_unknown_sender_domain", c, &dns).kind == Decision::Kind::Continue);
    }
    SECTION("without a resolver the lookup counts as a temporary failure") {
        CHECK(eval("reject_unknown_sender_domain", c, nullptr).kind == Decision::Kind::Defer);
    }
}

TEST_CASE("reject_unknown_recipient_domain", "[policy][verbs][dns]") {
    Context c = rcpt_context();
    c.recipient = "bob@nowhere.example";
    c.recipient_local = false;
    FakeResolver dns;
    CHECK(eval("reject_unknown_recipient_domain", c, &dns).reply() ==
          "450 4.1.2 <bob@nowhere.example>: Recipient address rejected: Domain not found");
    dns.set("nowhere.example", dns::Type::MX, {"0 ."});
    CHECK(eval("reject_unknown_recipient_domain", c, &dns).reply() ==
          "556 5.1.10 <bob@nowhere.example>: Recipient address rejected: Domain nowhere.example does not accept "
          "mail (nullMX)");
    c.recipient_local = true;  // we are the destination: no DNS needed
    dns.queries.clear();
    CHECK(eval("reject_unknown_recipient_domain", c, &dns).kind == Decision::Kind::Continue);
    CHECK(dns.queries.empty());
}

TEST_CASE("reject_unknown_helo_hostname", "[policy][verbs][dns]") {
    Context c = rcpt_context();
    c.helo = "ghost.example";
    FakeResolver dns;
    CHECK(eval("reject_unknown_helo_hostname", c, &dns).reply() ==
          "450 4.7.1 <ghost.example>: Helo command rejected: Host not found");
    CHECK(dns.queries == std::vector<std::string>{"ghost.example/A", "ghost.example/AAAA", "ghost.example/MX"});
    dns.set("ghost.example", dns::Type::A, {"192.0.2.9"});
    CHECK(eval("reject_unknown_helo_hostname", c, &dns).kind == Decision::Kind::Continue);
    c.helo = "[192.0.2.9]";
    CHECK(eval("reject_unknown_helo_hostname", c, &dns).kind == Decision::Kind::Continue);
}

TEST_CASE("reject_unknown_client_hostname", "[policy][verbs]") {
    Context c = rcpt_context();
    CHECK(eval("reject_unknown_client_hostname", c).kind == Decision::Kind::Continue);
    c.client_name = "unknown";
    CHECK(eval("reject_unknown_client_hostname", c).reply() ==
          "450 4.7.25 Client host rejected: cannot find your hostname, [203.0.113.5]");
    Codes codes = default_codes();
    codes.unknown_client_reject_code = 550;
    CHECK(eval("reject_unknown_client_hostname", c, nullptr, nullptr, Stage::Client, codes).code == 550);
    c.client_name_tempfail = true;  // always 450 when the lookup failed temporarily
    CHECK(eval("reject_unknown_client_hostname", c, nullptr, nullptr, Stage::Client, codes).code == 450);
}

TEST_CASE("check_*_access apply every action with Postfix's replies", "[policy][verbs][access]") {
    Tables t;
    t.text["texthash:s"] = {AccessMap::Type::Text,
                            "ok@example.net OK\n"
                            "rej@example.net REJECT\n"
                            "rejtext@example.net REJECT You are not welcome\n"
                            "def@example.net DEFER\n"
                            "num@example.net 551 5.7.1 Go elsewhere\n"
                            "num4@example.net 421 4.3.0 Busy\n"
                            "discard@example.net DISCARD\n"
                            "hold@example.net HOLD suspicious\n"
                            "warn@example.net WARN looks odd\n"
                            "dunno@example.net DUNNO\n"
                            "dip@example.net DEFER_IF_PERMIT try later\n"
                            "dir@example.net DEFER_IF_REJECT try later\n"};
    Context c = rcpt_context();
    auto with = [&](std::string sender, std::string_view list = "check_sender_access texthash:s") {
        c.sender = std::move(sender);
        return eval(list, c, nullptr, &t, Stage::Sender);
    };
    CHECK(with("ok@example.net").kind == Decision::Kind::Permit);
    CHECK(with("ok@example.net", "check_sender_access texthash:s, reject").kind == Decision::Kind::Permit);
    CHECK(with("rej@example.net").reply() == "554 5.7.1 <rej@example.net>: Sender address rejected: Access denied");
    CHECK(with("rejtext@example.net").text == "<rejtext@example.net>: Sender address rejected: You are not welcome");
    CHECK(with("def@example.net").reply() == "450 4.7.1 <def@example.net>: Sender address rejected: Access denied");
    CHECK(with("num@example.net").reply() == "551 5.7.1 <num@example.net>: Sender address rejected: Go elsewhere");
    auto n4 = with("num4@example.net");
    CHECK(n4.kind == Decision::Kind::Defer);
    CHECK(n4.reply() == "421 4.3.0 <num4@example.net>: Sender address rejected: Busy");

    auto disc = with("discard@example.net", "check_sender_access texthash:s, reject");
    CHECK(disc.kind == Decision::Kind::Permit);  // DISCARD ends the list like OK
    CHECK(disc.discard);
    REQUIRE(disc.log.size() == 1);
    CHECK(disc.log[0].find("discard: RCPT from mail.example.net[203.0.113.5]: <discard@example.net>: Sender "
                           "address triggers DISCARD action;") == 0);

    auto hold = with("hold@example.net");
    CHECK(hold.kind == Decision::Kind::Continue);  // HOLD goes on with the next restriction
    CHECK(hold.hold);
    CHECK(hold.log[0].find("hold: RCPT from") == 0);
    CHECK(hold.log[0].find("<hold@example.net>: Sender address suspicious;") != std::string::npos);
    CHECK(with("hold@example.net", "check_sender_access texthash:s, reject").kind == Decision::Kind::Reject);

    auto warn = with("warn@example.net");
    CHECK(warn.kind == Decision::Kind::Continue);
    CHECK(warn.log[0].find("warn: RCPT from") == 0);

    CHECK(with("dunno@example.net", "check_sender_access texthash:s, permit").kind == Decision::Kind::Permit);
    CHECK(with("nobody@example.net").kind == Decision::Kind::Continue);

    auto dip = with("dip@example.net", "check_sender_access texthash:s, permit");
    CHECK(dip.reply() == "450 4.7.1 <dip@example.net>: Sender address rejected: try later");
    CHECK(with("dip@example.net", "check_sender_access texthash:s, reject").code == 554);
    auto dir = with("dir@example.net", "check_sender_access texthash:s, reject");
    CHECK(dir.reply() == "450 4.7.1 <dir@example.net>: Sender address rejected: try later");
    CHECK(with("dir@example.net", "check_sender_access texthash:s, permit").kind == Decision::Kind::Permit);
}

TEST_CASE("check_client, check_helo, check_recipient and check_sasl access", "[policy][verbs][access]") {
    Tables t;
    t.text["cidr:clients"] = {AccessMap::Type::Cidr, "203.0.113.0/24 REJECT bad net\n"};
    t.text["texthash:helo"] = {AccessMap::Type::Text, "example.net REJECT forged\n"};
    t.text["texthash:rcpt"] = {AccessMap::Type::Text, "bob@ 450 4.2.1 Mailbox full\n"};
    t.text["texthash:sasl"] = {AccessMap::Type::Text, "mallory REJECT account suspended\n"};
    Context c = rcpt_context();
    CHECK(eval("check_client_access cidr:clients", c, nullptr, &t).reply() ==
          "554 5.7.1 <mail.example.net[203.0.113.5]>: Client host rejected: bad net");
    CHECK(eval("check_helo_access texthash:helo", c, nullptr, &t).reply() ==
          "554 5.7.1 <mail.example.net>: Helo command rejected: forged");
    CHECK(eval("check_recipient_access texthash:rcpt", c, nullptr, &t).reply() ==
          "450 4.2.1 <bob@example.com>: Recipient address rejected: Mailbox full");
    CHECK(eval("check_sasl_access texthash:sasl", c, nullptr, &t).kind == Decision::Kind::Continue);
    c.sasl_authenticated = true;
    c.sasl_username = "Mallory";
    CHECK(eval("check_sasl_access texthash:sasl", c, nullptr, &t).reply() ==
          "554 5.7.1 <Mallory>: SASL login name rejected: account suspended");
    // A table named twice in a list is one table.
    CHECK(eval("check_helo_access texthash:helo check_helo_access texthash:helo", c, nullptr, &t).kind ==
          Decision::Kind::Reject);
}

TEST_CASE("reject_rbl_client and permit_dnswl_client", "[policy][verbs][dns]") {
    Context c = rcpt_context();
    c.client_address = "192.0.2.99";
    FakeResolver dns;

    SECTION("listed: 554 with the zone and the TXT reason") {
        dns.set("99.2.0.192.zen.example", dns::Type::A, {"127.0.0.2"});
        dns.set("99.2.0.192.zen.example", dns::Type::TXT, {"https://zen.example/query?ip=192.0.2.99\r\n250 ok"});
        auto d = eval("reject_rbl_client zen.example", c, &dns);
        CHECK(d.kind == Decision::Kind::Reject);
        // Control characters from DNS never reach the reply line.
        CHECK(d.reply() == "554 5.7.1 Service unavailable; Client host [192.0.2.99] blocked using zen.example; "
                           "https://zen.example/query?ip=192.0.2.99  250 ok");
    }
    SECTION("not listed") {
        CHECK(eval("reject_rbl_client zen.example", c, &dns).kind == Decision::Kind::Continue);
        CHECK(dns.queries == std::vector<std::string>{"99.2.0.192.zen.example/A"});
    }
    SECTION("reply filter d.d.d.d with ranges") {
        dns.set("99.2.0.192.zen.example", dns::Type::A, {"127.0.0.10"});
        CHECK(eval("reject_rbl_client zen.example=127.0.0.2", c, &dns).kind == Decision::Kind::Continue);
        CHECK(eval("reject_rbl_client zen.example=127.0.0.[2;4..11]", c, &dns).kind == Decision::Kind::Reject);
        CHECK(eval("reject_rbl_client zen.example=127.0.[1..5].[10]", c, &dns).kind == Decision::Kind::Continue);
    }
    SECTION("IPv6 clients are looked up by reversed nibbles") {
        c.client_address = "2001:db8::1";
        eval("reject_rbl_client zen.example", c, &dns);
        REQUIRE(dns.queries.size() == 1);
        CHECK(dns.queries[0] ==
              "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example/A");
    }
    SECTION("a DNSBL that fails temporarily does not block mail, but is logged") {
        dns.tempfail("99.2.0.192.zen.example", dns::Type::A);
        auto d = eval("reject_rbl_client zen.example", c, &dns);
        CHECK(d.kind == Decision::Kind::Continue);
        REQUIRE(d.warnings.size() == 1);
        CHECK(d.warnings[0].find("zen.example") != std::string::npos);
    }
    SECTION("permit_dnswl_client permits listed clients, but never opens the relay") {
        dns.set("99.2.0.192.list.dnswl.example", dns::Type::A, {"127.0.10.0"});
        dns.set("99.2.0.192.zen.example", dns::Type::A, {"127.0.0.2"});
        CHECK(eval("permit_dnswl_client list.dnswl.example, reject_rbl_client zen.example", c, &dns, nullptr,
                   Stage::Client)
                  .kind == Decision::Kind::Permit);
        Context relay = c;
        relay.recipient_local = false;
        relay.recipient = "x@remote.example";
        CHECK(eval("permit_dnswl_client list.dnswl.example, reject_unauth_destination", relay, &dns, nullptr,
                   Stage::Relay)
                  .kind == Decision::Kind::Reject);
    }
    SECTION("permit_dnswl_client lookup failure turns a later reject into a deferral") {
        dns.tempfail("99.2.0.192.list.dnswl.example", dns::Type::A);
        dns.set("99.2.0.192.zen.example", dns::Type::A, {"127.0.0.2"});
        auto d = eval("permit_dnswl_client list.dnswl.example, reject_rbl_client zen.example", c, &dns, nullptr,
                      Stage::Client);
        CHECK(d.kind == Decision::Kind::Defer);
        CHECK(d.code == 450);
    }
    SECTION("rhsbl lookups use the domain") {
        dns.set("example.net.dbl.example", dns::Type::A, {"127.0.1.2"});
        auto d = eval("reject_rhsbl_sender dbl.example", c, &dns);
        CHECK(d.reply() == "554 5.7.1 Service unavailable; Sender address [alice@example.net] blocked using "
                           "dbl.example");
        CHECK(eval("reject_rhsbl_helo dbl.example", c, &dns).kind == Decision::Kind::Continue);
        c.helo = "example.net";
        CHECK(eval("reject_rhsbl_helo dbl.example", c, &dns).kind == Decision::Kind::Reject);
        c.recipient = "bob@example.net";
        CHECK(eval("reject_rhsbl_recipient dbl.example", c, &dns).kind == Decision::Kind::Reject);
        c.client_name = "example.net";
        CHECK(eval("reject_rhsbl_client dbl.example", c, &dns).kind == Decision::Kind::Reject);
    }
}

TEST_CASE("warn_if_reject logs instead of rejecting", "[policy][verbs]") {
    Context c = rcpt_context();
    c.recipient_local = false;
    auto d = eval("warn_if_reject reject_unauth_destination, permit", c);
    CHECK(d.kind == Decision::Kind::Permit);
    REQUIRE(d.log.size() == 1);
    CHECK(d.log[0].find("reject_warning: RCPT from mail.example.net[203.0.113.5]: 554 5.7.1 <bob@example.com>: "
                        "Relay access denied;") == 0);
    // Only the next restriction is affected.
    CHECK(eval("warn_if_reject permit_mynetworks, reject", c).kind == Decision::Kind::Reject);
}

TEST_CASE("defer_if_permit and defer_if_reject verbs", "[policy][verbs]") {
    Context c = rcpt_context();
    CHECK(eval("defer_if_permit", c).reply() ==
          "450 4.7.1 <bob@example.com>: Recipient address rejected: defer_if_permit requested");
    CHECK(eval("defer_if_permit, reject", c).code == 554);
    CHECK(eval("defer_if_reject, reject", c).reply() ==
          "450 4.7.1 <bob@example.com>: Recipient address rejected: defer_if_reject requested");
    CHECK(eval("defer_if_reject, permit", c).kind == Decision::Kind::Permit);
    CHECK(eval("defer_if_reject, defer", c).reply() ==
          "450 4.7.1 <bob@example.com>: Recipient address rejected: Access denied");
}

TEST_CASE("reject_unlisted_recipient uses the session's lookup", "[policy][verbs]") {
    Context c = rcpt_context();
    CHECK(eval("reject_unlisted_recipient", c).kind == Decision::Kind::Continue);  // not known: no verdict
    c.recipient_known = true;
    CHECK(eval("reject_unlisted_recipient", c).kind == Decision::Kind::Continue);
    c.recipient_known = false;
    CHECK(eval("reject_unlisted_recipient", c).reply() ==
          "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table");
    c.recipient_local = false;  // not our domain: relay rules decide
    CHECK(eval("reject_unlisted_recipient", c).kind == Decision::Kind::Continue);
}

TEST_CASE("sender login mismatch verbs", "[policy][verbs][sasl]") {
    Context c = rcpt_context();
    c.sender = "alice@example.com";
    const char* all = "reject_sender_login_mismatch";
    // Unauthenticated, address owned by someone: "not logged in".
    c.sender_owners = std::vector<std::string>{"alice"};
    CHECK(eval(all, c).reply() == "553 5.7.1 <alice@example.com>: Sender address rejected: not logged in");
    CHECK(eval("reject_authenticated_sender_login_mismatch", c).kind == Decision::Kind::Continue);
    // Authenticated as the owner.
    c.sasl_authenticated = true;
    c.sasl_username = "Alice";
    CHECK(eval(all, c).kind == Decision::Kind::Continue);
    // Authenticated as someone else.
    c.sasl_username = "mallory";
    CHECK(eval(all, c).reply() ==
          "553 5.7.1 <alice@example.com>: Sender address rejected: not owned by user mallory");
    CHECK(eval("reject_unauthenticated_sender_login_mismatch", c).kind == Decision::Kind::Continue);
    // Nobody owns the address: authenticated users may not use it, except with the "known" variant.
    c.sender_owners.reset();
    CHECK(eval(all, c).kind == Decision::Kind::Reject);
    CHECK(eval("reject_known_sender_login_mismatch", c).kind == Decision::Kind::Continue);
    // A login always owns the address that is its name, with or without an extension (a
    // passwd-file user has no account whose owners could say so).
    c.sasl_username = "Dave@example.com";
    for (const char* own : {"dave@example.com", "dave+lists@EXAMPLE.com"}) {
        c.sender = own;
        CHECK(eval(all, c).kind == Decision::Kind::Continue);
    }
    c.sender = "dave.x@example.com";
    CHECK(eval(all, c).kind == Decision::Kind::Reject);
    c.sender = "";
    CHECK(eval(all, c).kind == Decision::Kind::Continue);
    CHECK(parse_list(all).uses_sender_login_maps());
}

TEST_CASE("smtpd_sender_login_maps: logins that own a sender, Postfix key order", "[policy][sasl][sender_login_maps]") {
    std::vector<std::string> problems;
    PolicySettings s = settings_with({});
    CHECK(s.sender_login_owners("alice@example.com").empty());
    s.sender_login_maps.push_back(AccessMap::parse(AccessMap::Type::Text,
                                                   "alice@example.com   alice@example.com, bob@example.com\n"
                                                   "Boss@Example.com bob@example.com carol@example.com\n"
                                                   "@shared.example  team@example.com\n"
                                                   "nologin@example.com\n",
                                                   "texthash:logins", problems, AccessMap::Values::Text));
    CHECK(problems.size() == 1);  // a key without logins is skipped
    using V = std::vector<std::string>;
    CHECK(s.sender_login_owners("alice@example.com") == V{"alice@example.com", "bob@example.com"});
    CHECK(s.sender_login_owners("ALICE@example.COM") == V{"alice@example.com", "bob@example.com"});
    CHECK(s.sender_login_owners("alice+news@example.com") == V{"alice@example.com", "bob@example.com"});
    CHECK(s.sender_login_owners("boss@example.com") == V{"bob@example.com", "carol@example.com"});
    CHECK(s.sender_login_owners("anyone@shared.example") == V{"team@example.com"});
    CHECK(s.sender_login_owners("anyone@sub.shared.example").empty());  // @domain is exact
    CHECK(s.sender_login_owners("carol@example.com").empty());
    CHECK(s.sender_login_owners("").empty());
    // The first table with an entry answers; regexp tables see the whole address.
    s.sender_login_maps.push_back(AccessMap::parse(AccessMap::Type::Regex,
                                                   "/^(.*)@dept\\.example$/ $1@example.com\n/^alice@/ nobody@example.com\n",
                                                   "pcre:logins", problems, AccessMap::Values::Text));
    CHECK(s.sender_login_owners("dave@dept.example") == V{"dave@example.com"});
    CHECK(s.sender_login_owners("alice@example.com") == V{"alice@example.com", "bob@example.com"});

    // With the verb: bob may now use alice's address (the session joins these to the default owners).
    Context c;
    c.sasl_authenticated = true;
    c.sasl_username = "bob@example.com";
    c.sender = "alice@example.com";
    c.sender_owners = s.sender_login_owners(*c.sender);
    std::string error;
    auto list = RestrictionList::parse("reject_sender_login_mismatch", Stage::Sender, error, problems);
    REQUIRE(list);
    std::optional<Decision> d;
    list->evaluate(c, default_codes(), nullptr, [&](Decision x) { d = std::move(x); });
    REQUIRE(d);
    CHECK_FALSE(d->rejected());

    auto bad = settings_with({{"smtpd_sender_login_maps", "texthash:/nonexistent/pillarbox-logins"}});
    REQUIRE(bad.errors.size() == 1);
    CHECK(bad.errors[0].find("smtpd_sender_login_maps") != std::string::npos);
}

TEST_CASE("DNS answers that arrive later resume the list; the callback runs once", "[policy][dns][async]") {
    Context c = rcpt_context();
    c.client_address = "192.0.2.99";
    FakeResolver dns;
    dns.async = true;
    dns.set("99.2.0.192.one.example", dns::Type::A, {"127.0.0.2"});
    dns.set("example.net", dns::Type::MX, {"10 mx.example.net"});
    auto l = parse_list("reject_rbl_client two.example, reject_unknown_sender_domain, reject_rbl_client one.example");
    std::optional<Decision> out;
    int calls = 0;
    l.evaluate(c, default_codes(), &dns, [&](Decision d) {
        ++calls;
        out = std::move(d);
    });
    CHECK(calls == 0);
    dns.run();
    CHECK(calls == 1);
    REQUIRE(out);
    CHECK(out->kind == Decision::Kind::Reject);
    CHECK(out->text.find("one.example") != std::string::npos);

    SECTION("a destroyed resolver never calls back, and frees the evaluation") {
        auto weak_probe = std::make_shared<int>(0);
        std::weak_ptr<int> weak = weak_probe;
        auto r = std::make_unique<FakeResolver>();
        r->async = true;
        int n = 0;
        l.evaluate(c, default_codes(), r.get(), [&n, p = std::move(weak_probe)](Decision) { ++n; });
        CHECK_FALSE(weak.expired());
        r.reset();
        CHECK(n == 0);
        CHECK(weak.expired());
    }
    SECTION("the list outlives its RestrictionList") {
        c.sender = "carol@nowhere.example";
        auto owned = std::make_unique<RestrictionList>(parse_list("reject_unknown_sender_domain"));
        int n = 0;
        owned->evaluate(c, default_codes(), &dns, [&](Decision d) {
            ++n;
            CHECK(d.kind == Decision::Kind::Defer);
        });
        owned.reset();
        dns.run();
        CHECK(n == 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Settings and the engine: list order, smtpd_delay_reject, the open-relay guard

TEST_CASE("default settings are not an open relay", "[policy][relay]") {
    PolicySettings s = settings_with({});
    CHECK(s.validate().empty());
    CHECK(s.relay_restrictions.text() == "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination");

    Context c = rcpt_context();
    c.recipient = "victim@elsewhere.example";
    c.recipient_local = false;
    SECTION("unauthenticated external recipient: 554 Relay access denied") {
        auto d = check_rcpt(s, c);
        CHECK(d.kind == Decision::Kind::Reject);
        CHECK(d.reply() == "554 5.7.1 <victim@elsewhere.example>: Relay access denied");
    }
    SECTION("authenticated clients may relay") {
        c.sasl_authenticated = true;
        c.sasl_username = "alice";
        CHECK(check_rcpt(s, c).kind == Decision::Kind::Continue);
    }
    SECTION("mynetworks may relay") {
        c.client_in_mynetworks = true;
        CHECK(check_rcpt(s, c).kind == Decision::Kind::Continue);
    }
    SECTION("local recipients are accepted from anyone") {
        c.recipient = "bob@example.com";
        c.recipient_local = true;
        CHECK(check_rcpt(s, c).kind == Decision::Kind::Continue);
    }
    SECTION("routing through a local domain is still relaying") {
        c.recipient = "victim%elsewhere.example@example.com";
        c.recipient_local = true;
        CHECK(check_rcpt(s, c).kind == Decision::Kind::Reject);
    }
}

TEST_CASE("a permit in one list never skips the relay restrictions", "[policy][relay][order]") {
    PolicySettings s = settings_with({{"smtpd_client_restrictions", "permit"},
                                      {"smtpd_sender_restrictions", "permit"},
                                      {"smtpd_recipient_restrictions", "permit"}});
    REQUIRE(s.validate().empty());
    Context c = rcpt_context();
    c.recipient = "victim@elsewhere.example";
    c.recipient_local = false;
    CHECK(check_rcpt(s, c).kind == Decision::Kind::Reject);
}

TEST_CASE("relay_domains: listed domains and their subdomains may be relayed to", "[policy][relay]") {
    auto dir = std::filesystem::temp_directory_path() / "pillarbox_policy_relay";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "list") << "# relay list\nlisted.example, other.example\n";
    std::ofstream(dir / "table") << "tabled.example OK\n.sub.example OK\n";
    PolicySettings s = settings_with(
        {{"relay_domains", "backup.example .dot.example " + (dir / "list").string() + " texthash:" +
                               (dir / "table").string()}});
    REQUIRE(s.validate().empty());
    CHECK(s.is_relay_domain("backup.example"));
    CHECK(s.is_relay_domain("MX.Backup.Example."));
    CHECK_FALSE(s.is_relay_domain("notbackup.example"));
    CHECK_FALSE(s.is_relay_domain("dot.example"));
    CHECK(s.is_relay_domain("a.dot.example"));
    CHECK(s.is_relay_domain("other.example"));
    CHECK(s.is_relay_domain("tabled.example"));
    CHECK(s.is_relay_domain("x.tabled.example"));
    CHECK(s.is_relay_domain("x.sub.example"));
    CHECK_FALSE(s.is_relay_domain("elsewhere.example"));

    PolicySettings strict = settings_with({{"relay_domains", "backup.example"},
                                           {"parent_domain_matches_subdomains", "smtpd_access_maps"}});
    CHECK_FALSE(strict.is_relay_domain("mx.backup.example"));

    Context c = rcpt_context();
    c.recipient = "user@mx.backup.example";
    c.recipient_local = false;
    CHECK(check_rcpt(s, c).kind == Decision::Kind::Continue);
    std::filesystem::remove_all(dir);
}

TEST_CASE("settings: errors for unknown verbs, missing tables, bad codes; relay guard", "[policy][settings]") {
    auto s = settings_with({{"smtpd_recipient_restrictions", "reject_spam"},
                            {"smtpd_sender_restrictions", "check_sender_access hash:/nonexistent/pillarbox/x"},
                            {"unknown_address_reject_code", "250"},
                            {"smtpd_delay_reject", "maybe"},
                            {"unknown_address_tempfail_action", "ignore"},
                            {"header_checks", "pcre:/nonexistent/pillarbox/hc"}});
    std::string v = s.validate();
    CHECK(v.find("smtpd_recipient_restrictions: unknown or unsupported restriction 'reject_spam'") !=
          std::string::npos);
    CHECK(v.find("smtpd_sender_restrictions: check_sender_access") != std::string::npos);
    CHECK(v.find("unknown_address_reject_code") != std::string::npos);
    CHECK(v.find("smtpd_delay_reject") != std::string::npos);
    CHECK(v.find("unknown_address_tempfail_action") != std::string::npos);
    CHECK(v.find("header_checks") != std::string::npos);

    auto open = settings_with({{"smtpd_relay_restrictions", "permit_mynetworks"}});
    CHECK(open.validate().find("open relay") != std::string::npos);
    // In `errors` itself, which is what the session and the start-up check look at.
    CHECK(open.errors.size() == 1);

    // Settings the session doesn't act on yet are errors, not silently ignored.
    auto later = settings_with({{"smtpd_delay_reject", "no"},
                                {"smtpd_data_restrictions", "reject"},
                                {"smtpd_end_of_data_restrictions", "defer"}});
    REQUIRE(later.errors.size() == 3);
    CHECK(later.errors[0].find("smtpd_delay_reject: 'no' is not supported yet") == 0);
    CHECK(later.errors[1] == "smtpd_data_restrictions: not enforced yet; leave it empty");
    CHECK(later.errors[2] == "smtpd_end_of_data_restrictions: not enforced yet; leave it empty");
    auto old_style = settings_with({{"smtpd_relay_restrictions", ""},
                                    {"smtpd_recipient_restrictions", "permit_mynetworks, reject_unauth_destination"}});
    CHECK(old_style.validate().empty());

    auto codes = settings_with({{"unknown_address_reject_code", "550"}, {"smtpd_null_access_lookup_key", "<null>"}});
    CHECK(codes.codes.unknown_address_reject_code == 550);
    CHECK(codes.codes.lookup.null_sender_key == "<null>");
    CHECK(codes.codes.lookup.parent_matches_subdomains);

    auto tables = settings_with({{"smtpd_client_restrictions", "check_client_access cidr:" + fixture("clients.cidr")},
                                 {"header_checks", "pcre:" + fixture("header_checks.pcre")}});
    CHECK(tables.validate().empty());
    CHECK(tables.warnings.empty());
    CHECK(tables.header_checks.size() == 10);
}

TEST_CASE("settings from a real Config use the Postfix defaults for parameters it lacks", "[policy][settings]") {
    config::Environment env;
    env.hostname = "mail.example.com";
    auto s = PolicySettings::from(config::Config::defaults(env));
    CHECK(s.validate().empty());
    CHECK(s.delay_reject);
    CHECK_FALSE(s.helo_required);
    CHECK(s.codes.unknown_address_reject_code == 450);
    CHECK(s.codes.lookup.recipient_delimiter == "+");
    CHECK(s.relay_restrictions.has_relay_guard());
    auto defs = parameter_defs();
    CHECK(defs.size() == 7 + 9 + 12);  // lists, other parameters (smtpd_sender_login_maps and recipient_delimiter too), codes
    for (auto& d : defs) CHECK(config::check_value(d, d.default_value).empty());
}

TEST_CASE("smtpd_delay_reject: when client, helo and sender lists run", "[policy][order]") {
    std::map<std::string, std::string> v{{"smtpd_client_restrictions", "reject"}};
    Context c = rcpt_context();
    auto ask = [&](const PolicySettings& s, auto method, Context ctx) {
        PolicyEngine e(s);
        std::optional<Decision> out;
        (e.*method)(ctx, nullptr, [&](Decision d) { out = std::move(d); });
        REQUIRE(out);
        return *out;
    };
    SECTION("yes: everything at RCPT, and the rejection names the recipient") {
        auto s = settings_with(v);
        Context connect = c;
        connect.command = "CONNECT";
        CHECK(ask(s, &PolicyEngine::check_connect, connect).kind == Decision::Kind::Continue);
        CHECK(ask(s, &PolicyEngine::check_helo, c).kind == Decision::Kind::Continue);
        CHECK(ask(s, &PolicyEngine::check_mail, c).kind == Decision::Kind::Continue);
        auto d = ask(s, &PolicyEngine::check_rcpt, c);
        CHECK(d.kind == Decision::Kind::Reject);
        CHECK(d.text == "<mail.example.net[203.0.113.5]>: Client host rejected: Access denied");
        CHECK(d.log[0].find(" to=<bob@example.com>") != std::string::npos);
    }
    SECTION("no: each list at its own command, and not again at RCPT") {
        v["smtpd_delay_reject"] = "no";
        v["smtpd_sender_restrictions"] = "reject_non_fqdn_sender";
        auto s = settings_with(v);
        CHECK(ask(s, &PolicyEngine::check_connect, c).kind == Decision::Kind::Reject);
        Context bad = c;
        bad.sender = "x@localhost";
        CHECK(ask(s, &PolicyEngine::check_mail, bad).kind == Decision::Kind::Reject);
        CHECK(ask(s, &PolicyEngine::check_rcpt, bad).kind == Decision::Kind::Continue);
    }
    SECTION("smtpd_helo_required") {
        v["smtpd_helo_required"] = "yes";
        v.erase("smtpd_client_restrictions");
        auto s = settings_with(v);
        Context no_helo = c;
        no_helo.helo.reset();
        CHECK(ask(s, &PolicyEngine::check_mail, no_helo).reply() == "503 5.5.1 Error: send HELO/EHLO first");
        CHECK(ask(s, &PolicyEngine::check_mail, c).kind == Decision::Kind::Continue);
    }
    SECTION("data and end-of-data lists") {
        v = {{"smtpd_data_restrictions", "reject"}, {"smtpd_end_of_data_restrictions", "defer"}};
        auto s = settings_with(v);
        CHECK(ask(s, &PolicyEngine::check_data, c).text == "<DATA>: Data command rejected: Access denied");
        CHECK(ask(s, &PolicyEngine::check_end_of_data, c).text ==
              "<END-OF-MESSAGE>: End-of-data rejected: Access denied");
    }
    SECTION("defer_if_permit carries across the lists of one command") {
        v = {{"smtpd_client_restrictions", "defer_if_permit"}, {"smtpd_recipient_restrictions", "permit"}};
        auto s = settings_with(v);
        CHECK(ask(s, &PolicyEngine::check_rcpt, c).kind == Decision::Kind::Defer);
        v["smtpd_recipient_restrictions"] = "reject";
        CHECK(ask(settings_with(v), &PolicyEngine::check_rcpt, c).code == 554);
    }
}

// ---------------------------------------------------------------------------------------------
// header_checks

TEST_CASE("header_checks: every action", "[policy][header_checks]") {
    std::vector<std::string> problems;
    auto hc = HeaderChecks::load("pcre:" + fixture("header_checks.pcre"), problems);
    CHECK(problems.empty());
    CHECK(hc.size() == 10);
    using K = HeaderVerdict::Kind;

    auto rej = hc.check("Subject: MAKE MONEY FAST today\r\n");
    CHECK(rej.kind == K::Reject);
    CHECK(rej.reply() == "550 5.7.1 Spam subject");
    auto hold = hc.check("Subject: please quarantine this");
    CHECK(hold.kind == K::Hold);
    CHECK(hold.text == "held for review");
    CHECK(hc.check("X-Drop-Me: yes").kind == K::Ignore);
    CHECK(hc.check("X-Drop-Me: yes").action.empty());  // IGNORE is silent
    CHECK(hc.check("X-Discard: 1").kind == K::Discard);
    auto warn = hc.check("X-Watch: token123 more");
    CHECK(warn.kind == K::Warn);
    CHECK(warn.text == "watched token123");
    CHECK(hc.check("X-Info: x").kind == K::Info);
    CHECK(hc.check("X-Ok: x").kind == K::Dunno);
    CHECK(hc.check("X-Dunno: x").kind == K::Dunno);
    CHECK(hc.check("Subject: hello").kind == K::Dunno);
    auto temp = hc.check("X-Temp: 1");
    CHECK(temp.reply() == "451 4.7.0 try later");

    Context ctx = rcpt_context();
    CHECK(rej.log_line(ctx) == "reject: header Subject: MAKE MONEY FAST today from mail.example.net[203.0.113.5]; "
                               "from=<alice@example.net> to=<bob@example.com> proto=ESMTP helo=<mail.example.net>: "
                               "5.7.1 Spam subject");
    CHECK(warn.log_line(ctx).find("warning: header X-Watch: token123 more from") == 0);
    CHECK(hc.check("Subject: hello").log_line(ctx).empty());
}

TEST_CASE("header_checks: case-insensitive by default, the i flag makes it exact", "[policy][header_checks]") {
    std::vector<std::string> problems;
    auto hc = HeaderChecks::load("pcre:" + fixture("header_checks.pcre"), problems);
    CHECK(hc.check("subject: make money FAST").kind == HeaderVerdict::Kind::Reject);
    CHECK(hc.check("X-Case: Exact").kind == HeaderVerdict::Kind::Reject);
    CHECK(hc.check("x-case: exact").kind == HeaderVerdict::Kind::Dunno);
}

TEST_CASE("header_checks: folded headers are matched as one logical line", "[policy][header_checks]") {
    std::vector<std::string> problems;
    auto hc = HeaderChecks::load("pcre:" + fixture("header_checks.pcre"), problems);
    auto v = hc.check("Subject: an offer to\r\n make money\r\n fast\r\n");
    CHECK(v.kind == HeaderVerdict::Kind::Reject);
    CHECK(v.header == "Subject: an offer to make money fast");
    CHECK(hc.check("Subject: please\r\n\tquarantine\r\n").kind == HeaderVerdict::Kind::Hold);
    CHECK(hc.check("Subject: an offer to\n make money fast\n").kind == HeaderVerdict::Kind::Reject);
}

TEST_CASE("header_checks: negation, if/endif, substitution, continuation, bad lines", "[policy][header_checks]") {
    std::vector<std::string> problems;
    auto hc = HeaderChecks::parse("if /^Received:/\n"
                                  "/from (\\S+) \\(/ WARN relay ${1}\n"
                                  "!/by mx\\.example\\.com/ REJECT 5.7.0 bad hop\n"
                                  "endif\n"
                                  "/^X-Long:\n"
                                  "   \\s+value/x REJECT long pattern\n"
                                  "/^X-Bcc:/ BCC a@b\n"
                                  "/^X-Prepend:/ PREPEND X-Foo: 1\n"
                                  "/^X-Strip:/ STRIP stripped\n"
                                  "/unclosed REJECT\n"
                                  "/^X-Flags:/q REJECT\n"
                                  "/^X-NoAction:/\n"
                                  "/^X-Nope:/ FROB\n",
                                  "inline", problems);
    CHECK(hc.size() == 6);
    CHECK(problems.size() == 6);
    CHECK(hc.check("Received: from relay.example (1.2.3.4) by mx.example.com").text == "relay relay.example");
    CHECK(hc.check("Received: by other.example").reply() == "550 5.7.0 bad hop");
    CHECK(hc.check("Subject: by other.example").kind == HeaderVerdict::Kind::Dunno);  // outside the if
    CHECK(hc.check("X-Long:   value").kind == HeaderVerdict::Kind::Reject);
    auto strip = hc.check("X-Strip: 1");
    CHECK(strip.kind == HeaderVerdict::Kind::Ignore);
    CHECK(strip.action == "strip");
    CHECK(hc.check("").kind == HeaderVerdict::Kind::Dunno);
    CHECK_THROWS_AS(HeaderChecks::load("pcre:" + fixture("missing.pcre"), problems), std::runtime_error);
    CHECK_THROWS_AS(HeaderChecks::load("hash:" + fixture("access"), problems), std::runtime_error);
}

TEST_CASE("header_checks: a catastrophic regex hits the match limit quickly", "[policy][header_checks]") {
    std::vector<std::string> problems;
    auto hc = HeaderChecks::parse("/^Subject: (\\w+\\s?)*$/ REJECT exponential\n"
                                  "/^Subject:/ WARN reached the next rule\n",
                                  "evil", problems);
    REQUIRE(problems.empty());
    std::string header = "Subject: ";
    for (int i = 0; i < 40; ++i) header += "aaaaaaaaaa";
    header += "!";
    auto start = std::chrono::steady_clock::now();
    auto v = hc.check(header);
    auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed < std::chrono::seconds(1));
    CHECK(v.kind == HeaderVerdict::Kind::Warn);  // the limited rule counts as no match
    CHECK(v.problem == "evil:1: regular expression exceeded the match limit; treated as no match");
    // An ordinary long header is not affected by the limit.
    std::string ok = "Subject: " + std::string(4000, 'x') + " make money fast";
    std::vector<std::string> p2;
    auto spam = HeaderChecks::load("pcre:" + fixture("header_checks.pcre"), p2);
    auto r = spam.check(ok);
    CHECK(r.kind == HeaderVerdict::Kind::Reject);
    CHECK(r.problem.empty());
}

TEST_CASE("header_checks: substitutions never put line breaks in replies", "[policy][header_checks]") {
    std::vector<std::string> problems;
    auto hc = HeaderChecks::parse("/^X-Evil: (.*)/ REJECT no $1\n", "inline", problems);
    auto v = hc.check("X-Evil: a\r\nb\x01");
    CHECK(v.reply().find('\r') == std::string::npos);
    CHECK(v.reply().find('\n') == std::string::npos);
    CHECK(v.reply().find('\x01') == std::string::npos);
}

TEST_CASE("several header_checks tables are searched in order", "[policy][header_checks]") {
    auto dir = std::filesystem::temp_directory_path() / "pillarbox_policy_hc";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "one") << "/^X-A:/ WARN first table\n";
    std::ofstream(dir / "two") << "/^X-A:/ REJECT second table\n/^X-B:/ HOLD\n";
    std::vector<std::string> problems;
    auto hc = HeaderChecks::load(std::vector<std::string>{"pcre:" + (dir / "one").string(),
                                                          "regexp:" + (dir / "two").string()},
                                 problems);
    CHECK(hc.check("X-A: 1").kind == HeaderVerdict::Kind::Warn);
    CHECK(hc.check("X-B: 1").kind == HeaderVerdict::Kind::Hold);
    std::filesystem::remove_all(dir);
}
