// DATA (RFC 5321 4.1.1.4) and BDAT (RFC 3030): the message in flight, through the header
// checks into the delivery dispatcher, and the one reply once every copy is durable.
#include "protocols/smtp/smtp_session.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "server/ascii.hpp"
#include "server/log.hpp"

namespace pillarbox::smtp {

// The dispatcher for this message: local recipients to their mailboxes, the rest to the
// outbound queue (or all of it to the hold queue), with our Received: line first.
bool SmtpSession::open_delivery() {
    auto& msg = tx_->message.emplace();
    delivery::Message m;
    m.queue_id = tx_->queue_id;
    m.service = "smtpd";
    m.envelope = envelope();
    m.hold = tx_->hold;
    m.arrived = tx_->arrived;
    for (auto& r : tx_->recipients) {
        delivery::Recipient d;
        d.address = r.address;
        d.dsn.notify = r.params.notify;
        d.dsn.orcpt = r.params.orcpt.empty() ? std::string() : r.params.orcpt_type + ";" + r.params.orcpt;
        d.accounts = r.accounts;
        d.remote = r.remote;
        m.recipients.push_back(std::move(d));
    }
    msg.dispatch = delivery::Dispatcher::create({services_->loop, services_->store, services_->queue}, std::move(m));
    if (!msg.dispatch->open()) {
        tx_->message.reset();
        return false;
    }
    HeaderProcessor::Options ho;
    ho.header_size_limit = s_.header_size_limit;
    ho.checks = &policy_->header_checks;
    ho.add_missing = !sasl_user_.empty() || mynetworks_;
    ho.message_id = fmt::format("<{}.{}@{}>", tx_->queue_id,
                                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count(),
                                s_.hostname);
    ho.date = rfc5322_date();
    ho.context = policy_context("END-OF-MESSAGE");
    if (tx_->recipients.size() == 1) ho.context.recipient = tx_->recipients.front().address;
    msg.headers = std::make_unique<HeaderProcessor>(std::move(ho));
    ReceivedInfo ri;
    ri.helo = helo_name_.value_or("");
    ri.client_name = client_name_;
    ri.client_ip = info_.peer_ip;
    if (tls_active()) {
        ri.tls_version = io_.info().tls_version;
        ri.tls_cipher = io_.info().tls_cipher;
    }
    if (s_.sasl_authenticated_header) ri.authenticated_user = sasl_user_;
    ri.hostname = s_.hostname;
    ri.protocol = received_protocol(esmtp_, tls_active(), !sasl_user_.empty(), tx_->params.smtputf8);
    ri.queue_id = tx_->queue_id;
    if (tx_->recipients.size() == 1) ri.for_recipient = tx_->recipients.front().address;
    msg.received = received_header(ri);
    deliver_bytes(msg.received);
    return true;
}

// The transaction's envelope without recipients, for the queue.
storage::queue::Envelope SmtpSession::envelope() const {
    storage::queue::Envelope env;
    env.sender = tx_->sender.null ? std::string() : tx_->sender.address();
    env.ret = tx_->params.ret;
    env.envid = tx_->params.envid;
    env.smtputf8 = tx_->params.smtputf8;
    env.eightbit = tx_->params.body != MailParams::Body::SevenBit;
    env.requiretls = tx_->params.requiretls;
    env.client_ip = info_.peer_ip;
    env.helo = helo_name_.value_or("");
    env.sasl_user = sasl_user_;
    return env;
}

void SmtpSession::deliver_bytes(std::string_view bytes) {
    if (bytes.empty() || !tx_ || !tx_->message) return;
    auto& msg = *tx_->message;
    if (!msg.dispatch->held() && !msg.hold_failed && msg.headers && msg.headers->hold()) {
        // header_checks said HOLD. The header section is held until all of it was checked, so
        // only our Received: line went out so far: start over into the hold queue.
        if (msg.dispatch->hold_now()) msg.dispatch->body(msg.received);
        else msg.hold_failed = true;
    }
    if (msg.hold_failed) return;
    msg.dispatch->body(bytes);
}

void SmtpSession::check_backpressure() {
    if (!tx_ || !tx_->message || tx_->message->dispatch->buffered() <= s_.body_buffer) return;
    paused_ = true;
    tx_->message->dispatch->on_drained(guard_.wrap([this] {
        paused_ = false;
        io_.resume_input();
    }));
}

void SmtpSession::cmd_data(const std::string& args) {
    // Without a transaction the command table answered "need RCPT command" already.
    if (!args.empty()) {
        error_reply(501, "5.5.4", "Syntax: DATA");
        return;
    }
    if (tx_->bdat_used) {
        error_reply(503, "5.5.1", "Error: DATA after BDAT");
        return;
    }
    if (tx_->recipients.empty()) {
        error_reply(554, "5.5.1", "Error: no valid recipients");
        return;
    }
    if (!open_delivery()) {
        reply(451, "4.3.0", "Error: queue file write error");
        reset_transaction();
        return;
    }
    DataLimits lim;
    lim.max_size = s_.message_size_limit;
    tx_->message->data_reader = std::make_unique<DataReader>(lim, s_.bare);
    state_ = State::Data;
    reply(354, "", "End data with <CR><LF>.<CR><LF>");
}

std::size_t SmtpSession::on_data_input(std::string_view data) {
    auto& msg = *tx_->message;
    auto r = msg.data_reader->feed(data);
    if (!r.body.empty() && !msg.data_reader->too_big()) deliver_bytes(msg.headers->feed(r.body));
    if (r.done) {
        std::optional<Reply> refusal;
        msg.size = msg.data_reader->size();
        if (msg.data_reader->too_big()) refusal = Reply{552, "5.3.4", "Error: message file too big"};
        else if (msg.data_reader->bare_line_ending() && s_.bare == BareLineEndings::Reject)
            refusal = Reply::parse(bare_line_ending_reply(s_.hostname));
        msg.data_reader.reset();
        finish_message(refusal);
    } else {
        check_backpressure();
    }
    return r.consumed;
}

void SmtpSession::cmd_bdat(const std::string& args) {
    // RFC 3030 2: "BDAT" SP chunk-size [ SP end-marker ]; the chunk follows at once.
    std::string size_text = args.substr(0, args.find(' '));
    std::string rest = args.size() > size_text.size() ? args.substr(size_text.size() + 1) : std::string();
    bool ok = !size_text.empty() && size_text.size() <= 18 && std::all_of(size_text.begin(), size_text.end(), [](char c) { return c >= '0' && c <= '9'; });
    bool last = ascii_iequals(rest, "LAST");
    if (!ok || (!rest.empty() && !last)) {
        // Without a valid size we can't know where the chunk ends: the connection can't go on.
        close_after(Reply{501, "5.5.4", "Syntax: BDAT chunk-size [LAST]"});
        return;
    }
    bdat_remaining_ = std::stoull(size_text);
    bdat_last_ = last;
    state_ = State::Bdat;
    if (!tx_ || tx_->recipients.empty() || bdat_failed_) {
        // The chunk is read and thrown away, then refused (RFC 3030 2).
        bdat_failed_ = true;
        if (!tx_) bdat_refusal_ = Reply{503, "5.5.1", "Error: need RCPT command"};
        else if (tx_->recipients.empty()) bdat_refusal_ = Reply{554, "5.5.1", "Error: no valid recipients"};
        else bdat_refusal_ = Reply{503, "5.5.1", "Error: previous BDAT failed"};
        if (bdat_remaining_ == 0) on_bdat_input({});
        return;
    }
    if (!tx_->bdat_used) {
        tx_->bdat_used = true;
        if (!open_delivery()) {
            bdat_failed_ = true;
            bdat_refusal_ = Reply{451, "4.3.0", "Error: queue file write error"};
        } else {
            tx_->message->bdat_checker = std::make_unique<LineEndingChecker>(s_.bare);
        }
    }
    if (bdat_remaining_ == 0) on_bdat_input({});
}

std::size_t SmtpSession::on_bdat_input(std::string_view data) {
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(bdat_remaining_, data.size()));
    auto chunk = data.substr(0, take);
    bdat_remaining_ -= take;
    auto* msg = !bdat_failed_ && tx_ && tx_->message ? &*tx_->message : nullptr;
    if (msg) {
        msg->size += take;
        if (s_.message_size_limit && msg->size > s_.message_size_limit) msg->too_big = true;
        if (!msg->too_big) deliver_bytes(msg->headers->feed(msg->bdat_checker->feed(chunk)));
    }
    if (bdat_remaining_ > 0) {
        if (msg) check_backpressure();
        return take;
    }
    state_ = State::Command;
    if (!msg) {
        // Counted like any other refused command: at smtpd_hard_error_limit the client is
        // disconnected (it could otherwise send failing BDATs forever).
        auto r = bdat_refusal_.value_or(Reply{503, "5.5.1", "Error: previous BDAT failed"});
        if (bdat_last_) {
            reset_transaction();
            bdat_refusal_.reset();
        }
        error_reply(r);
        return take;
    }
    if (msg->too_big) {
        // RFC 3030 2: after a failed BDAT the transaction is over; the client must RSET.
        bdat_failed_ = true;
        bdat_refusal_ = Reply{552, "5.3.4", "Error: message file too big"};
        abort_delivery();
        error_reply(*bdat_refusal_);
        return take;
    }
    if (!bdat_last_) {
        reply(250, "2.0.0", fmt::format("Ok: {} octets received", msg->size));
        return take;
    }
    deliver_bytes(msg->headers->feed(msg->bdat_checker->finish()));
    std::optional<Reply> refusal;
    if (msg->bdat_checker->bare_line_ending() && s_.bare == BareLineEndings::Reject)
        refusal = Reply::parse(bare_line_ending_reply(s_.hostname));
    msg->bdat_checker.reset();
    finish_message(refusal);
    return take;
}

