// IMAP command syntax, token by token (see parser.hpp), and the quoting of response values.
#include "protocols/imap/parser.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <limits>

#include <fmt/format.h>

#include "storage/maildir/folder_name.hpp"

namespace pillarbox::imap {

namespace {

namespace maildir = storage::maildir;

constexpr std::uint64_t kMax32 = std::numeric_limits<std::uint32_t>::max();
// RFC 9051 section 9: number64 is an unsigned 63-bit integer.
constexpr std::uint64_t kMax63 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// RFC 9051 section 9: ATOM-CHAR is any CHAR (7-bit, not NUL) except atom-specials.
bool is_atom_char(unsigned char c) {
    if (c == 0 || c >= 0x80 || is_ctl(c)) return false;
    switch (c) {
        case '(': case ')': case '{': case ' ': case '%': case '*': case '"': case '\\': case ']':
            return false;
        default: return true;
    }
}

bool is_astring_char(unsigned char c) { return is_atom_char(c) || c == ']'; }
bool is_tag_char(unsigned char c) { return is_astring_char(c) && c != '+'; }
bool is_list_char(unsigned char c) { return is_astring_char(c) || c == '%' || c == '*'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

std::string to_upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = upper(c);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return upper(x) == upper(y); });
}

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (s.size() - i < n) return 0;
    if (b(1) < lo || b(1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (b(k) < 0x80 || b(k) > 0xbf) return 0;
    return n;
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        std::size_t n = utf8_sequence(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

int month_number(std::string_view name) {
    for (int m = 0; m < 12; ++m)
        if (iequals(name, kMonths[m])) return m + 1;
    return 0;
}

// Exactly `count` digits at s[at], as a number; -1 otherwise.
int fixed_digits(std::string_view s, std::size_t at, std::size_t count) {
    if (at > s.size() || s.size() - at < count) return -1;
    int v = 0;
    for (std::size_t k = 0; k < count; ++k) {
        if (!is_digit(static_cast<unsigned char>(s[at + k]))) return -1;
        v = v * 10 + (s[at + k] - '0');
    }
    return v;
}

bool valid_day(int year, int month, int day) {
    using namespace std::chrono;
    return year_month_day{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                          std::chrono::day{static_cast<unsigned>(day)}}
        .ok();
}

}  // namespace

// ---- SequenceSet, Date ----

std::vector<std::pair<std::uint32_t, std::uint32_t>> SequenceSet::resolve(std::uint32_t star) const {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> out;
    if (star == 0) return out;  // no messages: '*' is nothing, and every number is above it
    for (const auto& r : ranges) {
        std::uint32_t a = r.first == kStar ? star : r.first;
        std::uint32_t b = r.last == kStar ? star : r.last;
        if (a > b) std::swap(a, b);
        if (a > star) continue;
        out.emplace_back(a, std::min(b, star));
    }
    std::sort(out.begin(), out.end());
    std::vector<std::pair<std::uint32_t, std::uint32_t>> merged;
    for (const auto& r : out) {
        // Adjacent ranges merge too (1:3,4:5 is 1:5); 64-bit so that last + 1 can't wrap.
        if (!merged.empty() && static_cast<std::uint64_t>(merged.back().second) + 1 >= r.first)
            merged.back().second = std::max(merged.back().second, r.second);
        else merged.push_back(r);
    }
    return merged;
}

std::int64_t Date::unix_day_start() const {
    using namespace std::chrono;
    sys_days d = year_month_day{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                                std::chrono::day{static_cast<unsigned>(day)}};
    return static_cast<std::int64_t>(d.time_since_epoch().count()) * 86400;
}

// ---- Decoder: basics ----

struct Decoder::Scanned {
    enum class Status { None, Ok, TooBig } status = Status::None;
    std::uint64_t value = 0;
    std::size_t end = 0;
    bool leading_zero = false;
};

Decoder::Decoder(std::string_view text, Limits limits) : text_(text), limits_(limits) {}

bool Decoder::at_end() const { return pos_ >= text_.size(); }
std::size_t Decoder::pos() const { return pos_; }
const std::string& Decoder::error() const { return error_; }
std::string_view Decoder::rest() const { return text_.substr(pos_); }
void Decoder::skip(std::size_t n) { pos_ += std::min(n, text_.size() - pos_); }

void Decoder::fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
}

// Leaves the position where the failed reader started and records why.
bool Decoder::failed_at(std::size_t start, std::string message) {
    pos_ = start;
    fail(std::move(message));
    return false;
}

std::string_view Decoder::run(bool (*accept)(unsigned char), std::size_t from) const {
    std::size_t end = from;
    while (end < text_.size() && accept(static_cast<unsigned char>(text_[end]))) ++end;
    return text_.substr(from, end - from);
}

bool Decoder::peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

bool Decoder::take(char c) {
    if (!peek(c)) {
        if (c == ' ') return failed_at(pos_, "expected a space");
        return failed_at(pos_, fmt::format("expected '{}'", c));
    }
    ++pos_;
    return true;
}

bool Decoder::sp() { return take(' '); }

bool Decoder::peek_word(std::string_view word) const { return iequals(run(is_atom_char, pos_), word); }

bool Decoder::take_word(std::string_view word) {
    if (!peek_word(word)) return failed_at(pos_, fmt::format("expected {}", word));
    pos_ += word.size();
    return true;
}

bool Decoder::nest() {
    if (depth_ >= limits_.max_depth) return failed_at(pos_, "too deeply nested");
    ++depth_;
    return true;
}

void Decoder::unnest() {
    if (depth_ > 0) --depth_;
}

bool Decoder::enter_list() {
    if (!peek('(')) return failed_at(pos_, "expected '('");
    if (!nest()) return false;
    ++pos_;
    return true;
}

bool Decoder::leave_list() {
    if (!take(')')) return false;
    unnest();
    return true;
}

// ---- the head ----

std::optional<CommandHead> Decoder::head() {
    // The client's tag is everything up to the first space; it must all be tag characters,
    // or the reply can't name it and goes untagged.
    std::size_t sp_at = std::min(text_.find(' '), text_.size());
    std::string_view tag = text_.substr(0, sp_at);
    if (tag.empty() || run(is_tag_char, 0).size() != tag.size()) {
        fail(tag.empty() ? "missing tag" : "invalid tag");
        return std::nullopt;
    }
    pos_ = tag.size();
    CommandHead h{std::string(tag), {}};
    if (!peek(' ')) {
        fail("missing command name");
        return h;
    }
    ++pos_;
    std::string name = to_upper(run(is_atom_char, pos_));
    if (name.empty()) {
        fail("missing command name");
        return h;
    }
    pos_ += name.size();
    if (name == "UID") {
        std::string sub = peek(' ') ? to_upper(run(is_atom_char, pos_ + 1)) : std::string();
        static constexpr std::string_view kUidCommands[] = {"FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"};
        if (std::find(std::begin(kUidCommands), std::end(kUidCommands), sub) == std::end(kUidCommands)) {
            fail(sub.empty() ? "UID needs a command" : "UID " + sub + " is not a command");
            return h;
        }
        pos_ += 1 + sub.size();
        name += ' ' + sub;
    }
    h.name = std::move(name);
    return h;
}

// ---- atoms, strings ----

std::optional<std::string> Decoder::atom() {
    std::string_view a = run(is_atom_char, pos_);
    if (a.empty()) {
        failed_at(pos_, "expected an atom");
        return std::nullopt;
    }
    pos_ += a.size();
    return std::string(a);
}

std::optional<std::string> Decoder::string() {
    if (peek('"')) return quoted();
    if (peek('{') || rest().substr(0, 2) == "~{") return literal();
    failed_at(pos_, "expected a string");
    return std::nullopt;
}

// quoted = DQUOTE *QUOTED-CHAR DQUOTE: TEXT-CHAR (no CR, LF, NUL) with only '"' and '\'
// escaped, and (RFC 9051 section 9, QUOTED-CHAR's UTF8-2/3/4) well-formed UTF-8.
std::optional<std::string> Decoder::quoted() {
    std::size_t start = pos_;
    std::string out;
    for (std::size_t i = pos_ + 1; i < text_.size();) {
        auto c = static_cast<unsigned char>(text_[i]);
        if (c == '"') {
            pos_ = i + 1;
            return out;
        }
        if (c == '\\') {
            if (i + 1 < text_.size() && (text_[i + 1] == '"' || text_[i + 1] == '\\')) {
                out += text_[i + 1];
                i += 2;
                continue;
            }
            failed_at(start, "only \\\" and \\\\ may be escaped in a quoted string");
            return std::nullopt;
        }
        if (c == 0 || c == '\r' || c == '\n') {
            failed_at(start, c == 0 ? "NUL in a quoted string" : "CR or LF in a quoted string");
            return std::nullopt;
        }
        std::size_t n = utf8_sequence(text_, i);
        if (n == 0) {
            failed_at(start, "a quoted string is not valid UTF-8");
            return std::nullopt;
        }
        out.append(text_.substr(i, n));
        i += n;
    }
    failed_at(start, "unterminated quoted string");
    return std::nullopt;
}

// literal = "{" number64 ["+"] "}" CRLF *CHAR8, and literal8 with "~" (RFC 3516), inline as
// CommandReader keeps them. NUL is refused in both: literal8 allows it (RFC 3516 section 4.2)
// but only for APPEND's message, which is streamed and never read here.
std::optional<std::string> Decoder::literal() {
    std::size_t start = pos_;
    if (peek('~')) ++pos_;
    ++pos_;  // '{'
    auto n = scan_number(kMax63);
    if (n.status != Scanned::Status::Ok) {
        failed_at(start, n.status == Scanned::Status::TooBig ? "literal too long" : "invalid literal size");
        return std::nullopt;
    }
    pos_ = n.end;
    if (peek('+')) ++pos_;
    if (rest().substr(0, 3) != "}\r\n") {
        failed_at(start, "invalid literal");
        return std::nullopt;
    }
    pos_ += 3;
    if (n.value > text_.size() - pos_) {
        failed_at(start, "literal longer than the command");
        return std::nullopt;
    }
    std::string_view bytes = text_.substr(pos_, static_cast<std::size_t>(n.value));
    if (bytes.find('\0') != std::string_view::npos) {
        failed_at(start, "NUL in a literal");
        return std::nullopt;
    }
    pos_ += bytes.size();
    return std::string(bytes);
}

std::optional<std::string> Decoder::astring() {
    if (peek('"') || peek('{') || rest().substr(0, 2) == "~{") return string();
    std::string_view a = run(is_astring_char, pos_);
    if (a.empty()) {
        failed_at(pos_, "expected an atom or a string");
        return std::nullopt;
    }
    pos_ += a.size();
    return std::string(a);
}

std::optional<std::optional<std::string>> Decoder::nstring() {
    if (peek_word("NIL")) {
        pos_ += 3;
        return std::optional<std::string>();
    }
    if (!peek('"') && !peek('{') && rest().substr(0, 2) != "~{") {
        failed_at(pos_, "expected NIL or a string");
        return std::nullopt;
    }
    auto s = string();
    if (!s) return std::nullopt;
    return std::optional<std::string>(std::move(*s));
}

// ---- numbers, sequence sets ----

Decoder::Scanned Decoder::scan_number(std::uint64_t max) const {
    Scanned s;
    std::string_view digits = run([](unsigned char c) { return is_digit(c); }, pos_);
    if (digits.empty()) return s;
    s.end = pos_ + digits.size();
    s.leading_zero = digits.size() > 1 && digits[0] == '0';
    for (char c : digits) {
        auto d = static_cast<std::uint64_t>(c - '0');
        if (s.value > (max - d) / 10) {
            s.status = Scanned::Status::TooBig;
            return s;
        }
        s.value = s.value * 10 + d;
    }
    s.status = Scanned::Status::Ok;
    return s;
}

// nz-number = digit-nz *DIGIT: no zero, and no leading zero either.
std::optional<std::uint64_t> Decoder::read_number(std::uint64_t max, bool nonzero) {
    auto s = scan_number(max);
    if (s.status == Scanned::Status::None) {
        failed_at(pos_, "expected a number");
        return std::nullopt;
    }
    if (s.status == Scanned::Status::TooBig) {
        failed_at(pos_, "number out of range");
        return std::nullopt;
    }
    if (nonzero && (s.value == 0 || s.leading_zero)) {
        failed_at(pos_, "expected a non-zero number");
        return std::nullopt;
    }
    pos_ = s.end;
    return s.value;
}

std::optional<std::uint32_t> Decoder::number() {
    auto v = read_number(kMax32, false);
    if (!v) return std::nullopt;
    return static_cast<std::uint32_t>(*v);
}

std::optional<std::uint32_t> Decoder::nz_number() {
    auto v = read_number(kMax32, true);
    if (!v) return std::nullopt;
    return static_cast<std::uint32_t>(*v);
}

std::optional<std::uint64_t> Decoder::number64() { return read_number(kMax63, false); }

// seq-number = nz-number / "*", taken without an error of its own: sequence_set says what failed.
std::optional<std::uint32_t> Decoder::seq_number() {
    if (peek('*')) {
        ++pos_;
        return SequenceSet::kStar;
    }
    auto s = scan_number(kMax32);
    if (s.status != Scanned::Status::Ok || s.value == 0 || s.leading_zero) return std::nullopt;
    pos_ = s.end;
    return static_cast<std::uint32_t>(s.value);
}

// sequence-set = (seq-number / seq-range) ["," sequence-set], or "$" alone (RFC 5182 section 4:
// seq-last-command is a sequence-set of its own, not one of its elements).
std::optional<SequenceSet> Decoder::sequence_set() {
    std::size_t start = pos_;
    SequenceSet set;
    if (peek('$')) {
        ++pos_;
        set.saved = true;
        return set;
    }
    for (;;) {
        auto first = seq_number();
        if (!first) {
            failed_at(start, "invalid sequence set");
            return std::nullopt;
        }
        SequenceSet::Range r{*first, *first};
        if (peek(':')) {
            ++pos_;
            auto last = seq_number();
            if (!last) {
                failed_at(start, "invalid sequence set");
                return std::nullopt;
            }
            r.last = *last;
        }
        if (set.ranges.size() >= limits_.max_sequence_ranges) {
            failed_at(start, "too many ranges in a sequence set");
            return std::nullopt;
        }
        set.ranges.push_back(r);
        if (!peek(',')) return set;
        ++pos_;
    }
}

// ---- mailboxes ----

std::optional<std::string> Decoder::mailbox_name(std::string raw, bool utf8) {
    if (utf8) {
        if (!valid_utf8(raw)) {
            fail("mailbox name is not valid UTF-8");
            return std::nullopt;
        }
        return maildir::normalize_mailbox_name(raw, limits_.separator);
    }
    auto decoded = maildir::mutf7_decode(raw);
    if (!decoded) {
        fail("mailbox name is not valid modified UTF-7");
        return std::nullopt;
    }
    return maildir::normalize_mailbox_name(*decoded, limits_.separator);
}

std::optional<std::string> Decoder::mailbox(bool utf8) {
    std::size_t start = pos_;
    auto raw = astring();
    if (!raw) return std::nullopt;
    auto name = mailbox_name(std::move(*raw), utf8);
    if (!name) pos_ = start;
    return name;
}

std::optional<std::string> Decoder::list_mailbox_raw() {
    if (peek('"') || peek('{') || rest().substr(0, 2) == "~{") return string();
    std::string_view a = run(is_list_char, pos_);
    if (a.empty()) {
        failed_at(pos_, "expected a mailbox pattern");
        return std::nullopt;
    }
    pos_ += a.size();
    return std::string(a);
}

std::optional<std::string> Decoder::list_mailbox(bool utf8) {
    std::size_t start = pos_;
    auto raw = list_mailbox_raw();
    if (!raw) return std::nullopt;
    auto name = mailbox_name(std::move(*raw), utf8);
    if (!name) pos_ = start;
    return name;
}

// ---- flags ----

std::optional<std::string> Decoder::flag() {
    std::size_t start = pos_;
    bool system = peek('\\');
    std::string_view a = run(is_atom_char, pos_ + (system ? 1 : 0));
    if (a.empty()) {
        failed_at(start, "expected a flag");
        return std::nullopt;
    }
    if (system && iequals(a, "Recent")) {
        failed_at(start, "\\Recent can't be set by a client");
        return std::nullopt;
    }
    pos_ += a.size() + (system ? 1 : 0);
    return std::string(text_.substr(start, pos_ - start));
}

std::optional<std::vector<std::string>> Decoder::flag_list() {
    std::size_t start = pos_;
    if (!take('(')) return std::nullopt;
    std::vector<std::string> flags;
    if (peek(')')) {
        ++pos_;
        return flags;
    }
    for (;;) {
        auto f = flag();
        if (!f) {
            pos_ = start;
            return std::nullopt;
        }
        flags.push_back(std::move(*f));
        if (peek(')')) break;
        if (!sp()) {
            pos_ = start;
            return std::nullopt;
        }
    }
    ++pos_;
    return flags;
}

// ---- dates ----

// date-day "-" date-month "-" date-year at `at`: the date and where it ends. fixed_day:
// date-day-fixed (SP DIGIT / 2DIGIT, date-time's form); otherwise date-day (1*2DIGIT).
std::optional<std::pair<Date, std::size_t>> Decoder::date_text(std::size_t at, bool fixed_day) const {
    int day;
    if (fixed_day && at < text_.size() && text_[at] == ' ') {
        day = fixed_digits(text_, at + 1, 1);
        at += 2;
    } else if (fixed_digits(text_, at, 2) >= 0) {
        day = fixed_digits(text_, at, 2);
        at += 2;
    } else if (!fixed_day) {
        day = fixed_digits(text_, at, 1);
        at += 1;
    } else return std::nullopt;
    if (day < 0 || text_.size() < at + 9) return std::nullopt;  // "-Mon-yyyy"
    if (text_[at] != '-' || text_[at + 4] != '-') return std::nullopt;
    int month = month_number(text_.substr(at + 1, 3));
    int year = fixed_digits(text_, at + 5, 4);
    if (month == 0 || year < 0 || !valid_day(year, month, day)) return std::nullopt;
    return std::make_pair(Date{year, month, day}, at + 9);
}

std::optional<Date> Decoder::date() {
    bool quoted = peek('"');
    std::size_t at = pos_ + (quoted ? 1 : 0);
    auto d = date_text(at, false);
    if (!d) {
        failed_at(pos_, "invalid date");
        return std::nullopt;
    }
    std::size_t end = d->second;
    if (quoted) {
        if (end >= text_.size() || text_[end] != '"') {
            failed_at(pos_, "invalid date");
            return std::nullopt;
        }
        ++end;
    }
    pos_ = end;
    return d->first;
}

// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
std::optional<std::int64_t> Decoder::date_time() {
    std::size_t start = pos_;
    auto bad = [&] {
        failed_at(start, "invalid date-time");
        return std::nullopt;
    };
    if (!peek('"')) return bad();
    auto d = date_text(pos_ + 1, true);
    if (!d) return bad();
    std::size_t at = d->second;
    // SP hh:mm:ss SP +hhmm DQUOTE: 16 bytes.
    if (text_.size() - at < 16) return bad();
    std::string_view t = text_.substr(at, 16);
    if (t[0] != ' ' || t[3] != ':' || t[6] != ':' || t[9] != ' ' || (t[10] != '+' && t[10] != '-') || t[15] != '"')
        return bad();
    int hour = fixed_digits(t, 1, 2), minute = fixed_digits(t, 4, 2), second = fixed_digits(t, 7, 2);
    int zh = fixed_digits(t, 11, 2), zm = fixed_digits(t, 13, 2);
    // Second 60: a leap second (RFC 5322 section 3.3 allows it in the Date: this mirrors).
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60 || zh < 0 || zm < 0 || zm > 59)
        return bad();
    std::int64_t zone = (zh * 3600 + zm * 60) * (t[10] == '-' ? -1 : 1);
    pos_ = at + 16;
    return d->first.unix_day_start() + hour * 3600 + minute * 60 + second - zone;
}

