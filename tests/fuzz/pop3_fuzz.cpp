// libFuzzer target: arbitrary bytes as POP3 command lines (keyword, arguments, numbers), as a
// pop3_uidl_format with its values, and as a stored message encoded for RETR and TOP in chunks
// cut at input-chosen points, checked against a simple model of RFC 1939's encoding.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/pop3/message_stream.hpp"
#include "protocols/pop3/parser.hpp"

namespace {

using namespace pillarbox::pop3;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

bool is_digits(std::string_view s) {
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

void check_number(std::string_view s) {
    auto n = parse_number(s);
    if (!n) {
        // Refused: empty, not all digits, more than 10 digits, or above 2^32-1.
        if (!s.empty() && s.size() <= 10 && is_digits(s)) {
            std::uint64_t v = 0;
            for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
            require(v > 0xFFFFFFFFu);
        }
        return;
    }
    require(!s.empty() && s.size() <= 10 && is_digits(s));
    std::uint64_t v = 0;
    for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
    require(v == *n);
}

void check_line(std::string_view line) {
    check_number(line);
    auto args = split_args(line);
    for (auto a : args) {
        require(!a.empty() && a.find(' ') == std::string_view::npos);
        require(a.data() >= line.data() && a.data() + a.size() <= line.data() + line.size());
        check_number(a);
    }
    auto cmd = parse_command(line);
    if (!cmd) {
        // Refused only for an empty keyword, a long one, or one with other than letters/digits.
        std::string_view verb = line.substr(0, line.find(' '));
        bool ok_verb = !verb.empty() && verb.size() <= 8;
        for (char c : verb) ok_verb &= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        require(!ok_verb);
        return;
    }
    require(!cmd->verb.empty() && cmd->verb.size() <= 8);
    for (char c : cmd->verb) require((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
    // The arguments are the line after the keyword and one space, verbatim.
    if (cmd->verb.size() == line.size()) require(cmd->args.empty());
    else require(line[cmd->verb.size()] == ' ' && cmd->args == line.substr(cmd->verb.size() + 1));
    for (auto a : split_args(cmd->args)) check_number(a);
}

void check_uidl(std::string_view format, std::uint32_t uid, std::uint32_t uidvalidity, std::string_view base) {
    std::string u = format_uidl(format, uid, uidvalidity, base);
    require(u.size() <= 70);
    for (unsigned char c : u) require(c >= 0x21 && c <= 0x7E);
    require(format_uidl(format, uid, uidvalidity, base) == u);
    // A format that passes the check names %u or %f: unless the cut at 70 hides it (a long
    // literal part or a huge width) or a width without 0 cuts the field (Dovecot's "%2u"), the
    // unique-id tells two messages apart.
    bool cuts = false;
    for (std::size_t i = 0; i + 1 < format.size(); ++i)
        if (format[i] == '%' && format[i + 1] >= '1' && format[i + 1] <= '9') cuts = true;
    if (valid_uidl_format(format) && !cuts && uid != 0xFFFFFFFFu) {
        std::string a = format_uidl(format, uid, uidvalidity, "A");
        std::string b = format_uidl(format, uid + 1, uidvalidity, "B");
        if (a.size() < 60 && b.size() < 60) require(a != b);
    }
    std::string def = format_uidl("%08Xu%08Xv", uid, uidvalidity, base);
    require(def.size() == 16);
}

// The model: lines end at LF or CRLF; any other CR is content, except a CR that ends the file,
// which ends the last line; a file not ending in a line ending still ends its last line.
std::vector<std::string_view> lines_of(std::string_view in) {
    std::vector<std::string_view> lines;
    std::size_t i = 0;
    while (i < in.size()) {
        std::size_t nl = in.find('\n', i);
        std::string_view line = in.substr(i, nl == std::string_view::npos ? in.size() - i : nl - i);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        if (nl == std::string_view::npos) break;
        i = nl + 1;
    }
    return lines;
}

// What RETR (no top) or TOP n must send, un-stuffed and without the terminator.
std::string model(std::string_view in, std::optional<std::uint64_t> top) {
    auto lines = lines_of(in);
    std::size_t count = lines.size();
    if (top) {
        std::size_t i = 0;
        while (i < lines.size())
            if (lines[i++].empty()) break;
        count = std::min<std::size_t>(lines.size(), i + *top);
    }
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        out.append(lines[i]);
        out += "\r\n";
    }
    return out;
}

// Reverses the POP3 encoding, trapping on anything RFC 1939 does not allow.
std::string unstuff(std::string_view out) {
    require(out.size() >= 3 && out.substr(out.size() - 3) == ".\r\n");
    std::string_view body = out.substr(0, out.size() - 3);
    std::string result;
    std::size_t i = 0;
    while (i < body.size()) {
        std::size_t e = body.find("\r\n", i);
        require(e != std::string_view::npos);
        std::string_view line = body.substr(i, e - i);
        require(line.find('\n') == std::string_view::npos);
        if (!line.empty() && line[0] == '.') {
            require(line.size() >= 2 && line[1] == '.');
            line.remove_prefix(1);
        }
        result.append(line);
        result += "\r\n";
        i = e + 2;
    }
    return result;
}

struct Split {
    std::uint32_t state;
    std::size_t next(std::size_t max) {
        state = state * 1103515245u + 12345u;
        return (state >> 16) % (max + 1);  // 0 (an empty feed) .. max
    }
};

struct Result {
    std::string out;
    bool done = false;
};

Result encode(std::string_view in, std::optional<std::uint64_t> top, std::uint8_t config) {
    MessageStream s(top);
    Result r;
    if (config == 0) {
        s.feed(in, r.out);
    } else if (config == 1) {
        for (char c : in) s.feed(std::string_view(&c, 1), r.out);
    } else {
        Split split{config};
        std::size_t max = 1 + config % 23;
        for (std::size_t pos = 0; pos < in.size();) {
            std::size_t n = split.next(max);
            s.feed(in.substr(pos, n), r.out);
            pos += n;
        }
    }
    r.done = s.done();
    s.finish(r.out);
    return r;
}

void check_stream(std::string_view in, std::uint8_t config, std::uint8_t top_byte) {
    std::optional<std::uint64_t> tops[] = {std::nullopt, top_byte % 8u, std::uint64_t{top_byte}};
    std::string retr;
    for (auto top : tops) {
        Result whole = encode(in, top, 0);
        require(!whole.done || top);
        for (std::uint8_t c : {std::uint8_t{1}, config, static_cast<std::uint8_t>(config ^ 0x5A)}) {
            if (c == 0) continue;
            Result chunked = encode(in, top, c);
            require(chunked.out == whole.out);
            require(chunked.done == whole.done);
        }
        require(unstuff(whole.out) == model(in, top));
        if (!top) retr = whole.out.substr(0, whole.out.size() - 3);
        else require(retr.compare(0, whole.out.size() - 3, whole.out, 0, whole.out.size() - 3) == 0);
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
    if (size >= 1) {
        // The first byte says how much of the rest is the format; the next bytes are the values
        // and the base name.
        std::string_view rest = text.substr(1);
        std::string_view format = rest.substr(0, data[0] % 40u);
        std::string_view after = rest.substr(format.size());
        std::uint32_t uid = 0, uidvalidity = 0;
        for (std::size_t k = 0; k < 4 && k < after.size(); ++k) uid = uid << 8 | static_cast<std::uint8_t>(after[k]);
        for (std::size_t k = 4; k < 8 && k < after.size(); ++k)
            uidvalidity = uidvalidity << 8 | static_cast<std::uint8_t>(after[k]);
        std::string_view base = after.size() > 8 ? after.substr(8, 100) : std::string_view();
        check_uidl(format, uid, uidvalidity, base);
        check_uidl(text, uid, uidvalidity, base);
        valid_uidl_format(text);
    }
    if (size >= 2) check_stream(text.substr(2), data[0], data[1]);
    check_stream(text, 0x33, 0);
    return 0;
}
