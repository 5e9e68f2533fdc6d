// The main.cf grammar: comments, continuation lines, expansion and its loops, duplicates,
// unknown names, typed validation with file:line, listener lines and overrides.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "server/config.hpp"
#include "server/listener_def.hpp"

using namespace pillarbox::config;

namespace {
Environment test_env() { return Environment{false, "mail.example.org"}; }

Config parse(std::string_view text, std::vector<Diagnostic>& diags) {
    return Config::parse(text, "test.conf", test_env(), diags);
}

bool has(const std::vector<Diagnostic>& diags, Diagnostic::Severity sev, int line, const std::string& needle) {
    for (auto& d : diags)
        if (d.severity == sev && d.line == line && d.file == "test.conf" && d.message.find(needle) != std::string::npos)
            return true;
    return false;
}

std::string dump(const std::vector<Diagnostic>& diags) {
    std::string s;
    for (auto& d : diags) s += d.to_string() + "\n";
    return s;
}
}  // namespace

TEST_CASE("comments, blank lines and continuation lines") {
    std::vector<Diagnostic> diags;
    auto c = parse("# a comment\n"
                   "\n"
                   "myhostname = mx.example.com\n"
                   "mynetworks = 127.0.0.0/8\n"
                   "    [::1]/128\n"
                   "  # comment inside a continuation is skipped\n"
                   "\t192.0.2.0/24\n"
                   "syslog_name = post#fix\n",
                   diags);
    INFO(dump(diags));
    CHECK(diags.empty());
    CHECK(c.get("myhostname") == "mx.example.com");
    CHECK(c.get("mynetworks") == "127.0.0.0/8 [::1]/128 192.0.2.0/24");
    CHECK(c.get("syslog_name") == "post#fix");  // '#' inside a value is not a comment (main.cf)
    CHECK(c.setting("mynetworks")->line == 4);
}

TEST_CASE("CRLF line endings are accepted") {
    std::vector<Diagnostic> diags;
    auto c = parse("myhostname = a.example.com\r\n", diags);
    CHECK(diags.empty());
    CHECK(c.get("myhostname") == "a.example.com");
}

TEST_CASE("expansion forms") {
    std::vector<Diagnostic> diags;
    auto c = parse("myhostname = mx.example.com\n"
                   "syslog_name = ${myhostname}-$myhostname-$(myhostname)\n"
                   "log_file = /var/log/${syslog_name?x}${tls_cert_file?y}${tls_cert_file:z}$$\n",
                   diags);
    INFO(dump(diags));
    CHECK(diags.empty());
    CHECK(c.get("syslog_name") == "mx.example.com-mx.example.com-mx.example.com");
    CHECK(c.get("log_file") == "/var/log/xz$");
    CHECK(c.raw("syslog_name") == "${myhostname}-$myhostname-$(myhostname)");
}

TEST_CASE("defaults expand too, and computed defaults follow what they depend on") {
    std::vector<Diagnostic> diags;
    auto c = parse("myhostname = mail.office.example\n", diags);
    CHECK(c.get("mydomain") == "office.example");
    CHECK(c.get("smtpd_banner") == "mail.office.example ESMTP Pillarbox");
    auto d = Config::defaults(test_env());
    CHECK(d.get("myhostname") == "mail.example.org");
    CHECK(d.get("mydomain") == "example.org");
    CHECK(d.get("data_directory") == "./data");
    CHECK(d.get("listen_imaps") == "imap implicit 1993 client_connection_limit=500");
    auto root = Config::defaults(Environment{true, "h.example"});
    CHECK(root.get("listen_imaps") == "imap implicit 993 client_connection_limit=500");
    CHECK(root.get("data_directory") == "/var/lib/pillarbox");
}

TEST_CASE("expansion loops are errors with file and line") {
    std::vector<Diagnostic> diags;
    parse("myhostname = $syslog_name\n"
          "syslog_name = $myhostname\n",
          diags);
    INFO(dump(diags));
    CHECK((has(diags, Diagnostic::Error, 1, "expansion loop") || has(diags, Diagnostic::Error, 2, "expansion loop")));
    diags.clear();
    parse("log_file = $log_file\n", diags);
    CHECK(has(diags, Diagnostic::Error, 1, "log_file -> log_file"));
}

