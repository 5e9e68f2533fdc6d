// libFuzzer target: arbitrary bytes as SMTP command lines (verbs, MAIL/RCPT paths, parameters,
// xtext) and as DATA / BDAT content split at input-chosen points, checked against a simple model.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/smtp/data_reader.hpp"
#include "protocols/smtp/parser.hpp"

namespace {

using namespace pillarbox::smtp;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

// Whatever parses must print (address()) to something that parses to the same mailbox.
void check_path(const PathResult& r, bool mail, bool utf8) {
    if (!r.path) {
        require(r.error.code >= 500 && r.error.code < 600);
        return;
    }
    const Path& p = *r.path;
    require(!p.null || mail);
    if (p.null) return;
    std::string again = (mail ? "FROM:<" : "TO:<") + p.address() + ">";
    PathResult r2 = mail ? parse_mail_from(again, utf8) : parse_rcpt_to(again, utf8);
    require(r2.path.has_value());
    require(r2.path->local == p.local && r2.path->domain == p.domain && !r2.path->had_source_route);
    require(r2.path->address() == p.address());
}

void check_params(std::string_view rest, bool utf8) {
    std::string err;
    auto params = parse_params(rest, err, utf8);
    if (!params) {
        require(!err.empty());
        return;
    }
    require(params->size() <= kMaxParams);
    MailExtensions all{true, true, true, true, true, true, true};
    for (const auto& ext : {MailExtensions{}, all}) {
        auto m = validate_mail_params(*params, ext);
        if (auto* e = std::get_if<ParamError>(&m)) require(e->code == 501 || e->code == 555);
        auto rc = validate_rcpt_params(*params, ext);
        if (auto* e = std::get_if<ParamError>(&rc)) require(e->code == 501 || e->code == 555);
    }
    for (const auto& p : *params) {
        auto d = xtext_decode(p.value);
        if (d) require(xtext_decode(xtext_encode(*d)) == *d);
    }
}

void check_line(std::string_view line) {
    is_forbidden_command(line);
    auto cmd = parse_command(line);
    if (!cmd) return;
    require(!cmd->verb.empty() && cmd->verb.size() + cmd->args.size() <= line.size());
    for (bool utf8 : {false, true}) {
        auto m = parse_mail_from(cmd->args, utf8);
        check_path(m, true, utf8);
        if (m.path) check_params(m.rest, utf8);
        auto r = parse_rcpt_to(cmd->args, utf8);
        check_path(r, false, utf8);
        if (r.path) check_params(r.rest, utf8);
    }
    check_params(cmd->args, true);
}

// The model: DATA ends at the first CRLF "." CRLF, or at ".\r\n" at the very start, and at
// nothing else. Lines end at CRLF, bare LF or bare CR; a longer line loses its leading ".".
std::size_t model_end(std::string_view s) {
    if (s.substr(0, 3) == ".\r\n") return 3;
    std::size_t k = s.find("\r\n.\r\n");
    return k == std::string_view::npos ? std::string_view::npos : k + 5;
}

std::string model_body(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        std::size_t j = s.find_first_of("\r\n", i);
        if (j == std::string_view::npos) j = s.size();
        std::string_view line = s.substr(i, j - i);
        if (line.size() > 1 && line[0] == '.') line.remove_prefix(1);
        out.append(line);
        out += "\r\n";
        i = j + ((j + 1 < s.size() && s[j] == '\r' && s[j + 1] == '\n') ? 2 : 1);
    }
    return out;
}

bool has_bare(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
    }
    return false;
}

struct Split {
    std::uint32_t state;
    std::size_t next() {
        state = state * 1103515245u + 12345u;
        return 1 + (state >> 16) % 17;
    }
};

void check_data(std::string_view data, std::uint8_t config, std::uint8_t seed) {
    const auto mode = config & 1 ? BareLineEndings::Normalise : BareLineEndings::Reject;
    DataLimits limits;
    limits.max_size = (config >> 1) & 3 ? (config >> 3) * 4u : 0;
    limits.max_line = 1 + (config >> 5) * 8u;

    DataReader reader(limits, mode);
    Split split{seed};
    std::string body;
    std::size_t pos = 0;
    bool done = false;
    while (pos < data.size()) {
        std::string_view piece = data.substr(pos, split.next());
        auto r = reader.feed(piece);
        require(r.consumed <= piece.size());
        require(r.body.size() <= 2 * piece.size() + 2);
        body += r.body;
        pos += r.consumed;
        if (r.done) {
            done = true;
            break;
        }
        require(r.consumed == piece.size());
    }
    require(done == reader.done());

    std::size_t end = model_end(data);
    require(done == (end != std::string_view::npos));
    if (!done) return;
    require(pos == end);
    // The model's body: everything before the final ".\r\n" line.
    std::string want = model_body(data.substr(0, end - 3));
    require(reader.size() == want.size());
    require(reader.too_big() == (limits.max_size != 0 && want.size() > limits.max_size));
    require(reader.bare_line_ending() == has_bare(data.substr(0, end - 3)));
    if (mode == BareLineEndings::Normalise || !reader.bare_line_ending())
        require(body == (reader.too_big() ? want.substr(0, limits.max_size) : want));
    else
        require(want.compare(0, body.size(), body) == 0);  // Reject: stops at the bare ending

    // The same bytes whole give the same result.
    DataReader whole(limits, mode);
    auto w = whole.feed(data);
    require(w.done && w.consumed == end && whole.size() == reader.size() &&
            whole.bare_line_ending() == reader.bare_line_ending() && w.body == body);
}

void check_bdat(std::string_view data, std::uint8_t seed) {
    std::string want;
    bool bare = false;
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
            want += "\r\n";
            ++i;
        } else if (data[i] == '\r' || data[i] == '\n') {
            want += "\r\n";
            bare = true;
        } else {
            want += data[i];
        }
    }
    for (auto mode : {BareLineEndings::Normalise, BareLineEndings::Reject}) {
        LineEndingChecker c(mode);
        Split split{seed};
        std::string out;
        for (std::size_t pos = 0; pos < data.size();) {
            std::string_view piece = data.substr(pos, split.next());
            out += c.feed(piece);
            pos += piece.size();
        }
        out += c.finish();
        require(c.bare_line_ending() == bare);
        require(out == (mode == BareLineEndings::Normalise ? want : std::string(data)));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    for (std::size_t i = 0; i <= text.size();) {
        std::size_t nl = text.find('\n', i);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(i, nl - i);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        check_line(line);
        i = nl + 1;
    }
    if (size >= 2) {
        check_data(text.substr(2), data[0], data[1]);
        check_bdat(text.substr(2), data[1]);
    }
    return 0;
}
