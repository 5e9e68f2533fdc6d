// The selected mailbox's view: sequence numbers stay the client's until expunges may be told,
// new mail and other sessions' flag changes come as EXISTS and FETCH, VANISHED with QRESYNC.
#include <catch2/catch.hpp>

#include "protocols/imap/selected.hpp"

using namespace pillarbox;
using imap::SelectedMailbox;
using storage::Change;

namespace {

storage::MessageInfo msg(std::uint32_t uid, std::uint32_t flags = 0, std::uint64_t modseq = 1, std::string file = "cur/x") {
    storage::MessageInfo m;
    m.uid = uid;
    m.flags = flags;
    m.modseq = modseq;
    m.file = std::move(file);
    return m;
}

SelectedMailbox three() {
    storage::MailboxView s;
    s.mailbox.name = "INBOX";
    s.mailbox.uidnext = 8;
    s.mailbox.highestmodseq = 10;
    s.messages = {{3, storage::kSeen, 1, false, {}}, {5, 0, 2, true, {}}, {7, storage::kFlagged, 1, false, {}}};
    return SelectedMailbox(s, false);
}

Change expunged(std::vector<std::uint32_t> uids, std::uint64_t modseq) {
    Change c;
    c.kind = Change::Kind::Expunged;
    c.mailbox = "INBOX";
    c.uids = std::move(uids);
    c.modseq = modseq;
    return c;
}

}  // namespace

TEST_CASE("selected: numbers, UIDs and \\Recent from the snapshot", "[imap][selected]") {
    auto v = three();
    CHECK(v.count() == 3);
    CHECK(v.seq_of(5) == 2);
    CHECK(v.seq_of(4) == 0);
    CHECK(v.max_uid() == 7);
    CHECK(v.recent() == 1);  // the file in new/
    CHECK(v.flags_item(v.at(1), false) == "FLAGS (\\Seen)");
    CHECK(v.flags_item(v.at(2), false) == "FLAGS (\\Recent)");
    CHECK(v.flags_item(v.at(2), true) == "FLAGS ()");
    CHECK(v.updates({}).empty());
}

TEST_CASE("selected: expunges wait until allowed, then go from the highest number down", "[imap][selected]") {
    auto v = three();
    v.apply(expunged({3, 7}, 11));
    // During FETCH, STORE, SEARCH: nothing, and the numbers stay.
    CHECK(v.updates({.expunges_allowed = false}).empty());
    CHECK(v.count() == 3);
    CHECK(v.seq_of(7) == 3);
    CHECK(v.updates({}) == "* 3 EXPUNGE\r\n* 1 EXPUNGE\r\n");
    CHECK(v.count() == 1);
    CHECK(v.seq_of(5) == 1);
    CHECK(v.highest_modseq() == 11);
}

TEST_CASE("selected: QRESYNC tells VANISHED with a UID set", "[imap][selected]") {
    auto v = three();
    v.apply(expunged({3, 5}, 11));
    CHECK(v.updates({.qresync = true}) == "* VANISHED 3,5\r\n");
    CHECK(v.count() == 1);
}

TEST_CASE("selected: new mail is told as EXISTS (and RECENT for rev1), even while expunges wait", "[imap][selected]") {
    auto v = three();
    v.apply(expunged({5}, 11));
    Change add;
    add.kind = Change::Kind::Added;
    add.mailbox = "INBOX";
    add.messages = {msg(8, 0, 12)};
    add.modseq = 12;
    v.apply(add);
    v.apply(add);  // the same UID twice is one message
    CHECK(v.updates({.expunges_allowed = false}) == "* 4 EXISTS\r\n* 2 RECENT\r\n");
    CHECK(v.seq_of(8) == 4);
    CHECK(v.updates({}) == "* 2 EXPUNGE\r\n");
    CHECK(v.seq_of(8) == 3);
    Change other = add;
    other.mailbox = "Sent";
    other.messages = {msg(9)};
    v.apply(other);
    CHECK(v.updates({.rev2 = true}).empty());
}

TEST_CASE("selected: other sessions' flag changes come as FETCH, with UID and MODSEQ under CONDSTORE", "[imap][selected]") {
    auto v = three();
    Change f;
    f.kind = Change::Kind::FlagsChanged;
    f.mailbox = "INBOX";
    auto m = msg(5, storage::kSeen | storage::kAnswered, 12);
    m.keywords = {"$Forwarded"};
    f.messages = {m};
    f.modseq = 12;
    v.apply(f);
    CHECK(v.updates({.condstore = true}) ==
          "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
          "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] Flags permitted.\r\n"
          "* 2 FETCH (UID 5 FLAGS (\\Seen \\Answered \\Recent $Forwarded) MODSEQ (12))\r\n");
    // Applied again (an older change, or one the session told itself): nothing more.
    v.apply(f);
    CHECK(v.updates({}).empty());
    auto g = f;
    g.messages[0].modseq = g.modseq = 13;
    g.messages[0].flags = 0;
    v.apply(g);
    v.told_flags(5);
    CHECK(v.updates({}).empty());
}

TEST_CASE("selected: the mailbox deleted or renamed away by another session", "[imap][selected]") {
    auto v = three();
    Change d;
    d.kind = Change::Kind::MailboxDeleted;
    d.mailbox = "Other";
    v.apply(d);
    CHECK_FALSE(v.deleted());
    d.mailbox = "INBOX";
    v.apply(d);
    CHECK(v.deleted());
}

TEST_CASE("uid_ranges: any order, duplicates and neighbours merged", "[imap][selected]") {
    CHECK(imap::uid_ranges({}).empty());
    CHECK(imap::uid_ranges({7, 3, 4, 5, 9, 3, 10}) == storage::UidRanges{{3, 5}, {7, 7}, {9, 10}});
    CHECK(imap::uid_ranges({1}) == storage::UidRanges{{1, 1}});
}