TEST_CASE("expansion that doubles at every step is cut off") {
    std::vector<Diagnostic> diags;
    std::string text = "syslog_name = xxxxxxxxxxxxxxxx\n";
    const char* names[] = {"log_file", "tls_cert_file", "tls_server_sni_maps", "tls_ciphers", "myhostname",
                           "data_directory", "mydomain", "inet_interfaces", "tls_key_file", "log_level", "smtpd_timeout",
                           "pop3_idle_timeout", "imap_idle_timeout"};
    std::string prev = "syslog_name";
    for (auto* n : names) {
        text += fmt::format("{} = ${}${}\n", n, prev, prev);
        prev = n;
    }
    parse(text, diags);
    bool cut = false;
    for (auto& d : diags) cut |= d.message.find("after expansion") != std::string::npos;
    CHECK(cut);
}

TEST_CASE("undefined $names and unbalanced braces are reported") {
    std::vector<Diagnostic> diags;
    auto c = parse("syslog_name = a$nosuchthing\nlog_file = ${myhostname\n", diags);
    INFO(dump(diags));
    CHECK(has(diags, Diagnostic::Warning, 1, "undefined parameter $nosuchthing"));
    CHECK(c.get("syslog_name") == "a");
    CHECK(has(diags, Diagnostic::Error, 2, "missing '}'"));
}

TEST_CASE("a parameter set twice is a warning naming both lines") {
    std::vector<Diagnostic> diags;
    auto c = parse("inet_interfaces = 127.0.0.1\n"
                   "myhostname = a.example\n"
                   "inet_interfaces = all\n",
                   diags);
    INFO(dump(diags));
    REQUIRE(has(diags, Diagnostic::Warning, 3, "\"inet_interfaces\" is set twice"));
    CHECK(has(diags, Diagnostic::Warning, 3, "from line 1"));
    CHECK(c.get("inet_interfaces") == "all");  // the later one wins, as in Postfix, but not silently
}

TEST_CASE("unknown parameters are warnings with a suggestion") {
    std::vector<Diagnostic> diags;
    parse("myhostnam = x.example\nfrobnicate = 1\n", diags);
    INFO(dump(diags));
    CHECK(has(diags, Diagnostic::Warning, 1, "did you mean \"myhostname\""));
    CHECK(has(diags, Diagnostic::Warning, 2, "unknown parameter \"frobnicate\""));
}

TEST_CASE("syntax errors carry file and line") {
    std::vector<Diagnostic> diags;
    parse("   leading = continuation\nno equals sign here\nbad name! = 1\n", diags);
    INFO(dump(diags));
    CHECK(has(diags, Diagnostic::Error, 1, "continuation line"));
    CHECK(has(diags, Diagnostic::Error, 2, "missing '='"));
    CHECK(has(diags, Diagnostic::Error, 3, "bad parameter name"));
    CHECK(diags.front().to_string().rfind("test.conf:1: error: ", 0) == 0);
}

TEST_CASE("bad typed values are errors at their line") {
    std::vector<Diagnostic> diags;
    parse("connection_limit = lots\n"
          "smtpd_timeout = 5 minutes\n"
          "input_buffer_limit = 10X\n"
          "mynetworks = 10.0.0.1/8\n"
          "log_level = chatty\n"
          "worker_threads = 0\n",
          diags);
    INFO(dump(diags));
    CHECK(has(diags, Diagnostic::Error, 1, "connection_limit"));
    CHECK(has(diags, Diagnostic::Error, 2, "smtpd_timeout"));
    CHECK(has(diags, Diagnostic::Error, 3, "input_buffer_limit"));
    CHECK(has(diags, Diagnostic::Error, 4, "host bits"));
    CHECK(has(diags, Diagnostic::Error, 5, "one of: debug"));
    CHECK(has(diags, Diagnostic::Error, 6, "out of range"));
}

