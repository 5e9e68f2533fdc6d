// FETCH and UID FETCH (RFC 9051 6.4.5 and 7.5.2, RFC 3516 BINARY): one message after the other,
// each answer built from the session's view (FLAGS, UID, MODSEQ), the index row (INTERNALDATE,
// RFC822.SIZE), the parse cache (ENVELOPE, BODYSTRUCTURE, section offsets) and the file. Large
// sections stream from the file in pieces while the client keeps up, so memory stays bounded
// and other clients on the loop are served in between.
#include <fmt/format.h>

#include <asio/post.hpp>

#include <algorithm>
#include <map>

#include "protocols/common/message_parser.hpp"
#include "protocols/imap/grammar.hpp"
#include "protocols/imap/imap_session.hpp"
#include "protocols/imap/message_format.hpp"
#include "server/ascii.hpp"
#include "server/log.hpp"

namespace pillarbox::imap {

namespace {

constexpr std::size_t kChunk = 128 * 1024;      // bytes of a file read at a time
constexpr std::size_t kWatermark = 256 * 1024;  // output queued above which the FETCH waits
constexpr unsigned kSlice = 256;                 // messages answered before the loop serves others

FetchAtt att_of(FetchAtt::Kind k) {
    FetchAtt a;
    a.kind = k;
    return a;
}

bool is_content(const FetchAtt& a) {
    using K = FetchAtt::Kind;
    return a.kind == K::Rfc822 || a.kind == K::Rfc822Header || a.kind == K::Rfc822Text || a.kind == K::BodySection ||
           a.kind == K::Binary || a.kind == K::BinarySize;
}

// BODY[], BODY.PEEK[] and RFC822 (with or without a partial range): the whole file, which
// takes no parse to find.
bool whole_message(const FetchAtt& a) {
    using K = FetchAtt::Kind;
    return (a.kind == K::BodySection || a.kind == K::Rfc822) && a.section.part.empty() && a.section.text == Section::Text::None;
}

bool needs_parse(const FetchAtt& a) {
    using K = FetchAtt::Kind;
    return (is_content(a) && !whole_message(a)) || a.kind == K::Envelope || a.kind == K::Body || a.kind == K::BodyStructure;
}

// Fetching these sets \Seen (RFC 9051 6.4.5): the non-PEEK body sections.
bool sets_seen(const FetchAtt& a) {
    using K = FetchAtt::Kind;
    return (a.kind == K::BodySection || a.kind == K::Binary) ? !a.peek : (a.kind == K::Rfc822 || a.kind == K::Rfc822Text);
}

std::string section_label(const Section& s) {
    std::string out;
    for (auto n : s.part) out += (out.empty() ? "" : ".") + std::to_string(n);
    const char* text = nullptr;
    switch (s.text) {
    case Section::Text::None: break;
    case Section::Text::Header: text = "HEADER"; break;
    case Section::Text::HeaderFields: text = "HEADER.FIELDS"; break;
    case Section::Text::HeaderFieldsNot: text = "HEADER.FIELDS.NOT"; break;
    case Section::Text::Text: text = "TEXT"; break;
    case Section::Text::Mime: text = "MIME"; break;
    }
    if (text) out += (out.empty() ? "" : ".") + std::string(text);
    if (!s.fields.empty()) {
        out += " (";
        for (std::size_t i = 0; i < s.fields.size(); ++i) out += (i ? " " : "") + quote_string(ascii_upper(s.fields[i]), false);
        out += ")";
    }
    return out;
}

// The label a fetch-att's data goes out under, e.g. BODY[HEADER.FIELDS (FROM)]<0>.
std::string att_label(const FetchAtt& a) {
    using K = FetchAtt::Kind;
    switch (a.kind) {
    case K::Rfc822: return "RFC822";
    case K::Rfc822Header: return "RFC822.HEADER";
    case K::Rfc822Text: return "RFC822.TEXT";
    case K::BinarySize: return "BINARY.SIZE[" + section_label(a.section) + "]";
    default: break;
    }
    std::string out = (a.kind == K::Binary ? "BINARY[" : "BODY[") + section_label(a.section) + "]";
    if (a.partial) out += fmt::format("<{}>", a.partial->first);
    return out;
}

// RFC822* as the sections they stand for.
Section section_of(const FetchAtt& a) {
    using K = FetchAtt::Kind;
    Section s = a.section;
    if (a.kind == K::Rfc822Header) s.text = Section::Text::Header;
    if (a.kind == K::Rfc822Text) s.text = Section::Text::Text;
    if (a.kind == K::Binary || a.kind == K::BinarySize) s.text = Section::Text::None;
    return s;
}

// LF -> CRLF for a file written with bare LFs (what IMAP sends is always CRLF).
std::string crlf(std::string_view in) {
    std::string out;
    out.reserve(in.size() + in.size() / 32);
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out += '\r';
        out += in[i];
    }
    return out;
}

std::pair<std::uint64_t, std::uint64_t> clip(std::uint64_t size, const std::optional<std::pair<std::uint64_t, std::uint64_t>>& p) {
    if (!p) return {0, size};
    std::uint64_t start = std::min(p->first, size);
    return {start, std::min(p->second, size - start)};
}

}  // namespace