// ---- responses ----

std::string quote_string(std::string_view value, bool utf8) {
    // Long values go as literals: a client's line limit is for lines, not for what they hold.
    constexpr std::size_t kMaxQuoted = 512;
    bool eight_bit = std::any_of(value.begin(), value.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    bool quotable = value.size() <= kMaxQuoted &&
                    value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos &&
                    (!eight_bit || (utf8 && valid_utf8(value)));
    if (!quotable) return fmt::format("{{{}}}\r\n{}", value.size(), value);
    std::string out = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
    return out;
}

std::string nstring(const std::optional<std::string>& value, bool utf8) {
    return value ? quote_string(*value, utf8) : std::string("NIL");
}

std::string quote_mailbox(std::string_view utf8_name, bool utf8) {
    std::string name(utf8_name);
    if (!utf8) {
        // A name that isn't UTF-8 can't be encoded; it never comes from the store, which keeps
        // valid names only, so it goes as it is rather than not at all.
        if (auto encoded = maildir::mutf7_encode(utf8_name)) name = std::move(*encoded);
    }
    bool atom = !name.empty() && !iequals(name, "NIL") &&
                std::all_of(name.begin(), name.end(), [](char c) { return is_astring_char(static_cast<unsigned char>(c)); });
    return atom ? name : quote_string(name, utf8);
}

std::string format_date_time(std::int64_t unix_seconds) {
    auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    localtime_r(&t, &tm);
    long offset = tm.tm_gmtoff / 60;  // minutes east of UTC
    char sign = offset < 0 ? '-' : '+';
    if (offset < 0) offset = -offset;
    return fmt::format("{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}", tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, sign, offset / 60, offset % 60);
}

}  // namespace pillarbox::imap
