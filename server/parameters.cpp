// The table of known pillarbox.conf parameters: names, embedded defaults and documentation.
// docs/configuration.md is generated from this table (`pillarbox config --doc`), and a test keeps
// the two in step.
#include <fmt/format.h>

// Designated initializers leave the other ParamDef members at their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "config.hpp"

namespace pillarbox::config {

std::vector<ParamDef> parameter_table(const Environment& env) {
    const bool root = env.root;
    auto port = [root](int standard, int unprivileged) { return std::to_string(root ? standard : unprivileged); };
    std::vector<ParamDef> t;
    auto add = [&t](ParamDef d) { t.push_back(std::move(d)); };

    // --- identity ---
    add({.name = "myhostname", .default_value = env.hostname, .type = Type::String,
         .doc = "The fully qualified name of this mail host, used in greetings, Received: headers and "
                "the self-signed certificate. Default: the system host name (with .localdomain appended "
                "when it has no dot)."});
    add({.name = "mydomain", .default_value = "", .type = Type::String,
         .doc = "The domain of this host. Default: $myhostname without its first label.",
         .computed_default = [](const Config& c) {
             const std::string& h = c.get("myhostname");
             auto dot = h.find('.');
             return dot == std::string::npos ? std::string("localdomain") : h.substr(dot + 1);
         }});
    add({.name = "syslog_name", .default_value = "pillarbox", .type = Type::String,
         .doc = "The program name at the start of each log line (pillarbox/smtpd[pid]: ...)."});
    add({.name = "mynetworks", .default_value = "127.0.0.1/32 [::1]/128", .type = Type::CidrList,
         .doc = "Trusted client networks (Postfix syntax: 192.0.2.0/24, [2001:db8::]/32). Clients "
                "here may relay without logging in (permit_mynetworks). Keep this to networks you "
                "control: never a Docker bridge or the whole Internet. The default is the host "
                "itself, not all of 127.0.0.0/8: a local proxy or tunnel that forwards outside "
                "clients from another loopback address must not make them trusted."});

    // --- files ---
    add({.name = "data_directory", .default_value = root ? "/var/lib/pillarbox" : "./data", .type = Type::Path,
         .doc = "The one folder holding all state: mail, indexes, queue, generated certificates. "
                "Default: /var/lib/pillarbox as root, ./data otherwise."});

    // --- listeners ---
    add({.name = "inet_interfaces", .default_value = "all", .type = Type::List,
         .doc = "Addresses that listeners given as a bare PORT bind to: 'all' (every IPv4 and IPv6 "
                "address), 'loopback-only', or a list of IP addresses."});
    struct L { const char* name; const char* value; const char* overrides; const char* doc; };
    // Submission listeners are Postfix's master.cf submission/submissions entries: the -o
    // overrides become NAME=VALUE overrides here, visible in `pillarbox config`.
    const L listeners[] = {
        {"listen_smtp", "smtp starttls", "", "Mail from other servers (MX), STARTTLS offered."},
        {"listen_submission", "smtp starttls",
         " smtpd_tls_security_level=encrypt smtpd_client_restrictions=$mua_client_restrictions"
         " smtpd_sender_restrictions=$mua_sender_restrictions",
         "Mail submission by users (RFC 6409): TLS and authentication required."},
        {"listen_submissions", "smtp implicit",
         " smtpd_client_restrictions=$mua_client_restrictions smtpd_sender_restrictions=$mua_sender_restrictions",
         "Mail submission over implicit TLS (RFC 8314): authentication required."},
        {"listen_pop3", "pop3 starttls", "", "POP3 with STLS."},
        {"listen_pop3s", "pop3 implicit", "", "POP3 over implicit TLS."},
        // An office behind one NAT address: 20 mail clients keeping up to 5 IMAP connections
        // each; mail_max_userip_connections is the finer, per-account limit.
        {"listen_imap", "imap starttls", " client_connection_limit=500", "IMAP with STARTTLS."},
        {"listen_imaps", "imap implicit", " client_connection_limit=500", "IMAP over implicit TLS."},
        {"listen_http", "http none", "", "The admin web UI and HTTP API."},
    };
    const std::pair<int, int> ports[] = {{25, 2525}, {587, 2587}, {465, 2465}, {110, 1110},
                                         {995, 1995}, {143, 1143}, {993, 1993}, {80, 8080}};
    for (std::size_t i = 0; i < std::size(listeners); ++i) {
        add({.name = listeners[i].name,
             .default_value = fmt::format("{} {}{}", listeners[i].value, port(ports[i].first, ports[i].second), listeners[i].overrides),
             .type = Type::Listener,
             .doc = fmt::format("{} Format: PROTOCOL TLS-MODE ADDRESS... [NAME=VALUE...]; an empty value "
                                "switches the listener off. Default port {} as root, {} otherwise.",
                                listeners[i].doc, ports[i].first, ports[i].second)});
    }

    // --- connection limits and timeouts ---
    add({.name = "connection_limit", .default_value = "1000", .type = Type::Count, .min = 1, .max = 1000000,
         .doc = "Connections open at once over all listeners; more are answered with the protocol's "
                "'too many connections' reply and closed. Lowered at start when the open files limit "
                "(its hard limit, to which the server raises the soft one) can't hold that many; the "
                "start log says which limit is in force."});
    add({.name = "connection_stress_threshold", .default_value = "80", .type = Type::Count, .min = 0, .max = 100,
         .doc = "Percent of connection_limit at which the server enters stress mode (0 = never), as "
                "Postfix does when its process limits are reached: while there, sessions that have not "
                "logged in time out after connection_stress_idle_timeout and every session is closed at "
                "its first error, so idle connections are shed before new clients are refused. Left "
                "when the count falls 10 % below the threshold."});
    add({.name = "connection_stress_idle_timeout", .default_value = "10s", .type = Type::Time,
         .doc = "The idle timeout of sessions that have not logged in while the server is under stress "
                "(see connection_stress_threshold)."});
    add({.name = "client_connection_limit", .default_value = "50", .type = Type::Count, .per_listener = true,
         .min = 0, .max = 1000000,
         .doc = "Connections open at once from one client IP address to one listener (0 = no limit). "
                "An IPv6 client is counted by its /64. Like Postfix's "
                "smtpd_client_connection_count_limit."});
    add({.name = "client_connection_rate_limit", .default_value = "0", .type = Type::Count, .per_listener = true,
         .min = 0, .max = 1000000,
         .doc = "New connections one client IP (IPv6: /64) may open to one listener per "
                "client_connection_rate_time_unit (0 = no limit); more are refused with the "
                "protocol's 'too many connections' reply. Postfix's smtpd_client_connection_rate_limit; "
                "client_connection_limit_exceptions are exempt."});
    add({.name = "client_connection_rate_time_unit", .default_value = "60s", .type = Type::Time, .per_listener = true,
         .doc = "The time unit of client_connection_rate_limit (Postfix's anvil_rate_time_unit)."});
    add({.name = "client_connection_limit_exceptions", .default_value = "", .type = Type::CidrList,
         .per_listener = true,
         .doc = "Client networks exempt from client_connection_limit and client_connection_rate_limit. "
                "Empty by default, loopback included: trust for relaying (mynetworks) is no licence to "
                "hold every connection."});
    add({.name = "smtpd_timeout", .default_value = "300s", .type = Type::Time, .per_listener = true,
         .doc = "How long an SMTP client may stay silent (RFC 5321 4.5.3.2 asks for at least 5 minutes)."});
    add({.name = "pop3_idle_timeout", .default_value = "10m", .type = Type::Time, .per_listener = true,
         .doc = "How long a POP3 client may stay silent (RFC 1939: at least 10 minutes)."});
    add({.name = "imap_idle_timeout", .default_value = "30m", .type = Type::Time, .per_listener = true,
         .doc = "How long an IMAP client may stay silent (RFC 9051: at least 30 minutes)."});
    add({.name = "http_idle_timeout", .default_value = "60s", .type = Type::Time, .per_listener = true,
         .doc = "How long an HTTP client may stay silent."});
    add({.name = "tls_handshake_timeout", .default_value = "30s", .type = Type::Time, .per_listener = true,
         .doc = "How long a TLS handshake may take (implicit TLS, STARTTLS, STLS); a client that "
                "doesn't complete it in time is disconnected."});
    add({.name = "input_buffer_limit", .default_value = "1M", .type = Type::Size, .per_listener = true,
         .doc = "Unprocessed input kept per connection; a client that sends more than its session can "
                "take is disconnected."});
    add({.name = "output_buffer_limit", .default_value = "1M", .type = Type::Size, .per_listener = true,
         .doc = "Output queued per connection; above it the server stops reading that client until it "
                "has taken its replies (a slow reader cannot make the server buffer without bound)."});
    add({.name = "shutdown_timeout", .default_value = "30s", .type = Type::Time,
         .doc = "On SIGTERM, how long transactions in progress may take to finish before their "
                "connections are closed."});
    add({.name = "worker_threads", .default_value = "4", .type = Type::Count, .min = 1, .max = 256,
         .doc = "Threads for blocking work (fsync, SQLite writes, password hashing); connections all "
                "run on one event loop thread. The store has as many io threads and as many index "
                "writers (each owns a share of the accounts, so their commits flush side by side)."});

    // --- mail store ---
    add({.name = "mailbox_size_limit", .default_value = "0", .type = Type::Size,
         .doc = "Storage limit per account, over all its folders (0 = no limit). Deliveries and "
                "appends that don't fit fail as over quota (SMTP 552 5.2.2, IMAP [OVERQUOTA]). "
                "Postfix's parameter of this name limits one mbox file; here it is the account."});
    add({.name = "mailbox_message_limit", .default_value = "0", .type = Type::Count,
         .doc = "Message count limit per account (0 = no limit)."});
    add({.name = "open_accounts_limit", .default_value = "256", .type = Type::Count, .min = 1, .max = 1000000,
         .doc = "Accounts whose index the store keeps open for writing (a SQLite connection, three "
                "file descriptors and some memory each). Past this the least recently written one "
                "is closed, and opened again by its next delivery, flag change or append; sessions "
                "that only read, or wait in IDLE, don't keep an account open. The connection limit "
                "keeps three descriptors per open account in reserve."});
    add({.name = "quota_full_tempfail", .default_value = "no", .type = Type::Bool,
         .doc = "Dovecot's name: yes makes over-quota a temporary failure (SMTP 452 4.2.2, the "
                "sender retries) instead of a permanent one (552 5.2.2)."});

    // --- SMTP server ---
    add({.name = "smtpd_banner", .default_value = "$myhostname ESMTP Pillarbox", .type = Type::String, .per_listener = true,
         .doc = "The text after 220 in the greeting. RFC 5321 4.3.1 wants the host name first."});
    add({.name = "message_size_limit", .default_value = "10240000", .type = Type::Size, .per_listener = true,
         .doc = "The largest message accepted, in bytes as received (0 = no limit). Announced in the "
                "EHLO SIZE keyword; a larger MAIL SIZE= is refused at once (552 5.3.4), and a message "
                "that grows past it is refused at the end of DATA/BDAT."});
    add({.name = "smtpd_recipient_limit", .default_value = "1000", .type = Type::Count, .per_listener = true, .min = 1, .max = 1000000,
         .doc = "Recipients per message; more get 452 4.5.3 so the client sends them in another "
                "transaction (RFC 5321 4.5.3.1.10)."});
    add({.name = "line_length_limit", .default_value = "2048", .type = Type::Size, .per_listener = true,
         .doc = "The longest SMTP command line accepted (RFC 5321 allows 512; Postfix accepts 2048); "
                "longer ones get 500 5.5.0. AUTH responses may be up to 12288 (RFC 4954)."});
    add({.name = "header_size_limit", .default_value = "102400", .type = Type::Size, .per_listener = true,
         .doc = "How much of a message's header section is held for header_checks and missing-header "
                "processing; beyond it the rest passes through as body (as in Postfix)."});
    add({.name = "smtpd_error_sleep_time", .default_value = "1s", .type = Type::Time, .per_listener = true,
         .doc = "Delay before each error reply once a client has made smtpd_soft_error_limit errors."});
    add({.name = "smtpd_soft_error_limit", .default_value = "10", .type = Type::Count, .per_listener = true,
         .doc = "Errors after which each error reply is delayed by smtpd_error_sleep_time."});
    add({.name = "smtpd_hard_error_limit", .default_value = "20", .type = Type::Count, .per_listener = true, .min = 1,
         .doc = "Errors after which the client is disconnected (421 4.7.0)."});
    add({.name = "smtpd_junk_command_limit", .default_value = "100", .type = Type::Count, .per_listener = true,
         .doc = "NOOP, RSET, VRFY and HELP commands allowed before each further one counts as an error."});
    add({.name = "disable_vrfy_command", .default_value = "yes", .type = Type::Bool, .per_listener = true,
         .doc = "Refuse VRFY (502 5.5.1), so addresses can't be harvested. With no, VRFY gets the "
                "non-committal 252 of RFC 5321 3.5.3."});
    add({.name = "smtpd_tls_security_level", .default_value = "may", .type = Type::Choice, .per_listener = true,
         .choices = {"none", "may", "encrypt"},
         .doc = "may: STARTTLS offered; encrypt: MAIL and AUTH refused until STARTTLS (530 5.7.0); "
                "none: no STARTTLS."});
    add({.name = "smtpd_sasl_auth_enable", .default_value = "yes", .type = Type::Bool, .per_listener = true,
         .doc = "Offer AUTH (with the mechanisms the auth layer allows on that connection: no "
                "cleartext mechanisms before TLS)."});
    add({.name = "smtpd_sasl_authenticated_header", .default_value = "no", .type = Type::Bool, .per_listener = true,
         .doc = "Name the authenticated user in the Received: header."});
    add({.name = "smtpd_forbid_bare_newline", .default_value = "normalize", .type = Type::Choice, .per_listener = true,
         .choices = {"normalize", "reject"},
         .doc = "A bare LF or bare CR in message data: normalize turns it into CRLF, reject refuses "
                "the message (550 5.5.2). Either way only CRLF.CRLF ends DATA, so a message can never "
                "be split in two (SMTP smuggling)."});
    add({.name = "smtpd_forbid_unauth_pipelining", .default_value = "yes", .type = Type::Bool, .per_listener = true,
         .doc = "Disconnect clients that send commands ahead where RFC 2920 forbids it (after EHLO, "
                "DATA, AUTH, or anything before EHLO): 554 5.5.0."});
    add({.name = "smtpd_peername_lookup", .default_value = "yes", .type = Type::Bool, .per_listener = true,
         .doc = "Look up the client's name (PTR, confirmed by A/AAAA) before the greeting, for the "
                "logs, Received: and check_client_access; 'unknown' when it doesn't confirm. "
                "Loopback clients are not looked up."});
    add({.name = "mua_client_restrictions", .default_value = "permit_sasl_authenticated, reject", .type = Type::String,
         .doc = "The client restrictions of the submission listeners (as in Postfix's master.cf "
                "`-o smtpd_client_restrictions=$mua_client_restrictions`): only authenticated users "
                "may send."});
    add({.name = "mua_sender_restrictions", .default_value = "reject_sender_login_mismatch", .type = Type::String,
         .doc = "The sender restrictions of the submission listeners (Postfix's master.cf "
                "`-o smtpd_sender_restrictions=$mua_sender_restrictions`): a user may send as their own "
                "address (also with a recipient_delimiter extension), as an alias that reaches them "
                "(not a catch-all), with the null sender <>, or as what smtpd_sender_login_maps "
                "gives them; anything else gets 553 5.7.1."});
    add({.name = "smtpd_greet_pause", .default_value = "0s", .type = Type::Time, .per_listener = true,
         .doc = "Wait this long before the 220 greeting (Postfix's postscreen_greet_wait). A client "
                "that talks before the greeting is disconnected with 554 5.5.0 when "
                "smtpd_forbid_unauth_pipelining is on. A few seconds on port 25 stops many spambots; "
                "keep 0 on submission ports."});
    add({.name = "dns_servers", .default_value = "", .type = Type::List,
         .doc = "DNS servers for DNSBL and domain checks (IP or IP:PORT); empty: /etc/resolv.conf."});

    // --- SMTP restrictions (Postfix names, defaults and semantics) ---
    add({.name = "smtpd_client_restrictions", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Restrictions on the client address and name (Postfix syntax and verbs). With smtpd_delay_reject they are evaluated at RCPT TO."});
    add({.name = "smtpd_helo_restrictions", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Restrictions on the HELO/EHLO name, e.g. reject_invalid_helo_hostname."});
    add({.name = "smtpd_sender_restrictions", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Restrictions on the MAIL FROM address, e.g. reject_non_fqdn_sender, reject_unknown_sender_domain."});
    add({.name = "smtpd_sender_login_maps", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Tables (hash:, texthash:, pcre:, ... as for check_sender_access) of 'sender  login1, "
                "login2' lines naming more logins that may use a MAIL FROM address with "
                "reject_sender_login_mismatch; keys user@domain (user+ext@domain too) or @domain. They "
                "widen the default owners (the account, its extensions and the aliases reaching it)."});
    add({.name = "smtpd_relay_restrictions", .default_value = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination", .type = Type::List, .per_listener = true,
         .doc = "Mail relay policy, evaluated at RCPT TO before smtpd_recipient_restrictions. The default refuses to relay except for mynetworks and authenticated clients (Postfix's default ends with defer_unauth_destination; Pillarbox rejects outright)."});
    add({.name = "smtpd_recipient_restrictions", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Spam-blocking restrictions at RCPT TO, after smtpd_relay_restrictions."});
    add({.name = "smtpd_data_restrictions", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Postfix's restrictions at DATA. Not enforced yet: a non-empty value is refused at start "
                "(`pillarbox check` says so), rather than accepted and ignored."});
    add({.name = "smtpd_end_of_data_restrictions", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Postfix's restrictions after the message content. Not enforced yet: a non-empty value is "
                "refused at start, rather than accepted and ignored."});
    add({.name = "smtpd_helo_required", .default_value = "no", .type = Type::Bool, .per_listener = true,
         .doc = "Require HELO or EHLO before MAIL FROM (503 5.5.1 otherwise)."});
    add({.name = "smtpd_delay_reject", .default_value = "yes", .type = Type::Bool, .per_listener = true,
         .doc = "Evaluate smtpd_client_restrictions, smtpd_helo_restrictions and smtpd_sender_restrictions at RCPT TO, so rejections are logged with the recipient and clients that mishandle early rejections keep working. Only `yes` is supported yet; `no` is refused at start."});
    add({.name = "relay_domains", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "Domains this server relays mail to (it is not their final destination). 'example.com' also matches subdomains (see parent_domain_matches_subdomains); /file/name entries are read as lists, TYPE:PATH entries as tables."});
    add({.name = "parent_domain_matches_subdomains", .default_value = "relay_domains, smtpd_access_maps", .type = Type::List, .per_listener = true,
         .doc = "Features where 'example.com' also matches its subdomains instead of requiring '.example.com'. Only relay_domains and smtpd_access_maps have an effect."});
    add({.name = "smtpd_null_access_lookup_key", .default_value = "<>", .type = Type::String, .per_listener = true,
         .doc = "The key under which access tables look up the null sender."});
    add({.name = "unknown_address_tempfail_action", .default_value = "defer_if_permit", .type = Type::Choice, .per_listener = true, .choices = {"defer_if_permit", "defer"},
         .doc = "What reject_unknown_sender_domain / reject_unknown_recipient_domain do when DNS fails temporarily: defer_if_permit keeps looking for a reason to reject and defers only mail that would be accepted; defer answers 450 at once."});
    add({.name = "header_checks", .default_value = "", .type = Type::List, .per_listener = true,
         .doc = "pcre:/path tables applied to each message header (Postfix header_checks(5) syntax): REJECT, DISCARD, HOLD, WARN, INFO, IGNORE, STRIP, DUNNO."});
    add({.name = "reject_code", .default_value = "554", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of the 'reject' restriction."});
    add({.name = "defer_code", .default_value = "450", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of the 'defer' restriction."});
    add({.name = "access_map_reject_code", .default_value = "554", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code when an access table (check_*_access) says REJECT."});
    add({.name = "access_map_defer_code", .default_value = "450", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code when an access table (check_*_access) says DEFER."});
    add({.name = "relay_domains_reject_code", .default_value = "554", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_unauth_destination (Relay access denied)."});
    add({.name = "unknown_address_reject_code", .default_value = "450", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_unknown_sender_domain / reject_unknown_recipient_domain when the domain has no MX, A or AAAA record. 450 (Postfix's default) lets the sender retry after a DNS mishap."});
    add({.name = "unknown_hostname_reject_code", .default_value = "450", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_unknown_helo_hostname."});
    add({.name = "unknown_client_reject_code", .default_value = "450", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_unknown_client_hostname (always 450 when the lookup failed temporarily)."});
    add({.name = "non_fqdn_reject_code", .default_value = "504", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_non_fqdn_helo_hostname, reject_non_fqdn_sender and reject_non_fqdn_recipient."});
    add({.name = "invalid_hostname_reject_code", .default_value = "501", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_invalid_helo_hostname."});
    add({.name = "maps_rbl_reject_code", .default_value = "554", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_rbl_client and the reject_rhsbl_* restrictions."});
    add({.name = "unknown_virtual_mailbox_reject_code", .default_value = "550", .type = Type::Count, .per_listener = true, .min = 400, .max = 599,
         .doc = "Reply code of reject_unlisted_recipient."});

    // --- POP3 server (Dovecot's names where Dovecot has the setting) ---
    add({.name = "login_greeting", .default_value = "Pillarbox ready.", .type = Type::String, .per_listener = true,
         .doc = "Dovecot's name: the text of the POP3 greeting (+OK ...) and, later, IMAP's."});
    add({.name = "pop3_uidl_format", .default_value = "%08Xu%08Xv", .type = Type::String, .per_listener = true,
         .doc = "Dovecot's name and default: the UIDL of a message, from %u (its IMAP UID), %v (the "
                "mailbox's UIDVALIDITY) and %f (its Maildir base file name, Courier-style UIDLs), with "
                "an optional width (with a leading 0: zero padding; without: a cut) and X for lower-case "
                "hex, as in Dovecot. UIDLs come from what the store keeps "
                "(the UID is in the file name), so they survive restarts and index rebuilds; change the "
                "format only to match a previous server's, or clients download everything again."});
    add({.name = "pop3_lock_session", .default_value = "yes", .type = Type::Bool, .per_listener = true,
         .doc = "Dovecot's name: only one POP3 session per account at a time; a second login gets "
                "-ERR [IN-USE] (RFC 2449). Dovecot's default is no; ours is yes, because two sessions "
                "deleting by message number from two snapshots is how mail gets lost."});
    add({.name = "pop3_no_flag_updates", .default_value = "no", .type = Type::Bool, .per_listener = true,
         .doc = "Dovecot's name: when no, messages retrieved with RETR and kept get \\Seen at QUIT, "
                "so an IMAP client shows them as read."});
    add({.name = "pop3_login_delay", .default_value = "0", .type = Type::Time, .per_listener = true,
         .doc = "Minimum time between two POP3 logins to one account (RFC 2449 LOGIN-DELAY, announced "
                "in CAPA); an earlier login gets -ERR [LOGIN-DELAY]. 0: no limit."});
    add({.name = "pop3_max_bad_commands", .default_value = "20", .type = Type::Count, .per_listener = true,
         .min = 1, .max = 100000,
         .doc = "Unknown or malformed POP3 commands a client may send before it is disconnected."});
    add({.name = "imap_max_line_length", .default_value = "64k", .type = Type::Size, .per_listener = true,
         .doc = "Dovecot's name and default: the longest IMAP command line, CRLF included, and the most "
                "a command may hold in memory with its literals (APPEND's message is streamed and "
                "limited by message_size_limit instead). Values under 1k count as 1k."});
    add({.name = "imap_max_bad_commands", .default_value = "20", .type = Type::Count, .per_listener = true,
         .min = 1, .max = 100000,
         .doc = "Unknown or malformed IMAP commands a client may send before it is disconnected."});
    add({.name = "imap_max_nesting", .default_value = "32", .type = Type::Count, .per_listener = true,
         .min = 2, .max = 1000,
         .doc = "How deep parenthesised lists may nest in one IMAP command (SEARCH keys, FETCH items)."});
    add({.name = "imap_max_sequence_ranges", .default_value = "100000", .type = Type::Count, .per_listener = true,
         .min = 16, .max = 10000000,
         .doc = "Ranges a client may list in one IMAP sequence set (1,3,5:7,...)."});
    add({.name = "imap_idle_notify_interval", .default_value = "2m", .type = Type::Time, .per_listener = true,
         .doc = "Dovecot's name and default: while a client IDLEs, a \"* OK Still here\" this often, so that "
                "NAT routers and firewalls keep the connection (0 = never)."});
    add({.name = "mail_max_userip_connections", .default_value = "10", .type = Type::Count, .per_listener = true,
         .min = 1, .max = 100000,
         .doc = "Dovecot's name and default: IMAP connections one account may have open from one client "
                "address; the next login is refused with [LIMIT]."});
    add({.name = "pop3_line_length_limit", .default_value = "1024", .type = Type::Count, .per_listener = true,
         .min = 255, .max = 65536,
         .doc = "Longest POP3 command line accepted, CRLF included (RFC 2449 section 4 asks for at "
                "least 255). SASL responses during AUTH may be up to 12288 octets regardless."});

    // --- domains, recipients and aliases ---
    add({.name = "mydestination", .default_value = "$myhostname, localhost.$mydomain, localhost", .type = Type::List,
         .doc = "Domains delivered to local accounts (Postfix's local domains). Their accounts share one "
                "namespace: bob@$myhostname and bob@localhost reach the same account, and aliases(5) "
                "names (pillarbox aliases import /etc/aliases) apply to all of them. Other hosted "
                "domains are added with `pillarbox domain add` (Postfix's virtual mailbox domains)."});
    add({.name = "recipient_delimiter", .default_value = "+", .type = Type::String,
         .doc = "Characters that start an address extension: bob+lists@example.com delivers to "
                "bob@example.com unless an account or alias exists for the full address. Empty: "
                "no extensions."});
    add({.name = "virtual_alias_recursion_limit", .default_value = "1000", .type = Type::Count, .min = 1, .max = 100000,
         .doc = "How deep alias chains may nest before the recipient is rejected as a loop."});
    add({.name = "virtual_alias_expansion_limit", .default_value = "1000", .type = Type::Count, .min = 1, .max = 1000000,
         .doc = "How many addresses one recipient may expand to through aliases."});

    // --- authentication ---
    add({.name = "auth_backends", .default_value = "builtin", .type = Type::List,
         .doc = "Where logins are checked, in order; the first backend that knows the name decides. "
                "`builtin`: the accounts of `pillarbox user add`. `passwd-file:PATH`: a Dovecot "
                "passwd-file (user:{SCHEME}hash:uid:gid::home::extra), re-read when it changes."});
    add({.name = "auth_mechanisms", .default_value = "plain login scram-sha-256 scram-sha-1", .type = Type::List,
         .doc = "SASL mechanisms offered, for SMTP AUTH, POP3 AUTH, IMAP AUTHENTICATE and the auth "
                "socket: plain, login, cram-md5, scram-sha-1, scram-sha-256, scram-sha-1-plus, "
                "scram-sha-256-plus. cram-md5 is offered only when a backend can hold its secret; "
                "listing it makes `pillarbox user passwd` store a CRAM-MD5 secret, which is "
                "password-equivalent."});
    add({.name = "auth_default_domain", .default_value = "", .type = Type::String,
         .doc = "Appended to login names without a domain, so users may type `bob` for "
                "bob@example.com (Dovecot's auth_default_realm)."});
    add({.name = "disable_plaintext_auth", .default_value = "yes", .type = Type::Bool, .per_listener = true,
         .doc = "Dovecot's name: no PLAIN, LOGIN, POP3 USER/PASS or IMAP LOGIN before TLS; clients are "
                "told to use STARTTLS/STLS first."});
    add({.name = "auth_allow_cleartext_loopback", .default_value = "no", .type = Type::Bool, .per_listener = true,
         .doc = "With disable_plaintext_auth, still allow cleartext logins from 127.0.0.1 and ::1 "
                "(webmail or a local script on the same host). Other 127.0.0.0/8 addresses are not "
                "included: a local proxy or tunnel may forward outside clients from them."});
    add({.name = "auth_rehash", .default_value = "yes", .type = Type::Bool,
         .doc = "On a successful cleartext login with an imported hash (SHA512-CRYPT, SSHA512, ...), "
                "store an argon2id hash and SCRAM keys instead (builtin accounts; a passwd-file is never "
                "rewritten, so its logins compute nothing extra)."});
    add({.name = "auth_argon2_time_cost", .default_value = "3", .type = Type::Count, .min = 1, .max = 100,
         .doc = "argon2id iterations for new password hashes."});
    add({.name = "auth_argon2_memory_cost", .default_value = "64M", .type = Type::Size,
         .doc = "argon2id memory for new password hashes (at least 8K; every concurrent login "
                "needs this much while it is checked)."});
    add({.name = "auth_scram_iterations", .default_value = "4096", .type = Type::Count, .min = 4096, .max = 1000000,
         .doc = "PBKDF2 iterations of the SCRAM keys stored when a password is set (RFC 7677 "
                "minimum: 4096)."});
    add({.name = "auth_failure_delay", .default_value = "2s", .type = Type::Time,
         .doc = "The first failed login from an IP or for an account is answered after this delay; "
                "each further failure doubles it (a repeated identical password doesn't), up to "
                "auth_penalty_max. Later attempts from the same IP or for the same account wait "
                "out the penalty first."});
    add({.name = "auth_penalty_max", .default_value = "15s", .type = Type::Time,
         .doc = "The largest failed-login delay."});
    add({.name = "auth_penalty_queue_limit", .default_value = "3", .type = Type::Count, .min = 0, .max = 1000,
         .doc = "Login attempts from one IP (an IPv6 /64) or for one account take turns, each waiting "
                "the penalty the previous failure set. While a penalty runs, at most this many "
                "attempts wait for it per IP and per account; more get a temporary failure at once "
                "(SMTP 454 4.7.0, POP3 -ERR [SYS/TEMP]), so guesses can't pile up in front of the "
                "real user."});
    add({.name = "auth_cache_size", .default_value = "1M", .type = Type::Size,
         .doc = "Memory for the authentication cache (Dovecot's name; about 256 bytes, i.e. 4096 "
                "logins per megabyte). A successful password check is remembered as a keyed hash "
                "of login and password (never the password), so the next login with the same "
                "password skips argon2id. The account is still looked up at every login: a "
                "password change or a disabled account takes effect at the next login. Only "
                "successes are cached. 0: no cache."});
    add({.name = "auth_cache_ttl", .default_value = "1h", .type = Type::Time,
         .doc = "How long a cached successful login is trusted before the password is checked "
                "in full again."});
    add({.name = "auth_socket_path", .default_value = "", .type = Type::Path,
         .doc = "A unix socket speaking Dovecot's authentication protocol, for an existing Postfix "
                "(`smtpd_sasl_type = dovecot`, `smtpd_sasl_path = private/auth`) during a "
                "migration. Empty: none. Postfix's chroot needs it under "
                "/var/spool/postfix/private/."});
    add({.name = "auth_socket_user", .default_value = "", .type = Type::String,
         .doc = "Owner of auth_socket_path (e.g. postfix). Empty: the user pillarbox runs as."});
    add({.name = "auth_socket_group", .default_value = "", .type = Type::String,
         .doc = "Group of auth_socket_path. Empty: the group pillarbox runs as."});
    add({.name = "auth_socket_mode", .default_value = "0660", .type = Type::String,
         .doc = "Permissions of auth_socket_path, in octal."});

    // --- TLS ---
    add({.name = "tls_cert_file", .default_value = "", .type = Type::Path, .per_listener = true,
         .doc = "PEM certificate chain (server certificate first), like Postfix's smtpd_tls_cert_file "
                "and Dovecot's ssl_cert. Empty: a self-signed ECDSA P-256 certificate for $myhostname "
                "is generated in $data_directory/tls on first start."});
    add({.name = "tls_key_file", .default_value = "$tls_cert_file", .type = Type::Path, .per_listener = true,
         .doc = "PEM private key for tls_cert_file (the same file may hold both)."});
    add({.name = "tls_server_sni_maps", .default_value = "", .type = Type::Path, .per_listener = true,
         .doc = "A file selecting certificates by the name the client asks for (SNI), in Postfix's "
                "format: 'NAME  CHAIN-AND-KEY.pem' or 'NAME  KEY.pem CHAIN.pem' per line; '.example.com' "
                "matches every subdomain. Other names get tls_cert_file."});
    add({.name = "tls_min_version", .default_value = "TLSv1.2", .type = Type::Choice, .per_listener = true,
         .choices = {"TLSv1.2", "TLSv1.3"}, .doc = "Oldest TLS version accepted (TLSv1.2 or TLSv1.3)."});
    add({.name = "tls_ciphers",
         .default_value = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                          "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
         .type = Type::String, .per_listener = true,
         .doc = "TLS 1.2 cipher list (forward-secret AEAD suites only by default). TLS 1.3 suites are "
                "fixed by BoringSSL and all modern."});

    // --- logging ---
    add({.name = "log_file", .default_value = "", .type = Type::Path,
         .doc = "Also append log lines to this file (they always go to stderr)."});
    add({.name = "log_level", .default_value = "info", .type = Type::Choice,
         .choices = {"debug", "info", "warning", "error"}, .doc = "Least severe log lines written."});
    return t;
}

}  // namespace pillarbox::config
