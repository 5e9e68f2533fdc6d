// The defaults of every module's settings are written once, in server/parameters.cpp: the
// Settings structs have none of their own, so each from() of the embedded defaults must give the
// documented values (docs/configuration.md). A from() that forgot a field would leave it zero.
#include <catch2/catch.hpp>

#include <sys/types.h>

#include "auth/admin/admin.hpp"
#include "auth/authenticator.hpp"
#include "auth/dovecot_socket.hpp"
#include "auth/recipients.hpp"
#include "protocols/smtp/policy/policy.hpp"
#include "protocols/smtp/smtp_session.hpp"
#include "server/config.hpp"
#include "server/protocol_registry.hpp"
#include "server/server.hpp"
#include "server/tls.hpp"
#include "storage/store.hpp"

using namespace pillarbox;
using namespace std::chrono_literals;

namespace {

config::Config defaults() { return config::Config::defaults(config::Environment{false, "h.example"}); }

}  // namespace

TEST_CASE("auth settings from the embedded defaults", "[defaults]") {
    auto s = auth::AuthSettings::from(defaults());
    CHECK(s.mechanisms == std::vector<std::string>{"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-1"});
    CHECK(s.default_domain.empty());
    CHECK(s.disable_plaintext_auth);
    CHECK_FALSE(s.loopback_cleartext);
    CHECK(s.rehash);
    CHECK(s.hash.argon2_ops == 3);
    CHECK(s.hash.argon2_memory == 64u * 1024 * 1024);
    CHECK(s.hash.scram_iterations == 4096);
    CHECK(s.throttle.initial == 2s);  // auth_failure_delay
    CHECK(s.throttle.max == 15s);     // auth_penalty_max
    CHECK(s.throttle.queue_limit == 3);
    CHECK(s.cache.size == 1024 * 1024);
    CHECK(s.cache.ttl == 1h);
    CHECK(s.server_name == "h.example");

    auto r = auth::RecipientSettings::from(defaults());
    CHECK(r.mydestination == std::vector<std::string>{"h.example", "localhost.example", "localhost"});
    CHECK(r.recipient_delimiter == "+");
    CHECK(r.recursion_limit == 1000);
    CHECK(r.expansion_limit == 1000);

    auto a = auth::admin::AdminSettings::from(defaults());
    CHECK(a.data_directory == "./data");
    CHECK(a.myhostname == "h.example");
    CHECK(a.hash.argon2_ops == 3);
    CHECK(a.recipients.recipient_delimiter == "+");
    CHECK_FALSE(a.store_cram_md5);  // CRAM-MD5 is not among the default mechanisms
    CHECK(a.builtin_backend);

    auto d = auth::DovecotAuthSocket::Settings::from(defaults());
    CHECK(d.path.empty());
    CHECK(d.mode == static_cast<mode_t>(0660));
}

TEST_CASE("store, server and TLS settings from the embedded defaults", "[defaults]") {
    auto st = storage::StoreSettings::from(defaults());
    CHECK(st.data_directory == "./data");
    CHECK(st.hostname == "h.example");
    CHECK(st.io_threads == 4);  // worker_threads
    CHECK(st.quota.max_bytes == 0);
    CHECK(st.quota.max_messages == 0);
    CHECK_FALSE(st.quota_full_tempfail);

    auto sv = ServerSettings::from(defaults());
    CHECK(sv.connection_limit == 1000);
    CHECK(sv.stress_threshold_percent == 80);
    CHECK(sv.stress_idle_timeout == 10s);
    CHECK(sv.shutdown_timeout == 30s);
    CHECK(sv.worker_threads == 4);
    CHECK(sv.inet_interfaces == std::vector<std::string>{"all"});

    auto t = tls::TlsSettings::from(defaults());
    CHECK(t.min_version == "TLSv1.2");
    CHECK(t.cert_file.empty());
}