// One FETCH in progress.
struct FetchRun {
    Tagged t;
    bool uid = false;
    FetchRequest req;
    bool need_rows = false, need_parse = false;  // what req's items need, worked out once
    std::vector<std::uint32_t> seqs;
    std::size_t next = 0;  // index into seqs
    unsigned in_slice = 0;
    bool any_gone = false;
    std::map<std::uint32_t, storage::MessageInfo> rows;  // by UID, when rows are needed
    // Parse caches of the messages ahead (seqs[next, cached_until)), read a slice at a time.
    std::map<std::uint32_t, std::string> cached;
    std::size_t cached_until = 0;

    // The message being answered.
    struct Piece {
        std::string text;
        std::uint64_t offset = 0, length = 0;  // a range of the file to stream, when length > 0
    };
    std::uint32_t seq = 0;
    storage::MessageInfo row;
    std::optional<mime::Message> parsed;
    std::vector<Piece> out;
    std::size_t att = 0;
    bool relooked = false;
    // Streaming out.
    std::size_t piece = 0;
    std::uint64_t streamed = 0;
    bool waiting_output = false;
};

void ImapSession::cmd_fetch(Command& c) {
    std::optional<SequenceSet> set;
    std::optional<FetchRequest> req;
    if (c.args.sp()) set = c.args.sequence_set();
    if (set && c.args.sp()) req = parse_fetch(c.args, c.uid);
    if (!req || !c.args.at_end()) return bad(c.tag, c.args.error().empty() ? "Invalid arguments" : c.args.error());
    if (req->vanished && !qresync_) return bad(c.tag, "VANISHED needs QRESYNC enabled");
    auto run = std::make_unique<FetchRun>();
    run->t = Tagged(c);
    run->uid = c.uid;
    run->req = std::move(*req);
    run->seqs = resolve(*set, c.uid);
    const bool modseq_asked = std::any_of(run->req.atts.begin(), run->req.atts.end(), [](const FetchAtt& a) { return a.kind == FetchAtt::Kind::ModSeq; });
    if (run->req.changed_since || modseq_asked) enable_condstore();
    if (run->req.changed_since) {
        // RFC 7162 3.1.4.1: only the messages changed since, and their MODSEQ along.
        std::erase_if(run->seqs, [&](std::uint32_t seq) { return selected_->at(seq).modseq <= *run->req.changed_since; });
        if (!modseq_asked) run->req.atts.push_back(att_of(FetchAtt::Kind::ModSeq));
    }
    if (c.uid && std::none_of(run->req.atts.begin(), run->req.atts.end(), [](const FetchAtt& a) { return a.kind == FetchAtt::Kind::Uid; }))
        run->req.atts.insert(run->req.atts.begin(), att_of(FetchAtt::Kind::Uid));
    const bool vanished = run->req.vanished;
    const std::uint64_t since = run->req.changed_since.value_or(0);
    fetch_ = std::move(run);
    park();
    if (!vanished) return fetch_prepare();
    // RFC 7162 3.2.6: the UIDs of the set expunged since, as VANISHED (EARLIER), first.
    services_->store->expunged_since(account(), selected_->info().name, since,
                                     guard_.wrap([this, set = *set](storage::Outcome<std::vector<std::uint32_t>> o) {
                                         std::vector<std::uint32_t> gone;
                                         if (o.ok()) {
                                             auto ranges = set.resolve(std::max(selected_->max_uid(), selected_->info().uidnext - 1));
                                             for (auto u : *o.value)
                                                 for (auto& [lo, hi] : ranges)
                                                     if (u >= lo && u <= hi) gone.push_back(u);
                                         }
                                         if (!gone.empty()) send(fmt::format("* VANISHED (EARLIER) {}\r\n", uid_set(gone)));
                                         fetch_prepare();
                                     }));
}

