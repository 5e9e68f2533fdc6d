// Dovecot auth-client protocol state machine (see dovecot_protocol.hpp). Behaviour follows
// Dovecot 2.3's auth-client-connection.c / auth-request-handler.c where Postfix can tell.
#include "auth/dovecot_protocol.hpp"
#include "server/ascii.hpp"

#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "auth/sasl/mechanism.hpp"
#include "server/log.hpp"

namespace pillarbox::auth {

namespace {

constexpr std::string_view kService = "auth";

// Dovecot's str_to_uint for ids and pids: decimal digits only, fits in 32 bits.
std::optional<std::uint32_t> parse_u32(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 0xffffffffULL) return std::nullopt;
    return static_cast<std::uint32_t>(v);
}

std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> out;
    for (;;) {
        auto tab = line.find('\t');
        out.push_back(line.substr(0, tab));
        if (tab == std::string_view::npos) break;
        line.remove_prefix(tab + 1);
    }
    return out;
}

// Security properties Postfix filters on (smtpd_sasl_security_options), as Dovecot announces them.
std::string_view mech_flags(std::string_view mech) {
    if (mech == "PLAIN" || mech == "LOGIN") return "\tplaintext";
    if (mech == "CRAM-MD5") return "\tdictionary\tactive";
    if (mech == "DIGEST-MD5") return "\tdictionary\tactive\tmutual-auth";
    if (mech.starts_with("SCRAM-")) return "\tmutual-auth";
    if (mech == "ANONYMOUS") return "\tanonymous";
    return "";
}

// What may be logged of a client line: never the data of AUTH/CONT (passwords).
std::string printable_prefix(std::string_view s, std::size_t max) {
    std::string r;
    for (char c : s.substr(0, max)) r += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > max) r += "...";
    return r;
}

}  // namespace

std::string dovecot_escape(std::string_view value) {
    std::string r;
    r.reserve(value.size());
    for (char c : value) {
        switch (c) {
            case '\0': r += "\001" "0"; break;
            case '\001': r += "\001" "1"; break;
            case '\t': r += "\001" "t"; break;
            case '\r': r += "\001" "r"; break;
            case '\n': r += "\001" "n"; break;
            default: r += c;
        }
    }
    return r;
}

std::string dovecot_unescape(std::string_view value) {
    std::string r;
    r.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] != '\001' || i + 1 == value.size()) {
            r += value[i];
            continue;
        }
        switch (value[++i]) {
            case '0': r += '\0'; break;
            case '1': r += '\001'; break;
            case 't': r += '\t'; break;
            case 'r': r += '\r'; break;
            case 'n': r += '\n'; break;
            default: r += value[i];
        }
    }
    return r;
}

DovecotIdentity DovecotIdentity::make(unsigned long cuid) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium initialisation failed");
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    char hex[sizeof raw * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    DovecotIdentity id;
    id.spid = static_cast<unsigned long>(::getpid());
    id.cuid = cuid;
    id.cookie = hex;
    return id;
}

DovecotProtocol::DovecotProtocol(Authenticator& auth, DovecotIdentity identity, Output out,
                                 DovecotProtocolLimits limits, std::string log_id)
    : auth_(auth), identity_(std::move(identity)), out_(std::move(out)), limits_(limits), log_id_(std::move(log_id)) {}

DovecotProtocol::~DovecotProtocol() { abort(); }

void DovecotProtocol::start() {
    // Announce what a secured client could use: the client (Postfix) filters by its own
    // security options, and each AUTH is checked against that request's own flags, as in Dovecot.
    ClientInfo any;
    any.service = "dovecot-auth";
    any.session_id = log_id_;
    any.secured = true;
    std::string hs = fmt::format("VERSION\t1\t2\n");
    for (const auto& name : auth_.mechanisms(any)) {
        std::string m = ascii_upper(name);
        // Channel binding needs the client's TLS data, which this protocol version cannot carry.
        if (m.ends_with("-PLUS")) continue;
        hs += fmt::format("MECH\t{}{}\n", m, mech_flags(m));
        offered_.push_back(std::move(m));
    }
    hs += fmt::format("SPID\t{}\nCUID\t{}\nCOOKIE\t{}\nDONE\n", identity_.spid, identity_.cuid, identity_.cookie);
    out_(hs);
}