TEST_CASE("listener settings from the embedded defaults", "[defaults]") {
    // POP3 is served (with no sessions made); SMTP is not, so it has no idle timeout.
    ProtocolRegistry protocols;
    ProtocolEntry e;
    e.protocol = config::Protocol::Pop3;
    e.name = e.log_service = "pop3";
    e.idle_timeout_parameter = "pop3_idle_timeout";
    e.goodbye = [](Goodbye, std::string_view) { return std::string(); };
    e.make_session = [](SessionIo&) -> std::unique_ptr<Session> { return nullptr; };
    protocols.add(std::move(e));
    std::vector<config::Diagnostic> diags;
    auto rt = build_runtime(defaults(), diags, /*create_files=*/false, &protocols);
    INFO((diags.empty() ? std::string() : diags.front().to_string()));
    REQUIRE(rt);
    const auto& pop3 = *rt->listeners.at("pop3");
    CHECK(pop3.idle_timeout == 10min);
    CHECK(pop3.tls_handshake_timeout == 30s);
    CHECK(pop3.input_limit == 1024 * 1024);
    CHECK(pop3.output_limit == 1024 * 1024);
    CHECK(pop3.client_limit == 50);
    const auto& smtp = *rt->listeners.at("smtp");
    CHECK(smtp.tls_handshake_timeout == 30s);
    CHECK(smtp.input_limit == 1024 * 1024);
    CHECK(smtp.output_limit == 1024 * 1024);
    CHECK(smtp.client_limit == 50);
    CHECK(smtp.client_rate_limit == 0);
    CHECK(smtp.client_rate_unit == 60s);
}

TEST_CASE("SMTP session and policy settings from the embedded defaults", "[defaults]") {
    auto s = smtp::Settings::from(defaults());
    CHECK(s.message_size_limit == 10240000);
    CHECK(s.recipient_limit == 1000);
    CHECK(s.header_size_limit == 102400);
    CHECK(s.error_sleep == 1s);
    CHECK(s.hard_error_limit == 20);

    auto p = smtp::policy::PolicySettings::from(defaults());
    CHECK(p.validate().empty());
    CHECK_FALSE(p.helo_required);
    CHECK(p.delay_reject);
    CHECK(p.relay_domains_match_subdomains);
    const auto& c = p.codes;
    CHECK(c.reject_code == 554);
    CHECK(c.defer_code == 450);
    CHECK(c.access_map_reject_code == 554);
    CHECK(c.access_map_defer_code == 450);
    CHECK(c.relay_domains_reject_code == 554);
    CHECK(c.unknown_address_reject_code == 450);
    CHECK(c.unknown_address_tempfail_defer_if_permit);
    CHECK(c.unknown_hostname_reject_code == 450);
    CHECK(c.unknown_client_reject_code == 450);
    CHECK(c.non_fqdn_reject_code == 504);
    CHECK(c.invalid_hostname_reject_code == 501);
    CHECK(c.maps_rbl_reject_code == 554);
    CHECK(c.unlisted_recipient_reject_code == 550);
    CHECK(c.lookup.parent_matches_subdomains);
    CHECK(c.lookup.recipient_delimiter == "+");
    CHECK(c.lookup.null_sender_key == "<>");
}

TEST_CASE("a setting in the file replaces the default", "[defaults]") {
    std::vector<config::Diagnostic> diags;
    auto c = config::Config::parse("auth_failure_delay = 5s\nreject_code = 550\nrecipient_delimiter = -\n", "t.conf",
                                   config::Environment{false, "h.example"}, diags);
    REQUIRE(diags.empty());
    CHECK(auth::AuthSettings::from(c).throttle.initial == 5s);
    auto p = smtp::policy::PolicySettings::from(c);
    CHECK(p.codes.reject_code == 550);
    CHECK(p.codes.lookup.recipient_delimiter == "-");
    CHECK(auth::RecipientSettings::from(c).recipient_delimiter == "-");
}
