// APPEND (RFC 9051 6.3.12, RFC 4315 APPENDUID, RFC 3516 literal8): the mailbox is checked when
// the message literal is announced (before the "+" of a synchronising one), the message streams
// to the store as it arrives, and the tagged OK comes once it is durable.
#include <fmt/format.h>

#include "protocols/imap/grammar.hpp"
#include "protocols/imap/imap_session.hpp"

namespace pillarbox::imap {

namespace {
// Bytes handed to the store and not yet written, above which the session stops reading.
constexpr std::size_t kAppendBuffer = 256 * 1024;
}  // namespace

void ImapSession::start_append(const CommandHead& head, Decoder& d, const CommandReader::Event& ev) {
    Tagged t{head.tag, head.name};
    std::optional<AppendHead> h;
    bool spaced = d.sp();
    if (spaced && d.at_end()) return keep_argument_literal(t.tag, ev);  // the mailbox name is this literal
    if (spaced) h = parse_append_head(d, utf8());
    if (!h || !d.at_end()) {
        reader_.refuse_literal();
        return bad(t.tag, d.error().empty() ? "Usage: APPEND mailbox [(flags)] [date-time] literal" : d.error());
    }
    if (h->utf8_data && !utf8_accept_) {
        // RFC 6855 section 4: without ENABLE UTF8=ACCEPT the UTF8 data item is refused with BAD.
        reader_.refuse_literal();
        return bad(t.tag, "APPEND UTF8 needs ENABLE UTF8=ACCEPT first");
    }
    if (h->utf8_data && !ev.binary) {
        reader_.refuse_literal();
        return bad(t.tag, "APPEND UTF8 takes a literal8 (~{n})");
    }
    auto flags = split_flags(h->flags);
    if (!flags) {
        reader_.refuse_literal();
        return bad(t.tag, "Invalid system flag");
    }
    if (ev.literal_size == 0) {
        reader_.refuse_literal();
        return finish(t, "NO", "Can't save a zero byte message.");
    }
    if (s_.append_limit && ev.literal_size > s_.append_limit) {
        reader_.refuse_literal();
        // RFC 7889 APPENDLIMIT and RFC 9051 7.1: TOOBIG.
        return finish(t, "NO", fmt::format("[TOOBIG] Message is larger than the limit ({} bytes).", s_.append_limit));
    }
    append_.emplace();
    append_->tagged = t;
    append_->mailbox = h->mailbox;
    append_->keywords = flags->second;
    append_->size = ev.literal_size;
    append_->synchronizing = ev.synchronizing;
    append_->utf8_data = h->utf8_data;
    park();
    services_->store->status(
        account(), h->mailbox,
        guard_.wrap([this, bits = flags->first, date = h->date_time.value_or(0)](storage::Outcome<storage::MailboxStatus> o) {
            Resume resume{*this};
            if (!append_) return;
            if (!o.ok()) {
                reader_.refuse_literal();
                Tagged t = append_->tagged;
                append_.reset();
                // RFC 9051 6.3.12: no such mailbox is NO [TRYCREATE], and it is not created.
                if (o.error == storage::StoreError::Kind::NotFound) return finish(t, "NO", "[TRYCREATE] Mailbox doesn't exist.");
                return store_failed(t, o);
            }
            append_->uidvalidity = o.value->info.uidvalidity;
            append_->target = services_->store->append(account(), append_->mailbox, bits, date);
            append_->checked = append_->streaming = true;
            // The message flows straight to the store as it comes.
            reader_.stream_literal();
            if (append_->synchronizing) send("+ OK\r\n");
        }));
}

void ImapSession::append_piece(std::string_view piece) {
    if (!append_ || !append_->target) return;
    append_->target->body(piece);
    if (append_->target->buffered() > kAppendBuffer) {
        park();
        append_->target->on_drained(guard_.wrap([this] { unpark(); }));
    }
}

void ImapSession::cmd_append(Command& c) {
    if (!append_ || !append_->streaming) return bad(c.tag, "Usage: APPEND mailbox [(flags)] [date-time] literal");
    // What followed the message on its line: nothing, unless the client tried CATENATE-style
    // extensions (its text is the head again, without the literal).
    std::optional<AppendHead> h;
    if (c.args.sp()) h = parse_append_head(c.args, utf8(), true);
    if (!h || !c.args.at_end() || h->utf8_data != append_->utf8_data) {
        append_.reset();
        return bad(c.tag, "Unexpected data after the message");
    }
    park();
    append_->target->commit(guard_.wrap([this, t = Tagged(c)](storage::Outcome<std::uint32_t> o) {
        auto a = std::move(*append_);
        append_.reset();
        if (!o.ok()) {
            Resume resume{*this};
            if (o.error == storage::StoreError::Kind::NotFound) return finish(t, "NO", "[TRYCREATE] Mailbox doesn't exist.");
            return store_failed(t, o);
        }
        const std::string ok = fmt::format("[APPENDUID {} {}] Append completed.", a.uidvalidity, *o.value);
        if (a.keywords.empty()) {
            Resume resume{*this};
            return finish(t, "OK", ok);
        }
        // Keywords after the message is durable: a failure here leaves the message without them.
        services_->store->set_flags(account(), a.mailbox, {*o.value}, storage::FlagOp::Add, 0, a.keywords,
                                    guard_.wrap([this, t, ok](storage::Outcome<std::vector<storage::MessageInfo>>) {
                                        Resume resume{*this};
                                        finish(t, "OK", ok);
                                    }));
    }));
}

}  // namespace pillarbox::imap
