// Header section handling for incoming messages: checks, missing headers, Received:.
#include "protocols/smtp/headers.hpp"

#include <fmt/format.h>

#include <ctime>

#include "server/ascii.hpp"

namespace pillarbox::smtp {

namespace {

// The field name of a header line ("Subject" of "Subject: x"), empty when it isn't one.
std::string_view field_name(std::string_view line) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return {};
    auto name = line.substr(0, colon);
    for (char c : name)
        if (c <= ' ' || c > '~') return {};
    return name;
}

}  // namespace

void HeaderProcessor::check(const std::string& header) {
    auto name = field_name(header);
    if (ascii_iequals(name, "Message-ID")) have_message_id_ = true;
    if (ascii_iequals(name, "Date")) have_date_ = true;
    if (o_.checks && !o_.checks->empty()) {
        auto v = o_.checks->check(header);
        if (!v.problem.empty()) log_.push_back("warning: header_checks: " + v.problem);
        using K = policy::HeaderVerdict::Kind;
        auto line = v.log_line(o_.context);
        if (!line.empty()) log_.push_back(line);
        switch (v.kind) {
        case K::Reject:
            if (reject_.kind != K::Reject) reject_ = v;
            break;
        case K::Discard:
            discard_ = true;
            break;
        case K::Hold:
            hold_ = true;
            break;
        case K::Ignore:
            return;  // dropped from the message
        case K::Warn:
        case K::Info:
        case K::Dunno:
            break;
        }
    }
    out_headers_ += header;
}

std::string HeaderProcessor::release() {
    in_headers_ = false;
    // Split the held header section into logical headers; the first line that is neither a
    // header nor a continuation (the blank separator, or garbage) starts the body.
    std::string current;
    std::size_t pos = 0;
    std::string rest;
    while (pos < held_.size()) {
        auto nl = held_.find('\n', pos);
        std::size_t end = nl == std::string::npos ? held_.size() : nl + 1;
        std::string_view line(held_.data() + pos, end - pos);
        bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
        if (continuation && !current.empty()) {
            current += line;
        } else if (!continuation && !field_name(line).empty()) {
            if (!current.empty()) check(current);
            current = std::string(line);
        } else {
            rest = held_.substr(pos);
            break;
        }
        pos = end;
    }
    if (!current.empty()) check(current);
    // Added headers go first: the held section may end inside a long header line (over
    // header_size_limit), and anything appended there would split it.
    std::string out;
    if (o_.add_missing) {
        if (!have_message_id_ && !o_.message_id.empty()) out += "Message-ID: " + o_.message_id + "\r\n";
        if (!have_date_ && !o_.date.empty()) out += "Date: " + o_.date + "\r\n";
    }
    out += out_headers_;
    out_headers_.clear();
    out += rest;
    held_.clear();
    held_.shrink_to_fit();
    return out;
}

std::string HeaderProcessor::feed(std::string_view data) {
    if (!in_headers_) return std::string(data);
    // Look for the blank line ending the headers, including across feeds.
    std::size_t scan_from = held_.size() >= 3 ? held_.size() - 3 : 0;
    held_.append(data);
    auto end = held_.find("\r\n\r\n", scan_from);
    if (held_.rfind("\r\n", 0) == 0) end = 0;  // no headers at all: the message starts blank
    if (end != std::string::npos) {
        std::string after = held_.substr(end == 0 ? 0 : end + 2);
        held_.resize(end == 0 ? 0 : end + 2);
        std::string out = release();
        return out + after;
    }
    if (held_.size() > o_.header_size_limit) return release();
    return {};
}

std::string HeaderProcessor::finish() {
    if (!in_headers_) return {};
    return release();
}

std::string rfc5322_date() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S %z", &tm);
    return buf;
}

std::string received_protocol(bool esmtp, bool tls, bool authenticated, bool smtputf8) {
    if (!esmtp) return "SMTP";
    // RFC 6531 section 3.7.3: UTF8SMTP, UTF8SMTPA, UTF8SMTPS, UTF8SMTPSA.
    std::string p = smtputf8 ? "UTF8SMTP" : "ESMTP";
    if (tls) p += "S";
    if (authenticated) p += "A";
    return p;
}

std::string received_header(const ReceivedInfo& r) {
    std::string h = fmt::format("Received: from {} ({} [{}])\r\n", r.helo.empty() ? r.client_name : r.helo, r.client_name, r.client_ip);
    if (!r.tls_version.empty()) h += fmt::format("\t(using {} with cipher {})\r\n", r.tls_version, r.tls_cipher);
    if (!r.authenticated_user.empty()) h += fmt::format("\t(Authenticated sender: {})\r\n", r.authenticated_user);
    h += fmt::format("\tby {} (Pillarbox) with {} id {}", r.hostname, r.protocol, r.queue_id);
    if (!r.for_recipient.empty()) h += fmt::format("\r\n\tfor <{}>", r.for_recipient);
    h += fmt::format("; {}\r\n", rfc5322_date());
    return h;
}

}  // namespace pillarbox::smtp