TEST_CASE("a bad value reached through expansion is reported where it is used") {
    std::vector<Diagnostic> diags;
    // (No default expands $mynetworks any more: client_connection_limit_exceptions is empty.)
    parse("mynetworks = not-a-network\nclient_connection_limit_exceptions = $mynetworks\n", diags);
    INFO(dump(diags));
    CHECK(has(diags, Diagnostic::Error, 1, "mynetworks"));
    CHECK(has(diags, Diagnostic::Error, 2, "client_connection_limit_exceptions"));
}

TEST_CASE("typed getters") {
    std::vector<Diagnostic> diags;
    auto c = parse("smtpd_timeout = 2m\ninput_buffer_limit = 64k\n", diags);
    CHECK(c.get_time("smtpd_timeout") == std::chrono::minutes(2));
    CHECK(c.get_size("input_buffer_limit") == 65536);
    CHECK(c.get_count("connection_limit") == 1000);
    CHECK(c.get_cidrs("mynetworks").size() == 2);
    CHECK(c.get_list("inet_interfaces") == std::vector<std::string>{"all"});
}

TEST_CASE("listener lines") {
    auto l = parse_listener_line("smtp starttls 127.0.0.1:2525 [::1]:2525 2526 smtpd_timeout=60s");
    REQUIRE(l);
    CHECK(l.value->protocol == Protocol::Smtp);
    CHECK(l.value->tls == TlsMode::StartTls);
    CHECK(l.value->endpoints.size() == 3);
    REQUIRE(l.value->overrides.size() == 1);
    CHECK(l.value->overrides[0] == std::pair<std::string, std::string>{"smtpd_timeout", "60s"});
    CHECK(parse_listener_line("").value->endpoints.empty());  // switched off
    CHECK_FALSE(parse_listener_line("gopher none 70"));
    CHECK_FALSE(parse_listener_line("smtp sometimes 25"));
    CHECK_FALSE(parse_listener_line("smtp starttls"));
    CHECK_FALSE(parse_listener_line("http starttls 80"));
    CHECK_FALSE(parse_listener_line("smtp none a=b 25"));
    CHECK_FALSE(parse_listener_line("smtp none 25 =b"));
}

TEST_CASE("listeners in the file: new names, switched off, bad lines") {
    std::vector<Diagnostic> diags;
    auto c = parse("listen_alt = smtp starttls 2526\n"
                   "listen_pop3 =\n"
                   "listen_broken = smtp tls 25\n",
                   diags);
    INFO(dump(diags));
    auto names = c.listener_names();
    CHECK(std::find(names.begin(), names.end(), "listen_alt") != names.end());
    CHECK(std::find(names.begin(), names.end(), "listen_pop3") == names.end());
    CHECK(std::find(names.begin(), names.end(), "listen_smtp") != names.end());
    CHECK(has(diags, Diagnostic::Error, 3, "unknown TLS mode"));
}

TEST_CASE("per-listener overrides") {
    std::vector<Diagnostic> diags;
    auto c = parse("smtpd_timeout = 300s\nlisten_slow = smtp none 2526 smtpd_timeout=20m\n", diags);
    REQUIRE(diags.empty());
    auto l = parse_listener_line(c.get("listen_slow"));
    auto lc = c.with_overrides(l.value->overrides, *c.setting("listen_slow"), diags);
    CHECK(diags.empty());
    CHECK(lc.get_time("smtpd_timeout") == std::chrono::minutes(20));
    CHECK(c.get_time("smtpd_timeout") == std::chrono::minutes(5));

    lc = c.with_overrides({{"smtpd_timeout", "forever"}, {"nosuch", "1"}, {"worker_threads", "2"}},
                          *c.setting("listen_slow"), diags);
    INFO(dump(diags));
    CHECK(has(diags, Diagnostic::Error, 2, "unknown parameter \"nosuch\""));
    CHECK(has(diags, Diagnostic::Error, 2, "cannot be set per listener"));
    CHECK(has(diags, Diagnostic::Error, 2, "listen_slow: smtpd_timeout"));
}
