// SEARCH and UID SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4, RFC 4731 ESEARCH, RFC 5182 SEARCHRES).
// Keys are answered from what they need and no more: flags, UIDs, numbers and MODSEQ from the
// session's view; sizes and internal dates from the index rows; header keys from the parse
// cache; BODY and TEXT from the file. Messages are tested in order, in slices, so a search of a
// large mailbox never holds the loop.
#include <asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "protocols/common/message_parser.hpp"
#include "protocols/imap/grammar.hpp"
#include "protocols/imap/imap_session.hpp"
#include "protocols/imap/search_text.hpp"
#include "server/ascii.hpp"
#include "server/log.hpp"

namespace pillarbox::imap {

namespace {

constexpr unsigned kSlice = 2000;       // messages tested before the loop serves others
constexpr unsigned kParseSlice = 256;   // messages whose cached parses are read at once

struct Needs {
    bool rows = false, parse = false, file = false;
};

void needs(const SearchKey& k, Needs& n) {
    using K = SearchKey::Kind;
    switch (k.kind) {
    case K::Larger: case K::Smaller: case K::Before: case K::On: case K::Since: n.rows = true; break;
    // Header keys need only the parse cache (whose read also tells which messages are gone);
    // the SENT* keys fall back on the internal date from the index row.
    case K::Bcc: case K::Cc: case K::From: case K::Subject: case K::To: case K::Header: n.parse = true; break;
    case K::SentBefore: case K::SentOn: case K::SentSince: n.rows = n.parse = true; break;
    case K::Body: case K::Text: n.rows = n.parse = n.file = true; break;
    default: break;
    }
    for (auto& c : k.children) needs(c, n);
}

bool uses_modseq(const SearchKey& k) {
    if (k.kind == SearchKey::Kind::ModSeq) return true;
    for (auto& c : k.children)
        if (uses_modseq(c)) return true;
    return false;
}

std::int64_t day_number(int y, int m, int d) {
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * static_cast<unsigned>(m > 2 ? m - 3 : m + 9) + 2) / 5 + static_cast<unsigned>(d) - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t day_number(const Date& d) { return day_number(d.year, d.month, d.day); }

// The internal date's day in the server's time zone (what INTERNALDATE shows).
std::int64_t local_day(std::int64_t unix_seconds) {
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    localtime_r(&t, &tm);
    return day_number(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

// "1:3,5,7:8" of ascending numbers.
std::string number_set(const std::vector<std::uint32_t>& ns) {
    std::string out;
    for (std::size_t i = 0; i < ns.size();) {
        std::size_t j = i;
        while (j + 1 < ns.size() && ns[j + 1] == ns[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += i == j ? std::to_string(ns[i]) : fmt::format("{}:{}", ns[i], ns[j]);
        i = j + 1;
    }
    return out;
}

}  // namespace

// One SEARCH in progress.
struct SearchRun {
    Tagged t;
    bool uid = false;
    SearchRequest req;
    Needs need;
    std::map<std::uint32_t, storage::MessageInfo> rows;
    std::uint32_t seq = 0;  // the message being tested
    // Header keys: the parse caches of the messages after seq up to cached_until, read in one go
    // (those without one are parsed one by one).
    std::map<std::uint32_t, std::string> cached;  // by UID
    std::uint32_t cached_until = 0;
    std::vector<std::uint32_t> found;  // sequence numbers
    // The current message's data.
    const storage::MessageInfo* row = nullptr;
    std::optional<mime::Message> parsed;  // BODY and TEXT: the whole structure
    mime::Message headers;                // other keys: the header fields only, storage reused
    const mime::Message* msg = nullptr;   // what the current message's tests read: one of those, or none
    std::string file;
    std::optional<std::string> body;  // body_text, made on first need
    bool modseq = false;  // a MODSEQ key: the answer carries the highest MODSEQ found (RFC 7162 3.1.5)
};

bool ImapSession::search_match(const SearchKey& k, SearchRun& r) {
    using K = SearchKey::Kind;
    const auto& m = selected_->at(r.seq);
    auto flag = [&](std::uint32_t bit) { return (m.flags & bit) != 0; };
    auto header = [&](std::string_view name, std::string_view text) {
        if (!r.msg) return false;
        for (auto& h : r.msg->headers)
            if (ascii_iequals(h.name, name) && (text.empty() || contains_text(decode_header_value(h.value), text))) return true;
        return false;
    };
    auto sent_day = [&]() -> std::int64_t {
        // Without a usable Date: field, the internal date stands in (as Dovecot does).
        if (r.msg)
            if (auto* h = mime::find_header(r.msg->headers, "Date"))
                if (auto d = header_date(h->value)) return day_number(*d);
        return local_day(r.row ? r.row->internal_date : 0);
    };
    auto body = [&]() -> const std::string& {
        if (!r.body) r.body = r.msg ? body_text(r.file, *r.msg) : std::string();
        return *r.body;
    };
    switch (k.kind) {
    case K::All: return true;
    case K::And:
        for (auto& c : k.children)
            if (!search_match(c, r)) return false;
        return true;
    case K::Or: return search_match(k.children.at(0), r) || search_match(k.children.at(1), r);
    case K::Not: return !search_match(k.children.at(0), r);
    case K::Answered: return flag(storage::kAnswered);
    case K::Deleted: return flag(storage::kDeleted);
    case K::Draft: return flag(storage::kDraft);
    case K::Flagged: return flag(storage::kFlagged);
    case K::Seen: return flag(storage::kSeen);
    case K::Recent: return flag(SelectedMailbox::kRecent);
    case K::New: return flag(SelectedMailbox::kRecent) && !flag(storage::kSeen);
    case K::Old: return !flag(SelectedMailbox::kRecent);
    case K::Unanswered: return !flag(storage::kAnswered);
    case K::Undeleted: return !flag(storage::kDeleted);
    case K::Undraft: return !flag(storage::kDraft);
    case K::Unflagged: return !flag(storage::kFlagged);
    case K::Unseen: return !flag(storage::kSeen);
    case K::Keyword:
    case K::Unkeyword: {
        bool has = false;
        for (auto& kw : selected_->keywords_of(m)) has = has || ascii_iequals(kw, k.text);
        return k.kind == K::Keyword ? has : !has;
    }
    case K::Bcc: return header("Bcc", k.text);
    case K::Cc: return header("Cc", k.text);
    case K::From: return header("From", k.text);
    case K::Subject: return header("Subject", k.text);
    case K::To: return header("To", k.text);
    case K::Header: return header(k.header, k.text);
    case K::Body: return contains_text(body(), k.text);
    case K::Text: {
        if (!r.msg) return false;
        for (auto& h : r.msg->headers)
            if (contains_text(h.name + ": " + decode_header_value(h.value), k.text)) return true;
        return contains_text(body(), k.text);
    }
    case K::Before: return r.row && local_day(r.row->internal_date) < day_number(k.date);
    case K::On: return r.row && local_day(r.row->internal_date) == day_number(k.date);
    case K::Since: return r.row && local_day(r.row->internal_date) >= day_number(k.date);
    case K::SentBefore: return sent_day() < day_number(k.date);
    case K::SentOn: return sent_day() == day_number(k.date);
    case K::SentSince: return sent_day() >= day_number(k.date);
    case K::Larger: return r.row && r.row->rfc822_size > k.number;
    case K::Smaller: return r.row && r.row->rfc822_size < k.number;
    case K::Uid:
    case K::SequenceSet: {
        const bool by_uid = k.kind == K::Uid;
        if (k.set.saved) return std::find(saved_.begin(), saved_.end(), m.uid) != saved_.end();
        const std::uint32_t n = by_uid ? m.uid : r.seq;
        for (auto& [lo, hi] : k.set.resolve(by_uid ? selected_->max_uid() : selected_->count()))
            if (n >= lo && n <= hi) return true;
        return false;
    }
    case K::ModSeq: return m.modseq >= k.number;
    }
    return false;
}

void ImapSession::cmd_search(Command& c) {
    std::optional<SearchRequest> req;
    if (c.args.sp()) req = parse_search(c.args);
    if (!req || !c.args.at_end()) return bad(c.tag, c.args.error().empty() ? "Invalid search arguments" : c.args.error());
    // RFC 6855 section 3: once UTF8=ACCEPT is enabled every string is UTF-8, and a CHARSET is
    // a conflicting label the server SHOULD refuse with BAD.
    if (!req->charset.empty() && utf8_accept_) return bad(c.tag, "SEARCH CHARSET can't be used after ENABLE UTF8=ACCEPT");
    if (!req->charset.empty() && req->charset != "UTF-8" && req->charset != "US-ASCII")
        return finish(c, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset.");
    auto run = std::make_shared<SearchRun>();
    run->t = Tagged(c);
    run->uid = c.uid;
    run->req = std::move(*req);
    needs(run->req.key, run->need);
    if (uses_modseq(run->req.key)) {
        enable_condstore();
        run->modseq = true;
    }
    search_ = run;
    park();
    if (!run->need.rows || selected_->count() == 0) return search_next();
    // Every message of the view is tested: the rows of its UID span.
    storage::UidRanges span{{selected_->at(1).uid, selected_->max_uid()}};
    services_->store->messages(account(), selected_->info().name, std::move(span),
                               guard_.wrap([this](storage::Outcome<std::vector<storage::MessageInfo>> o) {
        if (!o.ok()) {
            auto t = search_->t;
            search_.reset();
            Resume resume{*this};
            return store_failed(t, o);
        }
        for (auto& m : *o.value) search_->rows.emplace(m.uid, std::move(m));
        search_next();
    }));
}

void ImapSession::search_next() {
    auto& r = *search_;
    unsigned tested = 0;
    for (;;) {
        if (r.need.parse && r.seq >= r.cached_until && r.seq < selected_->count()) return search_cached_parses();
        if (++r.seq > selected_->count()) break;
        const auto& m = selected_->at(r.seq);
        r.row = nullptr;
        r.parsed.reset();
        r.msg = nullptr;
        r.file.clear();
        r.body.reset();
        if (r.need.rows) {
            auto it = r.rows.find(m.uid);
            if (it == r.rows.end()) continue;  // gone since the client was told of it
            r.row = &it->second;
        }
        if (r.need.parse) {
            auto it = r.cached.find(m.uid);
            if (it == r.cached.end()) return search_load();
            // BODY and TEXT walk the MIME parts; every other key reads header fields only.
            if (r.need.file) {
                r.parsed = mime::from_json(it->second);
                if (r.parsed) r.msg = &*r.parsed;
            } else if (mime::headers_from_json(it->second, r.headers)) {
                r.msg = &r.headers;
            }
            r.cached.erase(it);
            if (!r.msg) return search_load();  // an unreadable cache entry: parsed again
            if (r.need.file) return search_read_file();
        }
        if (search_match(r.req.key, r)) r.found.push_back(r.seq);
        // Each slice of parse caches is a store read, which lets the loop serve others between.
        if (++tested >= (r.need.parse ? kParseSlice : kSlice)) {
            asio::post(*services_->loop, guard_.wrap([this] {
                if (search_) search_next();
            }));
            return;
        }
    }
    search_done();
}

// The parse caches of the next slice of messages, in one store read.
void ImapSession::search_cached_parses() {
    auto& r = *search_;
    r.cached_until = std::min<std::uint32_t>(selected_->count(), r.seq + kParseSlice);
    std::vector<std::uint32_t> uids;
    for (std::uint32_t seq = r.seq + 1; seq <= r.cached_until; ++seq) uids.push_back(selected_->at(seq).uid);
    services_->store->cached_parses(account(), selected_->info().name, uid_ranges(std::move(uids)),
                                    guard_.wrap([this](storage::Outcome<storage::Mailboxes::CachedParses> o) {
        auto& r = *search_;
        r.cached.clear();
        // A failed read only costs speed: each message is then parsed on its own.
        if (o.ok())
            for (auto& [uid, json] : *o.value) r.cached.emplace(uid, std::move(json));
        search_next();
    }));
}

// The current message's structure, made (and cached) by the store, then its test.
void ImapSession::search_load() {
    auto& r = *search_;
    const std::uint32_t uid = selected_->at(r.seq).uid;
    services_->store->parsed(account(), selected_->info().name, uid, guard_.wrap([this](storage::Outcome<std::string> o) {
        auto& r = *search_;
        // Gone since the client was told of it (another session expunged it): not tested, as
        // when its index row is missing.
        if (o.error == storage::StoreError::Kind::NotFound) return search_next();
        if (o.ok()) r.parsed = mime::from_json(*o.value);
        if (r.parsed) r.msg = &*r.parsed;
        if (!r.need.file || !r.msg) return search_test();
        search_read_file();
    }));
}

// BODY and TEXT: the current message's file, then its test.
void ImapSession::search_read_file() {
    auto& r = *search_;
    services_->store->read(account(), selected_->info(), r.row->file, 0, static_cast<std::size_t>(r.row->size),
                           guard_.wrap([this](storage::Outcome<std::string> f) {
                               if (f.ok()) search_->file = std::move(*f.value);
                               else search_->msg = nullptr;  // gone (or renamed): no text to match
                               search_test();
                           }));
}

void ImapSession::search_test() {
    auto& r = *search_;
    if (search_match(r.req.key, r)) r.found.push_back(r.seq);
    r.file.clear();
    r.body.reset();
    search_next();
}

void ImapSession::search_done() {
    auto r = std::move(search_);
    Resume resume{*this};
    std::vector<std::uint32_t> ids;
    for (auto seq : r->found) ids.push_back(r->uid ? selected_->at(seq).uid : seq);
    const auto& q = r->req;
    if (q.save) {
        // RFC 5182 2.4: with MIN or MAX (and not ALL or COUNT) only those are saved.
        saved_.clear();
        std::vector<std::uint32_t> uids;
        for (auto seq : r->found) uids.push_back(selected_->at(seq).uid);
        if (!uids.empty() && (q.min || q.max) && !q.all && !q.count) {
            if (q.min) saved_.push_back(uids.front());
            if (q.max && (!q.min || uids.back() != uids.front())) saved_.push_back(uids.back());
        } else {
            saved_ = std::move(uids);
        }
    }
    std::uint64_t highest = 0;
    for (auto seq : r->found) highest = std::max(highest, selected_->at(seq).modseq);
    // RFC 9051 7.3.4: an IMAP4rev2 client always gets ESEARCH; RFC 4731 for RETURN.
    if (q.esearch || rev2_) {
        const bool only_save = q.save && !q.min && !q.max && !q.all && !q.count;
        if (!only_save) {
            const bool all = q.all || (!q.min && !q.max && !q.count && !q.save) || (!q.esearch && rev2_);
            std::string out = fmt::format("* ESEARCH (TAG {}){}", quote_string(r->t.tag, false), r->uid ? " UID" : "");
            if (q.min && !ids.empty()) out += fmt::format(" MIN {}", ids.front());
            if (q.max && !ids.empty()) out += fmt::format(" MAX {}", ids.back());
            if (q.count) out += fmt::format(" COUNT {}", ids.size());
            if (all && !ids.empty()) out += " ALL " + number_set(ids);
            if (r->modseq && !ids.empty()) out += fmt::format(" MODSEQ {}", highest);
            send(out + "\r\n");
        }
    } else {
        std::string out = "* SEARCH";
        for (auto id : ids) out += fmt::format(" {}", id);
        if (r->modseq && !ids.empty()) out += fmt::format(" (MODSEQ {})", highest);
        send(out + "\r\n");
    }
    finish(r->t, "OK", "Search completed.");
}

}  // namespace pillarbox::imap