// \Seen first (when a non-PEEK section is asked for), then the index rows, then the messages.
void ImapSession::fetch_prepare() {
    auto& r = *fetch_;
    bool seen = !selected_->read_only() && std::any_of(r.req.atts.begin(), r.req.atts.end(), sets_seen);
    r.need_rows = std::any_of(r.req.atts.begin(), r.req.atts.end(), [](const FetchAtt& a) {
        return is_content(a) || a.kind == FetchAtt::Kind::InternalDate || a.kind == FetchAtt::Kind::Rfc822Size;
    });
    r.need_parse = std::any_of(r.req.atts.begin(), r.req.atts.end(), needs_parse);
    const bool rows = r.need_rows;
    if (seen) {
        std::vector<std::uint32_t> unseen;
        for (auto s : r.seqs)
            if (!(selected_->at(s).flags & (storage::kSeen | SelectedMailbox::kExpunged))) unseen.push_back(selected_->at(s).uid);
        if (!unseen.empty()) {
            // Asked for their flags in the answer: FLAGS goes with each message whose \Seen changes.
            bool flags_asked = std::any_of(r.req.atts.begin(), r.req.atts.end(), [](const FetchAtt& a) { return a.kind == FetchAtt::Kind::Flags; });
            if (!flags_asked) r.req.atts.push_back(att_of(FetchAtt::Kind::Flags));
            services_->store->set_flags(account(), selected_->info().name, unseen, storage::FlagOp::Add, storage::kSeen, {},
                                        guard_.wrap([this, rows](storage::Outcome<std::vector<storage::MessageInfo>> o) {
                                            if (!o.ok())
                                                log::line(log::Level::Warning, "imap", info_.id, "user=<{}> setting \\Seen failed: {}",
                                                          account_, o.reason);
                                            fetch_rows(rows);
                                        }));
            return;
        }
    }
    fetch_rows(rows);
}

void ImapSession::fetch_rows(bool needed) {
    if (!needed || fetch_->seqs.empty()) return fetch_next();
    // Only the rows of the messages asked for: a FETCH of a few messages in a large mailbox costs
    // a few index lookups.
    std::vector<std::uint32_t> uids;
    uids.reserve(fetch_->seqs.size());
    for (auto seq : fetch_->seqs) uids.push_back(selected_->at(seq).uid);
    services_->store->messages(account(), selected_->info().name, uid_ranges(std::move(uids)),
                               guard_.wrap([this](storage::Outcome<std::vector<storage::MessageInfo>> o) {
        if (!o.ok()) {
            auto t = fetch_->t;
            fetch_.reset();
            Resume resume{*this};
            return store_failed(t, o);
        }
        for (auto& m : *o.value) fetch_->rows.emplace(m.uid, std::move(m));
        fetch_next();
    }));
}

