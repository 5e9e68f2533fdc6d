// The Store's IMAP folder operations: COPY, MOVE, CREATE, DELETE, RENAME, SUBSCRIBE, and the quota. All are
// writes, so all run on the writer thread (Store::run), durable and published before done.
#include "storage/account.hpp"
#include "storage/store.hpp"

namespace pillarbox::storage {

namespace {

Mailboxes::Copied copied(Account& a, const std::string& to, std::vector<std::uint32_t> uids) {
    return {a.mailbox(to).uidvalidity, std::move(uids)};
}

}  // namespace

void Store::copy(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
                 const std::string& to, Done<Copied> done) {
    run<Copied>(
        account.localpart, account.domain, [from, uids, to](Account& a) { return copied(a, to, a.copy(from, uids, to)); },
        std::move(done));
}

void Store::move(const AccountId& account, const std::string& from, const std::vector<std::uint32_t>& uids,
                 const std::string& to, Done<Copied> done) {
    run<Copied>(
        account.localpart, account.domain, [from, uids, to](Account& a) { return copied(a, to, a.move(from, uids, to)); },
        std::move(done));
}

void Store::create_mailbox(const AccountId& account, const std::string& name, const std::string& special_use,
                           Done<bool> done) {
    run<bool>(
        account.localpart, account.domain,
        [name, special_use](Account& a) {
            a.create_mailbox(name, special_use);
            return true;
        },
        std::move(done));
}

void Store::delete_mailbox(const AccountId& account, const std::string& name, Done<bool> done) {
    run<bool>(
        account.localpart, account.domain,
        [name](Account& a) {
            a.delete_mailbox(name);
            return true;
        },
        std::move(done));
}

void Store::rename_mailbox(const AccountId& account, const std::string& from, const std::string& to, Done<bool> done) {
    run<bool>(
        account.localpart, account.domain,
        [from, to](Account& a) {
            a.rename_mailbox(from, to);
            return true;
        },
        std::move(done));
}

void Store::set_subscribed(const AccountId& account, const std::string& name, bool subscribed, Done<bool> done) {
    run<bool>(
        account.localpart, account.domain,
        [name, subscribed](Account& a) {
            a.subscribe(name, subscribed);
            return true;
        },
        std::move(done));
}

void Store::set_flags_unchanged_since(const AccountId& account, const std::string& mailbox,
                                      const std::vector<std::uint32_t>& uids, FlagOp op, std::uint32_t flags,
                                      const std::vector<std::string>& keywords, std::uint64_t unchanged_since,
                                      Done<ConditionalFlags> done) {
    run<ConditionalFlags>(
        account.localpart, account.domain,
        [mailbox, uids, op, flags, keywords, unchanged_since](Account& a) {
            ConditionalFlags r;
            r.changed = a.set_flags(mailbox, uids, op, flags, keywords, unchanged_since, &r.modified);
            return r;
        },
        std::move(done));
}

void Store::quota(const AccountId& account, Done<QuotaState> done) {
    // On the writer, which asks quota_of before every delivery anyway: the account database read
    // is short, and the usage is the one the next delivery's check will see.
    run<QuotaState>(
        account.localpart, account.domain,
        [this, account](Account& a) { return QuotaState{a.usage(), quota_of(account.localpart, account.domain)}; },
        std::move(done));
}

}  // namespace pillarbox::storage