void SmtpSession::finish_message(std::optional<Reply> refusal) {
    auto& msg = *tx_->message;
    deliver_bytes(msg.headers->finish());
    for (auto& l : msg.headers->log()) log::line(log::Level::Info, "cleanup", tx_->queue_id, "{}", l);
    if (!refusal && msg.headers->reject().kind == policy::HeaderVerdict::Kind::Reject) refusal = Reply::parse(msg.headers->reject().reply());
    if (!refusal && msg.hold_failed && !msg.headers->discard() && !tx_->discard) refusal = Reply{451, "4.3.0", "Error: queue file write error"};
    if (refusal) {
        abort_delivery();
        log::line(log::Level::Info, "smtpd", tx_->queue_id, "reject: END-OF-MESSAGE from {}: {}; from=<{}> proto={} helo=<{}>", client(),
                  refusal->line(), tx_->sender.address(), esmtp_ ? "ESMTP" : "SMTP", helo_name_.value_or(""));
        state_ = State::Command;
        bool limit = errors_.add(io_, s_.hard_error_limit);
        reply_raw(refusal->line() + "\r\n");
        reset_transaction();
        // A refused message is an error like any other: at the hard limit the client goes.
        if (limit) too_many_errors("END-OF-MESSAGE");
        return;
    }
    if (msg.headers->discard() || tx_->discard) {
        abort_delivery();
        log::line(log::Level::Info, "smtpd", tx_->queue_id, "discarded by {}: from=<{}>", tx_->discard ? "an access table" : "header_checks",
                  tx_->sender.address());
        state_ = State::Command;
        reply(250, "2.0.0", fmt::format("Ok: queued as {}", tx_->queue_id));
        reset_transaction();
        return;
    }
    log::line(log::Level::Info, "smtpd", tx_->queue_id, "from=<{}>, size={}, nrcpt={}", tx_->sender.address(), msg.size,
              tx_->recipients.size());
    state_ = State::Committing;
    // The reply waits for every commit: acknowledged means durable (DESIGN.md principle 1).
    msg.dispatch->commit(delivery::PartialFailures::QueueCopies, guard_.wrap([this](delivery::Result r) {
        answer_commit(r.accepted ? std::nullopt : std::optional<Reply>(Reply::parse(r.refusal)));
    }));
}

void SmtpSession::answer_commit(std::optional<Reply> refusal) {
    tx_->message.reset();
    state_ = State::Command;
    if (refusal) reply_raw(refusal->line() + "\r\n");
    else reply(250, "2.0.0", fmt::format("Ok: queued as {}", tx_->queue_id));
    reset_transaction();
    io_.resume_input();
}

void SmtpSession::abort_delivery() {
    if (tx_) tx_->message.reset();  // aborts what wasn't committed
    paused_ = false;
}

}  // namespace pillarbox::smtp