void ImapSession::fetch_cached_parses() {
    auto& r = *fetch_;
    std::size_t end = std::min(r.seqs.size(), r.next + kSlice);
    std::vector<std::uint32_t> uids;
    for (std::size_t i = r.next; i < end; ++i) uids.push_back(selected_->at(r.seqs[i]).uid);
    r.cached_until = end;
    services_->store->cached_parses(account(), selected_->info().name, uid_ranges(std::move(uids)),
                                    guard_.wrap([this](storage::Outcome<storage::Mailboxes::CachedParses> o) {
        auto& r = *fetch_;
        r.cached.clear();
        // A failed read only costs speed: each message is then looked up on its own.
        if (o.ok())
            for (auto& [uid, json] : *o.value) r.cached.emplace(uid, std::move(json));
        fetch_next();
    }));
}

void ImapSession::fetch_next() {
    auto& r = *fetch_;
    while (r.next < r.seqs.size()) {
        if (++r.in_slice > kSlice || io_.output_queued() > kWatermark) {
            // Let the loop serve others (and the client read) before the next slice.
            r.in_slice = 0;
            if (io_.output_queued() > kWatermark) {
                r.waiting_output = true;
                return;
            }
            asio::post(*services_->loop, guard_.wrap([this] {
                if (fetch_) fetch_next();
            }));
            return;
        }
        if (r.need_parse && r.next >= r.cached_until) return fetch_cached_parses();
        r.seq = r.seqs[r.next++];
        const auto& m = selected_->at(r.seq);
        if (m.flags & SelectedMailbox::kExpunged) {
            r.any_gone = true;
            continue;
        }
        if (r.need_rows) {
            auto it = r.rows.find(m.uid);
            if (it == r.rows.end()) {
                r.any_gone = true;
                continue;
            }
            r.row = it->second;
        }
        r.parsed.reset();
        r.out.clear();
        r.att = 0;
        r.piece = 0;
        r.streamed = 0;
        r.relooked = false;
        r.out.push_back({fmt::format("* {} FETCH (", r.seq)});
        if (r.need_parse) {
            if (auto it = r.cached.find(m.uid); it != r.cached.end()) {
                r.parsed = mime::from_json(it->second);
                r.cached.erase(it);
                if (r.parsed) {
                    fetch_atts();
                    return;
                }
            }
            // Not parsed yet: made from the file now (and kept in the index).
            services_->store->parsed(account(), selected_->info().name, m.uid, guard_.wrap([this](storage::Outcome<std::string> o) {
                auto& r = *fetch_;
                if (o.ok()) r.parsed = mime::from_json(*o.value);
                if (!r.parsed) {
                    // Gone since (expunged by another session), or a cache that can't be read.
                    if (o.error != storage::StoreError::Kind::NotFound)
                        log::line(log::Level::Warning, "imap", info_.id, "user=<{}> no structure for UID {}: {}", account_,
                                  selected_->at(r.seq).uid, o.reason);
                    r.any_gone = true;
                    return fetch_next();
                }
                fetch_atts();
            }));
            return;
        }
        fetch_atts();
        return;
    }
    // Every message answered.
    auto t = fetch_->t;
    bool gone = fetch_->any_gone;
    fetch_.reset();
    Resume resume{*this};
    if (gone) finish(t, "NO", "[EXPUNGEISSUED] Some of the requested messages no longer exist.");
    else finish(t, "OK", "Fetch completed.");
}

