// LIST matching (RFC 9051 6.3.9): '*' and '%', the reference, INBOX without regard to case,
// implied parents, LSUB and LIST-EXTENDED's SUBSCRIBED and RECURSIVEMATCH (RFC 5258).
#include <catch2/catch.hpp>

#include "protocols/imap/list.hpp"

using namespace pillarbox;
using namespace pillarbox::imap;

namespace {

storage::MailboxInfo box(std::string name, bool subscribed = false, std::string special = "") {
    storage::MailboxInfo b;
    b.name = std::move(name);
    b.subscribed = subscribed;
    b.special_use = std::move(special);
    return b;
}

std::vector<std::string> names(const std::vector<ListEntry>& es) {
    std::vector<std::string> out;
    for (auto& e : es) out.push_back(e.name);
    return out;
}

ListRequest req(std::string pattern, std::string reference = "") {
    ListRequest r;
    r.reference = std::move(reference);
    r.patterns = {std::move(pattern)};
    return r;
}

}  // namespace

TEST_CASE("list: wildcards", "[imap][list]") {
    CHECK(list_match("*", "a/b/c"));
    CHECK(list_match("%", "a"));
    CHECK_FALSE(list_match("%", "a/b"));
    CHECK(list_match("a/%", "a/b"));
    CHECK_FALSE(list_match("a/%", "a/b/c"));
    CHECK(list_match("a/*", "a/b/c"));
    CHECK(list_match("*c", "a/b/c"));
    CHECK(list_match("%b%", "abc"));
    CHECK_FALSE(list_match("%b%", "a/bc"));
    CHECK(list_match("inbox", "INBOX"));
    CHECK(list_match("Inbox/%", "INBOX/x"));
    CHECK_FALSE(list_match("inboxes", "INBOXES"));
    CHECK_FALSE(list_match("", "INBOX"));
    CHECK(join_reference("Work", "%") == "Work/%");
    CHECK(join_reference("Work/", "%") == "Work/%");
    CHECK(join_reference("", "%") == "%");
}

TEST_CASE("list: implied parents, children and special use", "[imap][list]") {
    std::vector<storage::MailboxInfo> boxes{box("INBOX"), box("Sent", true, "\\Sent"), box("Work/2026/Q1"), box("Archive")};
    auto all = list_mailboxes(boxes, req("*"), false);
    CHECK(names(all) == std::vector<std::string>{"INBOX", "Archive", "Sent", "Work", "Work/2026", "Work/2026/Q1"});
    CHECK(all[2].attributes == std::vector<std::string>{"\\HasNoChildren", "\\Sent"});
    CHECK(all[3].attributes == std::vector<std::string>{"\\Noselect", "\\HasChildren"});
    CHECK_FALSE(all[3].selectable);
    CHECK(names(list_mailboxes(boxes, req("%", "Work"), false)) == std::vector<std::string>{"Work/2026"});
    ListRequest special = req("*");
    special.special_use = true;
    CHECK(names(list_mailboxes(boxes, special, false)) == std::vector<std::string>{"Sent"});
}

TEST_CASE("list: LSUB and SUBSCRIBED with RECURSIVEMATCH", "[imap][list]") {
    std::vector<storage::MailboxInfo> boxes{box("INBOX", true), box("Work/2026", true), box("Work/old")};
    auto lsub = list_mailboxes(boxes, req("%"), true);
    REQUIRE(names(lsub) == std::vector<std::string>{"INBOX", "Work"});
    CHECK(lsub[1].attributes == std::vector<std::string>{"\\Noselect"});
    ListRequest sub = req("%");
    sub.subscribed = true;
    CHECK(names(list_mailboxes(boxes, sub, false)) == std::vector<std::string>{"INBOX"});
    sub.recursive_match = true;
    auto rec = list_mailboxes(boxes, sub, false);
    REQUIRE(names(rec) == std::vector<std::string>{"INBOX", "Work"});
    CHECK(rec[1].childinfo == std::vector<std::string>{"SUBSCRIBED"});
    CHECK(rec[1].attributes == std::vector<std::string>{"\\NonExistent"});
}
