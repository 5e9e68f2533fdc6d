// The reply and the extra queue copies after a message's commits (see delivery_outcome.hpp).
#include "delivery/outcome.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace pillarbox::delivery {

std::string local_delivery_log(const std::string& account, const storage::RecipientResult& r, double delay,
                               const std::string& why) {
    const char* dsn = r.ok ? "2.0.0" : r.temporary ? (r.over_quota ? "4.2.2" : "4.3.0") : "5.2.2";
    const char* status = r.ok ? "sent" : r.temporary ? "deferred" : "bounced";
    return fmt::format("to=<{}>, relay=local, delay={:.2f}, dsn={}, status={} ({})", account, delay, dsn, status,
                       !why.empty() ? why : r.ok ? "delivered to maildir" : r.reason);
}

std::string envelope_reason(std::string_view text) {
    constexpr std::size_t kMax = 1000;  // the envelope takes 2048 bytes a field
    std::string out;
    for (char ch : text.substr(0, kMax)) {
        auto c = static_cast<unsigned char>(ch);
        out += (c < 0x20 || c == 0x7f) ? ' ' : ch;
    }
    if (text.size() > kMax && (static_cast<unsigned char>(text[kMax]) & 0xC0) == 0x80) {
        // The cut fell inside a UTF-8 sequence: drop its first part too.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
    }
    return out;
}

DeliveryOutcome decide_outcome(const std::vector<storage::RecipientResult>& local, const std::vector<std::string>& accounts,
                               bool remote_used, bool remote_ok) {
    DeliveryOutcome o;
    bool any_ok = remote_used && remote_ok;
    bool temp = remote_used && !remote_ok, quota_temp = false;
    for (auto& r : local) {
        if (r.ok) any_ok = true;
        else if (r.temporary) (r.over_quota ? quota_temp : temp) = true;
    }
    auto name = [&](std::size_t i) { return i < accounts.size() ? accounts[i] : std::string("?"); };
    if (!any_ok) {
        // Nobody has it: the client keeps the message and tries again (4xx) or bounces it (5xx).
        if (remote_used && !remote_ok) o.refusal = "451 4.3.0 Error: queue file write error";
        else if (temp) o.refusal = "451 4.3.0 Error: local delivery failed, try again later";
        else if (quota_temp) o.refusal = "452 4.2.2 Error: mailbox full";  // quota_full_tempfail
        else o.refusal = "552 5.2.2 Error: mailbox full";
        return o;
    }
    o.accepted = true;
    DeliveryOutcome::Copy retry, hold;
    retry.place = storage::queue::Place::Incoming;
    hold.place = storage::queue::Place::Hold;
    std::string retry_why, hold_why;
    for (std::size_t i = 0; i < local.size(); ++i) {
        auto& r = local[i];
        if (r.ok) continue;
        auto& c = r.temporary ? retry : hold;
        auto& why = r.temporary ? retry_why : hold_why;
        c.accounts.push_back(i);
        if (!why.empty()) why += "; ";
        why += name(i) + ": " + r.reason;
    }
    if (!retry.accounts.empty()) {
        retry.reason = envelope_reason("4.3.0 local delivery failed, to be retried: " + retry_why);
        o.copies.push_back(std::move(retry));
    }
    if (!hold.accounts.empty()) {
        // No bounce messages yet: the admin sees these in the hold queue, and releases
        // (once the mailbox has room) or deletes them.
        hold.reason = envelope_reason("5.2.2 mailbox full: " + hold_why);
        o.copies.push_back(std::move(hold));
    }
    if (remote_used && !remote_ok) {
        DeliveryOutcome::Copy again;
        again.place = storage::queue::Place::Messages;
        again.remote = true;
        o.copies.push_back(std::move(again));
    }
    return o;
}

}  // namespace pillarbox::delivery