// The data items of the current message, in the order asked; a section whose bytes must be
// read first (a converted or decoded one) waits for its read, then the rest goes on.
void ImapSession::fetch_atts() {
    auto& r = *fetch_;
    const auto& m = selected_->at(r.seq);
    using K = FetchAtt::Kind;
    for (; r.att < r.req.atts.size(); ++r.att) {
        const FetchAtt& a = r.req.atts[r.att];
        std::string sep = r.att ? " " : "";
        auto text = [&](std::string s) { r.out.push_back({sep + s}); };
        switch (a.kind) {
        case K::Uid: text(fmt::format("UID {}", m.uid)); continue;
        case K::Flags:
            text(selected_->flags_item(m, rev2_));
            selected_->told_flags(m.uid);
            continue;
        case K::ModSeq: text(fmt::format("MODSEQ ({})", m.modseq)); continue;
        case K::InternalDate: text(fmt::format("INTERNALDATE \"{}\"", format_date_time(r.row.internal_date))); continue;
        case K::Rfc822Size: text(fmt::format("RFC822.SIZE {}", r.row.rfc822_size)); continue;
        case K::Envelope: text("ENVELOPE " + format_envelope(r.parsed->envelope, utf8())); continue;
        case K::Body: text("BODY " + format_body_structure(*r.parsed, false, utf8())); continue;
        case K::BodyStructure: text("BODYSTRUCTURE " + format_body_structure(*r.parsed, true, utf8())); continue;
        default: break;
        }
        // A section.
        const Section s = section_of(a);
        std::optional<SectionContent> content;
        if (whole_message(a)) content = SectionContent{{{0, r.row.size, {}}}};
        else content = locate_section(*r.parsed, s);
        const bool binary = a.kind == K::Binary || a.kind == K::BinarySize;
        if (!content) {
            // RFC 9051 6.4.5: a part that doesn't exist is empty; BINARY of it is NIL? No: "".
            text(att_label(a) + (a.kind == K::BinarySize ? " 0" : " \"\""));
            continue;
        }
        const bool plain_file = r.row.size == r.row.rfc822_size;  // CRLF on disk: offsets are the client's
        if (!binary && plain_file && content->pieces.size() == 1 && content->pieces[0].size > 0) {
            auto [start, len] = clip(content->pieces[0].size, a.partial);
            text(fmt::format("{} {{{}}}\r\n", att_label(a), len));
            if (len) r.out.push_back({"", content->pieces[0].offset + start, len});
            continue;
        }
        // Read it whole (small pieces, or a file with bare LFs to convert, or BINARY to decode).
        fetch_read_section(a, *content, sep);
        return;
    }
    r.out.push_back({")\r\n"});
    fetch_stream();
}

void ImapSession::fetch_read_section(const FetchAtt& a, const SectionContent& content, const std::string& sep) {
    auto bytes = std::make_shared<std::string>();
    auto pieces = std::make_shared<std::vector<SectionContent::Piece>>(content.pieces);
    // The step holds itself only weakly; a read in flight holds it strongly, so it lives as long
    // as there is a next piece to read and no longer (a strong self-reference would leak it).
    auto step = std::make_shared<std::function<void(std::size_t)>>();
    std::weak_ptr<std::function<void(std::size_t)>> weak_step = step;
    *step = [this, a, sep, bytes, pieces, weak_step](std::size_t i) {
        auto& r = *fetch_;
        while (i < pieces->size() && (*pieces)[i].size == 0) *bytes += (*pieces)[i++].bytes;
        if (i == pieces->size()) {
            std::string data = r.row.size == r.row.rfc822_size ? std::move(*bytes) : crlf(*bytes);
            bool literal8 = false;
            if (a.kind == FetchAtt::Kind::Binary || a.kind == FetchAtt::Kind::BinarySize) {
                const mime::Part* part = a.section.part.empty() ? &r.parsed->body : mime::find_part(*r.parsed, a.section.part);
                auto decoded = decode_part(data, part ? part->encoding : "7bit");
                if (!decoded) {
                    // RFC 3516 section 4.3: an encoding the server can't undo.
                    auto t = r.t;
                    fetch_.reset();
                    Resume resume{*this};
                    return finish(t, "NO", "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding.");
                }
                data = std::move(*decoded);
                literal8 = data.find('\0') != std::string::npos;
            }
            if (a.kind == FetchAtt::Kind::BinarySize) {
                r.out.push_back({sep + fmt::format("{} {}", att_label(a), data.size())});
            } else {
                auto [start, len] = clip(data.size(), a.partial);
                r.out.push_back({sep + fmt::format("{} {}{{{}}}\r\n", att_label(a), literal8 ? "~" : "", len) + data.substr(start, len)});
            }
            ++r.att;
            return fetch_atts();
        }
        const auto& p = (*pieces)[i];
        services_->store->read(account(), selected_->info(), r.row.file, p.offset, static_cast<std::size_t>(p.size),
                               guard_.wrap([this, i, bytes, step = weak_step.lock()](storage::Outcome<std::string> o) {
                                   if (!o.ok()) return fetch_lost(o.reason);
                                   *bytes += *o.value;
                                   (*step)(i + 1);
                               }));
    };
    (*step)(0);
}