bool DovecotProtocol::feed(std::string_view bytes) {
    if (failed_) return false;
    retired_.clear();
    in_.append(bytes);
    std::size_t pos = 0;
    while (!failed_) {
        auto nl = in_.find('\n', pos);
        if (nl == std::string::npos) break;
        if (nl - pos > limits_.max_line) {
            in_.clear();
            return protocol_error(fmt::format("client sent a line longer than {} bytes", limits_.max_line));
        }
        std::string_view line(in_.data() + pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        pos = nl + 1;
        if (!handle_line(line)) break;
    }
    // Lines may carry passwords: wipe what was handled instead of leaving it in freed memory.
    sodium_memzero(in_.data(), std::min(pos, in_.size()));
    in_.erase(0, std::min(pos, in_.size()));
    if (!failed_ && in_.size() > limits_.max_line) {
        sodium_memzero(in_.data(), in_.size());
        in_.clear();
        return protocol_error(fmt::format("client sent more than {} bytes without a newline", limits_.max_line));
    }
    if (failed_) {
        sodium_memzero(in_.data(), in_.size());
        in_.clear();
    }
    return !failed_;
}

void DovecotProtocol::abort() {
    for (auto& [id, r] : requests_) retired_.push_back(std::move(r.exchange));
    requests_.clear();
    retired_.clear();
}

bool DovecotProtocol::protocol_error(std::string message) {
    failed_ = true;
    error_ = std::move(message);
    log::line(log::Level::Warning, kService, log_id_, "dovecot auth client (pid={}): {}; disconnecting", client_pid_,
              error_);
    return false;
}

void DovecotProtocol::emit(const std::string& line) {
    if (failed_) return;
    out_(line + "\n");
}

bool DovecotProtocol::handle_line(std::string_view line) {
    if (line.find('\0') != std::string_view::npos) return protocol_error("client sent a NUL byte");
    if (!handshake_done_) return handle_handshake(line);
    auto args = split_tabs(line);
    if (args[0] == "AUTH") return handle_auth(args);
    if (args[0] == "CONT") return handle_cont(args);
    if (args[0] == "CANCEL") return handle_cancel(args);
    return protocol_error(fmt::format("unknown command {}", printable_prefix(args[0], 20)));
}

bool DovecotProtocol::handle_handshake(std::string_view line) {
    auto args = split_tabs(line);
    if (!version_ok_) {
        // Only the major version must match; the minor one may be ignored (the spec says so).
        if (args[0] != "VERSION" || args.size() < 2 || parse_u32(args[1]) != 1u)
            return protocol_error(fmt::format("client is not compatible (expected VERSION 1, got {})",
                                              printable_prefix(line, 40)));
        version_ok_ = true;
        return true;
    }
    if (args[0] != "CPID") return protocol_error(fmt::format("unknown handshake command {}", printable_prefix(args[0], 20)));
    auto pid = args.size() == 2 ? parse_u32(args[1]) : std::nullopt;
    if (!pid || *pid == 0) return protocol_error("client sent a bad CPID");
    client_pid_ = *pid;
    handshake_done_ = true;
    log::line(log::Level::Debug, kService, log_id_, "dovecot auth client connected (pid={})", client_pid_);
    return true;
}

bool DovecotProtocol::offered(std::string_view mechanism) const {
    std::string m = ascii_upper(mechanism);
    return std::find(offered_.begin(), offered_.end(), m) != offered_.end();
}

bool DovecotProtocol::handle_auth(const std::vector<std::string_view>& args) {
    // AUTH <id> <mechanism> [name[=value]]... ; resp=<base64> comes last.
    if (args.size() < 3) return protocol_error("broken AUTH request");
    auto id = parse_u32(args[1]);
    if (!id) return protocol_error("broken AUTH request (bad id)");
    std::string_view mechanism = args[2];

    ClientInfo client;
    client.session_id = log_id_;
    std::optional<std::string> initial;
    bool have_service = false;
    for (std::size_t i = 3; i < args.size(); ++i) {
        std::string_view a = args[i];
        auto eq = a.find('=');
        std::string_view name = a.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view{} : a.substr(eq + 1);
        if (name == "resp") {
            // Dovecot refuses anything after resp= so that unfiltered user data can't add fields.
            if (i + 1 != args.size()) return protocol_error("AUTH parameters after resp");
            // An empty value means no initial response (Exim sends it); "=" is an empty one.
            if (!value.empty()) initial = std::string(value);
        } else if (name == "service") {
            client.service = dovecot_unescape(value);
            have_service = true;
        } else if (name == "rip") {
            client.ip = dovecot_unescape(value);
        } else if (name == "session") {
            client.session_id = dovecot_unescape(value);
        } else if (name == "secured") {
            // Postfix sends it for a TLS session, Dovecot's login processes also for localhost.
            client.secured = true;
            if (value == "tls") client.tls = true;
        } else if (name == "transport") {
            if (value == "TLS") client.tls = client.secured = true;
            else if (value == "trusted") client.secured = true;
        }
        // lip, nologin (Postfix only authenticates), valid-client-cert, no-penalty and unknown
        // names need no action here: the spec says unknown ones are ignored.
    }
    if (!have_service || client.service.empty()) return protocol_error("AUTH request without service");
    if (requests_.count(*id)) return protocol_error(fmt::format("client sent a duplicate AUTH id {}", *id));

    if (!offered(mechanism)) {
        send_fail(*id, "", false, "Unsupported authentication mechanism");
        return true;
    }
    if (requests_.size() >= limits_.max_requests && !evict_idle_request()) {
        send_fail(*id, "", true, "Too many authentication requests in progress");
        return true;
    }

    std::uint64_t serial = next_serial_++;
    Request& r = requests_[*id];
    r.serial = serial;
    r.mechanism = ascii_upper(mechanism);
    r.exchange = auth_.begin(r.mechanism, std::move(client));
    // The callback may run before start() returns and retire the exchange; keep it by pointer.
    Exchange* ex = r.exchange.get();
    std::uint32_t rid = *id;
    ex->start(std::move(initial), [this, rid, serial](Exchange::Reply reply) { on_reply(rid, serial, std::move(reply)); });
    return true;
}

bool DovecotProtocol::handle_cont(const std::vector<std::string_view>& args) {
    // CONT <id> <base64>; the data is everything after the second tab.
    if (args.size() < 3) return protocol_error("broken CONT request");
    auto id = parse_u32(args[1]);
    if (!id) return protocol_error("broken CONT request (bad id)");
    std::string data(args[2]);
    for (std::size_t i = 3; i < args.size(); ++i) (data += '\t') += args[i];

    auto it = requests_.find(*id);
    if (it == requests_.end()) {
        // Dovecot's words: the request is gone (finished, cancelled or evicted).
        emit(fmt::format("FAIL\t{}\treason=Authentication request timed out", *id));
        sodium_memzero(data.data(), data.size());
        return true;
    }
    if (!it->second.awaiting_client) {
        sodium_memzero(data.data(), data.size());
        send_fail(*id, "", false, "Unexpected continuation");
        finish(*id);
        return true;
    }
    it->second.awaiting_client = false;
    std::uint64_t serial = it->second.serial;
    Exchange* ex = it->second.exchange.get();
    std::uint32_t rid = *id;
    ex->respond(data, [this, rid, serial](Exchange::Reply reply) { on_reply(rid, serial, std::move(reply)); });
    sodium_memzero(data.data(), data.size());
    return true;
}

bool DovecotProtocol::handle_cancel(const std::vector<std::string_view>& args) {
    auto id = args.size() == 2 ? parse_u32(args[1]) : std::nullopt;
    if (!id) return protocol_error("broken CANCEL request");
    if (requests_.count(*id)) finish(*id);
    return true;
}

bool DovecotProtocol::evict_idle_request() {
    // A client that gave up in mid-exchange (an SMTP client's "*": Postfix then never sends the
    // CONT) leaves requests waiting forever; the oldest such one makes room. Requests the
    // Authenticator is working on are never dropped.
    auto victim = requests_.end();
    for (auto it = requests_.begin(); it != requests_.end(); ++it)
        if (it->second.awaiting_client && (victim == requests_.end() || it->second.serial < victim->second.serial))
            victim = it;
    if (victim == requests_.end()) return false;
    finish(victim->first);
    return true;
}

void DovecotProtocol::on_reply(std::uint32_t id, std::uint64_t serial, Exchange::Reply reply) {
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second.serial != serial) return;
    if (!reply.done) {
        it->second.awaiting_client = true;
        emit(fmt::format("CONT\t{}\t{}", id, reply.challenge));
        return;
    }
    const Result& res = reply.result;
    switch (res.status) {
        case Result::Status::Ok:
            emit(fmt::format("OK\t{}\tuser={}", id, dovecot_escape(res.user)));
            break;
        case Result::Status::Failed:
            send_fail(id, res.login, false, "");
            break;
        case Result::Status::TempFail:
            send_fail(id, res.login, true, "Temporary authentication failure");
            break;
        case Result::Status::Aborted:
            send_fail(id, res.login, false, "Authentication aborted");
            break;
        case Result::Status::Malformed:
            send_fail(id, res.login, false, "Invalid authentication data");
            break;
        case Result::Status::Refused:
            send_fail(id, res.login, false,
                      sasl::is_plaintext(it->second.mechanism)
                          ? "Plaintext authentication disallowed on non-secure (SSL/TLS) connections"
                          : "Unsupported authentication mechanism");
            break;
    }
    finish(id);
}

void DovecotProtocol::send_fail(std::uint32_t id, std::string_view user, bool temp, std::string_view reason) {
    std::string line = fmt::format("FAIL\t{}", id);
    if (!user.empty()) line += "\tuser=" + dovecot_escape(user);
    // "temp" is what Dovecot 2.3 sends and its clients read; 2.4 documents code=temp_fail.
    if (temp) line += "\ttemp\tcode=temp_fail";
    if (!reason.empty()) line += "\treason=" + dovecot_escape(reason);
    emit(line);
}

void DovecotProtocol::finish(std::uint32_t id) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return;
    retired_.push_back(std::move(it->second.exchange));
    requests_.erase(it);
}

}  // namespace pillarbox::auth