// The current message's file is gone (expunged, or renamed by a flag change): look it up once
// more, else leave the message out.
void ImapSession::fetch_lost(const std::string& why) {
    auto& r = *fetch_;
    if (r.relooked) {
        log::line(log::Level::Info, "imap", info_.id, "user=<{}> FETCH of UID {} skipped: {}", account_, r.row.uid, why);
        r.any_gone = true;
        // What was already sent of this message can't be taken back: end the connection.
        if (r.piece > 0) {
            send("\r\n* BYE Message vanished during FETCH\r\n");
            io_.close();
            state_ = State::Closed;
            fetch_.reset();
            return;
        }
        return fetch_next();
    }
    r.relooked = true;
    services_->store->message(account(), selected_->info().name, r.row.uid, guard_.wrap([this, why](storage::Outcome<std::optional<storage::MessageInfo>> o) {
        auto& r = *fetch_;
        if (!o.ok() || !*o.value) return fetch_lost(why);
        r.row.file = (*o.value)->file;
        if (r.piece > 0 || r.att >= r.req.atts.size()) return fetch_stream();
        fetch_atts();
    }));
}

// Sends the current message's answer: texts at once, file ranges a chunk at a time while the
// client keeps up.
void ImapSession::fetch_stream() {
    auto& r = *fetch_;
    while (r.piece < r.out.size()) {
        auto& p = r.out[r.piece];
        if (p.length == 0) {
            send(p.text);
            ++r.piece;
            continue;
        }
        if (io_.output_queued() > kWatermark) {
            r.waiting_output = true;
            return;
        }
        const std::uint64_t want = std::min<std::uint64_t>(kChunk, p.length - r.streamed);
        services_->store->read(account(), selected_->info(), r.row.file, p.offset + r.streamed, static_cast<std::size_t>(want),
                               guard_.wrap([this, want](storage::Outcome<std::string> o) {
                                   auto& r = *fetch_;
                                   if (!o.ok() || o.value->size() != want) {
                                       // Announced a size already: a short read can't be mended.
                                       if (!o.ok() && r.streamed == 0 && o.error == storage::StoreError::Kind::NotFound)
                                           return fetch_lost(o.reason);
                                       send("\r\n* BYE Message file changed during FETCH\r\n");
                                       io_.close();
                                       state_ = State::Closed;
                                       fetch_.reset();
                                       return;
                                   }
                                   send(*o.value);
                                   r.streamed += want;
                                   if (r.streamed == r.out[r.piece].length) {
                                       ++r.piece;
                                       r.streamed = 0;
                                   }
                                   fetch_stream();
                               }));
        return;
    }
    fetch_next();
}

void ImapSession::on_output_written() {
    if (!fetch_ || !fetch_->waiting_output || io_.output_queued() > kWatermark / 2) return;
    fetch_->waiting_output = false;
    if (fetch_->piece < fetch_->out.size() && fetch_->att >= fetch_->req.atts.size()) fetch_stream();
    else fetch_next();
}

}  // namespace pillarbox::imap
