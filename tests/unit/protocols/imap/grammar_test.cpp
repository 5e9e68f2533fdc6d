// The argument grammars: every FETCH attribute and SEARCH key, STORE, STATUS, LIST, SELECT
// parameters and APPEND's head, and the errors they answer with.
#include <catch2/catch.hpp>

#include <string>

#include "protocols/imap/grammar.hpp"

using namespace pillarbox::imap;
using namespace std::string_literals;

namespace {

const Decoder::Limits kLimits{5, 100, '/'};

template <typename T>
struct Parsed {
    std::optional<T> value;
    std::string error;
    bool at_end = false;
};

template <typename F>
auto parse(const std::string& text, F f) {
    Decoder d(text, kLimits);
    auto v = f(d);
    Parsed<typename decltype(v)::value_type> p{std::move(v), d.error(), d.at_end()};
    if (p.value) CHECK(p.error.empty());  // nothing failed on the way to a success
    else CHECK_FALSE(p.error.empty());
    return p;
}

auto fetch(const std::string& t, bool uid = false) { return parse(t, [&](Decoder& d) { return parse_fetch(d, uid); }); }
auto search(const std::string& t) { return parse(t, [](Decoder& d) { return parse_search(d); }); }
auto store(const std::string& t) { return parse(t, [](Decoder& d) { return parse_store(d); }); }
auto status(const std::string& t) { return parse(t, [](Decoder& d) { return parse_status_items(d); }); }
auto list(const std::string& t, bool utf8 = false) { return parse(t, [&](Decoder& d) { return parse_list(d, utf8); }); }
auto select(const std::string& t, bool utf8 = false) { return parse(t, [&](Decoder& d) { return parse_select(d, utf8); }); }
auto append(const std::string& t, bool utf8 = false) { return parse(t, [&](Decoder& d) { return parse_append_head(d, utf8); }); }

using K = FetchAtt::Kind;
using T = Section::Text;

FetchAtt att(K kind) { return FetchAtt{kind, false, {}, std::nullopt}; }
FetchAtt body(Section s, bool peek = false, std::optional<std::pair<std::uint64_t, std::uint64_t>> partial = std::nullopt,
              K kind = K::BodySection) {
    return FetchAtt{kind, peek, std::move(s), partial};
}

FetchAtt one_att(const std::string& text) {
    auto r = fetch(text);
    INFO(text << ": " << r.error);
    REQUIRE(r.value);
    REQUIRE(r.value->atts.size() == 1);
    return r.value->atts[0];
}

using SK = SearchKey::Kind;

SearchKey one_key(const std::string& text) {
    auto r = search(text);
    INFO(text << ": " << r.error);
    REQUIRE(r.value);
    REQUIRE(r.value->key.kind == SK::And);
    REQUIRE(r.value->key.children.size() == 1);
    return r.value->key.children[0];
}

}  // namespace

// ---- FETCH ----

TEST_CASE("FETCH: every attribute without a section", "[imap][imap_grammar]") {
    for (auto [text, kind] : std::vector<std::pair<std::string, K>>{
             {"ENVELOPE", K::Envelope}, {"FLAGS", K::Flags}, {"INTERNALDATE", K::InternalDate},
             {"RFC822", K::Rfc822}, {"RFC822.HEADER", K::Rfc822Header}, {"RFC822.SIZE", K::Rfc822Size},
             {"RFC822.TEXT", K::Rfc822Text}, {"BODY", K::Body}, {"BODYSTRUCTURE", K::BodyStructure},
             {"UID", K::Uid}, {"MODSEQ", K::ModSeq}, {"envelope", K::Envelope}, {"rfc822.size", K::Rfc822Size},
             {"Body", K::Body}, {"modseq", K::ModSeq}}) {
        INFO(text);
        CHECK(one_att(text) == att(kind));
    }
}

TEST_CASE("FETCH: the macros expand in order", "[imap][imap_grammar]") {
    auto fast = std::vector<FetchAtt>{att(K::Flags), att(K::InternalDate), att(K::Rfc822Size)};
    auto all = fast;
    all.push_back(att(K::Envelope));
    auto full = all;
    full.push_back(att(K::Body));
    CHECK(fetch("FAST").value->atts == fast);
    CHECK(fetch("all").value->atts == all);
    CHECK(fetch("Full").value->atts == full);
    // Macros stand alone: not inside a list.
    CHECK(fetch("(ALL)").error == "unknown fetch attribute ALL");
}

TEST_CASE("FETCH: lists keep the order sent", "[imap][imap_grammar]") {
    auto r = fetch("(UID FLAGS BODY.PEEK[HEADER] BODY RFC822.SIZE)");
    REQUIRE(r.value);
    CHECK(r.value->atts == std::vector<FetchAtt>{att(K::Uid), att(K::Flags), body(Section{{}, T::Header, {}}, true),
                                                 att(K::Body), att(K::Rfc822Size)});
    CHECK_FALSE(r.value->changed_since);
    CHECK_FALSE(r.value->vanished);
}

TEST_CASE("FETCH: BODY[section]<partial> and BODY.PEEK", "[imap][imap_grammar]") {
    CHECK(one_att("BODY[]") == body(Section{}));
    CHECK(one_att("BODY.PEEK[]") == body(Section{}, true));
    CHECK(one_att("body.peek[]<0.1024>") == body(Section{}, true, std::make_pair(0ull, 1024ull)));
    CHECK(one_att("BODY[HEADER]") == body(Section{{}, T::Header, {}}));
    CHECK(one_att("BODY[TEXT]") == body(Section{{}, T::Text, {}}));
    CHECK(one_att("BODY[header.fields (From To \"Subject\" {4}\r\nDate)]") ==
          body(Section{{}, T::HeaderFields, {"From", "To", "Subject", "Date"}}));
    CHECK(one_att("BODY[HEADER.FIELDS.NOT (X-Spam)]") == body(Section{{}, T::HeaderFieldsNot, {"X-Spam"}}));
    CHECK(one_att("BODY[1]") == body(Section{{1}, T::None, {}}));
    CHECK(one_att("BODY[1.2.3]") == body(Section{{1, 2, 3}, T::None, {}}));
    CHECK(one_att("BODY[1.2.MIME]") == body(Section{{1, 2}, T::Mime, {}}));
    CHECK(one_att("BODY[4.HEADER]") == body(Section{{4}, T::Header, {}}));
    CHECK(one_att("BODY[4.TEXT]") == body(Section{{4}, T::Text, {}}));
    CHECK(one_att("BODY[4.2.HEADER.FIELDS (Subject)]") == body(Section{{4, 2}, T::HeaderFields, {"Subject"}}));
    CHECK(one_att("BODY[1]<9223372036854775807.1>") ==
          body(Section{{1}, T::None, {}}, false, std::make_pair(9223372036854775807ull, 1ull)));
}

TEST_CASE("FETCH: BINARY, BINARY.PEEK and BINARY.SIZE take part numbers only", "[imap][imap_grammar]") {
    CHECK(one_att("BINARY[]") == body(Section{}, false, std::nullopt, K::Binary));
    CHECK(one_att("BINARY[1.2]") == body(Section{{1, 2}, T::None, {}}, false, std::nullopt, K::Binary));
    CHECK(one_att("BINARY.PEEK[1]<10.20>") == body(Section{{1}, T::None, {}}, true, std::make_pair(10ull, 20ull), K::Binary));
    CHECK(one_att("BINARY.SIZE[3]") == body(Section{{3}, T::None, {}}, false, std::nullopt, K::BinarySize));
    CHECK(one_att("binary.size[]") == body(Section{}, false, std::nullopt, K::BinarySize));
    CHECK(fetch("BINARY[HEADER]").error == "a BINARY section is part numbers only");
    CHECK(fetch("BINARY[1.MIME]").error == "expected ']'");
    CHECK(fetch("BINARY.SIZE[1]<0.5>").error == "unexpected text after the arguments");
    CHECK(fetch("BINARY").error == "BINARY needs a section");
    CHECK(fetch("BINARY.SIZE").error == "BINARY.SIZE needs a section");
}

TEST_CASE("FETCH: bad sections and attributes", "[imap][imap_grammar]") {
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"BODY[MIME]", "invalid section MIME"},
             {"BODY[0]", "expected a non-zero number"},
             {"BODY[1.]", "invalid section"},
             {"BODY[1.FOO]", "invalid section FOO"},
             {"BODY[HEADER.FIELDS]", "expected a space"},
             {"BODY[HEADER.FIELDS ()]", "empty list"},
             {"BODY[HEADER.FIELDS (From]", "expected a space"},
             {"BODY[TEXT", "expected ']'"},
             {"BODY[]<1>", "expected '.'"},
             {"BODY[]<1.0>", "a partial's length must not be 0"},
             {"BODY[]<1.2", "expected '>'"},
             {"BODY[]<9223372036854775808.1>", "number out of range"},
             {"BODY.PEEK", "BODY.PEEK needs a section"},
             {"FOO", "unknown fetch attribute FOO"},
             {"", "expected a fetch attribute"},
             {"()", "empty list"},
             {"(FLAGS", "expected a space"},
             {"(FLAGS  UID)", "expected a fetch attribute"},
             {"(FLAGS) x", "expected '('"},
             {"FLAGS)", "unexpected text after the arguments"},
             {"UID[1]", "unexpected text after the arguments"},
             {"RFC822.HEADER.X", "unknown fetch attribute RFC822.HEADER.X"}}) {
        INFO(text);
        CHECK(fetch(text).error == error);
    }
}

TEST_CASE("FETCH: CHANGEDSINCE and VANISHED (RFC 7162)", "[imap][imap_grammar]") {
    auto r = fetch("(FLAGS) (CHANGEDSINCE 12345)");
    REQUIRE(r.value);
    CHECK(r.value->changed_since == 12345u);
    CHECK_FALSE(r.value->vanished);
    auto u = fetch("FLAGS (changedsince 7 vanished)", true);
    REQUIRE(u.value);
    CHECK(u.value->changed_since == 7u);
    CHECK(u.value->vanished);
    CHECK(fetch("FLAGS (VANISHED CHANGEDSINCE 7)", true).value->vanished);
    CHECK(fetch("FLAGS (CHANGEDSINCE 7 VANISHED)").error == "VANISHED is for UID FETCH only");
    CHECK(fetch("FLAGS (VANISHED)", true).error == "VANISHED needs CHANGEDSINCE");
    CHECK(fetch("FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)").error == "CHANGEDSINCE given twice");
    CHECK(fetch("FLAGS (CHANGEDSINCE)").error == "expected a space");
    CHECK(fetch("FLAGS (CHANGEDSINCE x)").error == "expected a number");
    CHECK(fetch("FLAGS (FOO)").error == "unknown FETCH modifier");
    CHECK(fetch("FLAGS ()").error == "empty list");
}

// ---- SEARCH ----

TEST_CASE("SEARCH: every key without arguments", "[imap][imap_grammar]") {
    for (auto [text, kind] : std::vector<std::pair<std::string, SK>>{
             {"ALL", SK::All}, {"ANSWERED", SK::Answered}, {"DELETED", SK::Deleted}, {"DRAFT", SK::Draft},
             {"FLAGGED", SK::Flagged}, {"SEEN", SK::Seen}, {"RECENT", SK::Recent}, {"NEW", SK::New},
             {"OLD", SK::Old}, {"UNANSWERED", SK::Unanswered}, {"UNDELETED", SK::Undeleted},
             {"UNDRAFT", SK::Undraft}, {"UNFLAGGED", SK::Unflagged}, {"UNSEEN", SK::Unseen},
             {"all", SK::All}, {"unSeen", SK::Unseen}}) {
        INFO(text);
        CHECK(one_key(text).kind == kind);
    }
}

TEST_CASE("SEARCH: string, date, number and set keys", "[imap][imap_grammar]") {
    for (auto [text, kind] : std::vector<std::pair<std::string, SK>>{
             {"BCC", SK::Bcc}, {"CC", SK::Cc}, {"FROM", SK::From}, {"SUBJECT", SK::Subject},
             {"TO", SK::To}, {"BODY", SK::Body}, {"TEXT", SK::Text}}) {
        INFO(text);
        auto k = one_key(text + " \"hello world\"");
        CHECK(k.kind == kind);
        CHECK(k.text == "hello world");
        CHECK(one_key(text + " bob@example.org").text == "bob@example.org");
        CHECK(one_key(text + " {6}\r\nh\xc3\xa9llo").text == "h\xc3\xa9llo");  // literals carry the charset's bytes
    }
    for (auto [text, kind] : std::vector<std::pair<std::string, SK>>{
             {"BEFORE", SK::Before}, {"ON", SK::On}, {"SINCE", SK::Since},
             {"SENTBEFORE", SK::SentBefore}, {"SENTON", SK::SentOn}, {"SENTSINCE", SK::SentSince}}) {
        INFO(text);
        auto k = one_key(text + " 1-Feb-2024");
        CHECK(k.kind == kind);
        CHECK(k.date == Date{2024, 2, 1});
        CHECK(one_key(text + " \"01-Feb-2024\"").date == Date{2024, 2, 1});
    }
    auto kw = one_key("KEYWORD $Forwarded");
    CHECK(kw.kind == SK::Keyword);
    CHECK(kw.text == "$Forwarded");
    auto ukw = one_key("unkeyword work");
    CHECK(ukw.kind == SK::Unkeyword);
    CHECK(ukw.text == "work");
    auto h = one_key("HEADER X-Mailer \"\"");
    CHECK(h.kind == SK::Header);
    CHECK(h.header == "X-Mailer");
    CHECK(h.text.empty());
    auto larger = one_key("LARGER 9223372036854775807");
    CHECK(larger.kind == SK::Larger);
    CHECK(larger.number == 9223372036854775807ull);
    auto smaller = one_key("SMALLER 100");
    CHECK(smaller.kind == SK::Smaller);
    CHECK(smaller.number == 100u);
    auto uid = one_key("UID 1:*,5");
    CHECK(uid.kind == SK::Uid);
    CHECK(uid.set.ranges == std::vector<SequenceSet::Range>{{1, SequenceSet::kStar}, {5, 5}});
    auto uid_saved = one_key("UID $");
    CHECK(uid_saved.kind == SK::Uid);
    CHECK(uid_saved.set.saved);
    auto seq = one_key("2:4,*");
    CHECK(seq.kind == SK::SequenceSet);
    CHECK(seq.set.ranges == std::vector<SequenceSet::Range>{{2, 4}, {SequenceSet::kStar, SequenceSet::kStar}});
    CHECK(one_key("*").kind == SK::SequenceSet);
    auto saved = one_key("$");
    CHECK(saved.kind == SK::SequenceSet);
    CHECK(saved.set.saved);
}

TEST_CASE("SEARCH: MODSEQ with and without its entry (RFC 7162 3.1.5)", "[imap][imap_grammar]") {
    auto m = one_key("MODSEQ 620162338");
    CHECK(m.kind == SK::ModSeq);
    CHECK(m.number == 620162338u);
    CHECK(one_key("MODSEQ 0").number == 0u);  // mod-sequence-valzer
    auto e = one_key("MODSEQ \"/flags/\\\\draft\" all 620162338");
    CHECK(e.kind == SK::ModSeq);
    CHECK(e.number == 620162338u);
    CHECK(one_key("modseq \"/FLAGS/$Junk\" PRIV 5").number == 5u);
    CHECK(one_key("MODSEQ \"/flags/work\" shared 5").number == 5u);
    CHECK(search("MODSEQ \"/flags/\" all 5").error == "invalid MODSEQ entry name");
    CHECK(search("MODSEQ \"/other/x\" all 5").error == "invalid MODSEQ entry name");
    CHECK(search("MODSEQ \"/flags/\\\\Seen\" mine 5").error == "expected priv, shared or all");
    CHECK(search("MODSEQ \"/flags/\\\\Seen\" all").error == "expected a space");
    CHECK(search("MODSEQ").error == "expected a space");
    CHECK(search("MODSEQ x").error == "expected a number");
}

TEST_CASE("SEARCH: lists, OR, NOT and several keys", "[imap][imap_grammar]") {
    auto r = search("FROM bob (SEEN OR DELETED NOT FLAGGED) NOT (1:3 UNDRAFT)");
    REQUIRE(r.value);
    const auto& top = r.value->key;
    REQUIRE(top.children.size() == 3);
    CHECK(top.children[0].kind == SK::From);
    const auto& list = top.children[1];
    CHECK(list.kind == SK::And);
    REQUIRE(list.children.size() == 2);
    CHECK(list.children[0].kind == SK::Seen);
    const auto& o = list.children[1];
    CHECK(o.kind == SK::Or);
    REQUIRE(o.children.size() == 2);
    CHECK(o.children[0].kind == SK::Deleted);
    CHECK(o.children[1].kind == SK::Not);
    CHECK(o.children[1].children.at(0).kind == SK::Flagged);
    const auto& n = top.children[2];
    CHECK(n.kind == SK::Not);
    CHECK(n.children.at(0).kind == SK::And);
    CHECK(n.children.at(0).children.size() == 2);
    CHECK_FALSE(r.value->esearch);
    CHECK(r.value->charset.empty());
}

TEST_CASE("SEARCH: RETURN options (RFC 4731, RFC 5182) and CHARSET", "[imap][imap_grammar]") {
    auto r = search("RETURN (MIN MAX COUNT) CHARSET utf-8 ALL");
    REQUIRE(r.value);
    CHECK(r.value->esearch);
    CHECK(r.value->min);
    CHECK(r.value->max);
    CHECK(r.value->count);
    CHECK_FALSE(r.value->all);
    CHECK_FALSE(r.value->save);
    CHECK(r.value->charset == "UTF-8");
    // An empty RETURN () means ALL.
    auto e = search("return () SEEN");
    REQUIRE(e.value);
    CHECK(e.value->esearch);
    CHECK(e.value->all);
    auto s = search("RETURN (SAVE) UNSEEN");
    REQUIRE(s.value);
    CHECK(s.value->save);
    CHECK_FALSE(s.value->all);
    auto a = search("RETURN (all save) 1:*");
    REQUIRE(a.value);
    CHECK(a.value->all);
    CHECK(a.value->save);
    CHECK(search("CHARSET \"US-ASCII\" TEXT x").value->charset == "US-ASCII");
    CHECK(search("RETURN (FOO) ALL").error == "unknown RETURN option FOO");
    CHECK(search("RETURN ALL").error == "expected '('");
    CHECK(search("RETURN (MIN)").error == "expected a space");
    CHECK(search("CHARSET UTF-8").error == "expected a space");
    // RFC 9051's order: RETURN before CHARSET.
    CHECK(search("CHARSET UTF-8 RETURN (MIN) ALL").error == "unknown search key RETURN");
}

TEST_CASE("SEARCH: errors", "[imap][imap_grammar]") {
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"", "expected a search key"},
             {"FOO", "unknown search key FOO"},
             {"ALL ", "expected a search key"},
             {"ALL  SEEN", "expected a search key"},
             {"()", "empty list"},
             {"(SEEN", "expected a space"},
             {"SEEN)", "expected a space"},
             {"FROM", "expected a space"},
             {"FROM (x", "expected an atom or a string"},
             {"BEFORE 1-Foo-2024", "invalid date"},
             {"LARGER x", "expected a number"},
             {"UID x", "invalid sequence set"},
             {"OR SEEN", "expected a space"},
             {"NOT", "expected a space"},
             {"KEYWORD \\Seen", "expected an atom"},
             {"HEADER Subject", "expected a space"},
             {"0", "invalid sequence set"},
             {"\"SEEN\"", "expected a search key"}}) {
        INFO(text);
        CHECK(search(text).error == error);
    }
}

TEST_CASE("SEARCH: nesting is bounded, parentheses, NOT and OR alike", "[imap][imap_grammar]") {
    // max_depth 5
    CHECK(search("(((((SEEN)))))").value);
    CHECK(search("((((((SEEN))))))").error == "too deeply nested");
    CHECK(search("NOT NOT NOT NOT NOT SEEN").value);
    CHECK(search("NOT NOT NOT NOT NOT NOT SEEN").error == "too deeply nested");
    CHECK(search("OR SEEN OR SEEN OR SEEN OR SEEN OR SEEN DRAFT").value);
    CHECK(search("OR SEEN OR SEEN OR SEEN OR SEEN OR SEEN OR SEEN DRAFT").error == "too deeply nested");
    CHECK(search("NOT (NOT (NOT (SEEN)))").error == "too deeply nested");
    CHECK(search("NOT (NOT (NOT SEEN))").value);
    // Siblings don't add up: the depth is per path.
    CHECK(search("(((((SEEN))))) (((((SEEN))))) NOT NOT NOT NOT NOT SEEN").value);
    // A very long chain is refused without recursing through it.
    std::string deep;
    for (int i = 0; i < 100000; ++i) deep += "NOT ";
    CHECK(search(deep + "SEEN").error == "too deeply nested");
    CHECK(search(std::string(100000, '(') + "SEEN").error == "too deeply nested");
}

// ---- STORE ----

TEST_CASE("STORE: FLAGS, +FLAGS, -FLAGS, .SILENT, UNCHANGEDSINCE", "[imap][imap_grammar]") {
    auto r = store("1:3,5 +FLAGS (\\Seen $Forwarded)");
    REQUIRE(r.value);
    CHECK(r.value->set.ranges == std::vector<SequenceSet::Range>{{1, 3}, {5, 5}});
    CHECK(r.value->op == StoreRequest::Op::Add);
    CHECK_FALSE(r.value->silent);
    CHECK(r.value->flags == std::vector<std::string>{"\\Seen", "$Forwarded"});
    CHECK_FALSE(r.value->unchanged_since);
    auto m = store("* -flags.silent \\Deleted work");
    REQUIRE(m.value);
    CHECK(m.value->op == StoreRequest::Op::Remove);
    CHECK(m.value->silent);
    CHECK(m.value->flags == std::vector<std::string>{"\\Deleted", "work"});
    auto s = store("$ FLAGS ()");
    REQUIRE(s.value);
    CHECK(s.value->set.saved);
    CHECK(s.value->op == StoreRequest::Op::Replace);
    CHECK(s.value->flags.empty());
    auto u = store("1 (UNCHANGEDSINCE 0) FLAGS.SILENT (\\Seen)");
    REQUIRE(u.value);
    CHECK(u.value->unchanged_since == 0u);
    CHECK(u.value->silent);
    CHECK(store("1 (unchangedsince 320162338) +FLAGS \\Seen").value->unchanged_since == 320162338u);
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"1 +FLAGS (\\Recent)", "\\Recent can't be set by a client"},
             {"1 FLAGS \\Seen \\RECENT", "\\Recent can't be set by a client"},
             {"1 FLAGS", "expected a space"},
             {"1 FLAGS ", "expected a flag"},
             {"1 FLAG (\\Seen)", "expected FLAGS, +FLAGS or -FLAGS"},
             {"1 +-FLAGS (\\Seen)", "expected FLAGS, +FLAGS or -FLAGS"},
             {"1 FLAGS (\\Seen) x", "unexpected text after the arguments"},
             {"1 FLAGS \\Seen ", "expected a flag"},
             {"1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS ()", "UNCHANGEDSINCE given twice"},
             {"1 (FOO 1) FLAGS ()", "expected UNCHANGEDSINCE"},
             {"1 () FLAGS ()", "empty list"},
             {"x FLAGS ()", "invalid sequence set"},
             {"1", "expected a space"}}) {
        INFO(text);
        CHECK(store(text).error == error);
    }
}

// ---- STATUS ----

TEST_CASE("STATUS items", "[imap][imap_grammar]") {
    auto r = status("(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ)");
    REQUIRE(r.value);
    CHECK(*r.value == std::vector<StatusItem>{StatusItem::Messages, StatusItem::Recent, StatusItem::UidNext,
                                              StatusItem::UidValidity, StatusItem::Unseen, StatusItem::Deleted,
                                              StatusItem::Size, StatusItem::HighestModSeq});
    CHECK(*status("(unseen)").value == std::vector<StatusItem>{StatusItem::Unseen});
    CHECK(status("()").error == "empty list");
    CHECK(status("(FOO)").error == "unknown status item FOO");
    CHECK(status("MESSAGES").error == "expected '('");
    // The caller checks what follows (STATUS mailbox (items) ends the command).
    auto more = status("(MESSAGES) x");
    CHECK(more.value);
    CHECK_FALSE(more.at_end);
}

// ---- LIST ----

TEST_CASE("LIST: reference and pattern, decoded", "[imap][imap_grammar]") {
    auto r = list("\"\" *");
    REQUIRE(r.value);
    CHECK(r.value->reference.empty());
    CHECK(r.value->patterns == std::vector<std::string>{"*"});
    CHECK_FALSE(r.value->extended);
    auto d = list("inbox/ &U,BTFw-/%");
    REQUIRE(d.value);
    CHECK(d.value->reference == "INBOX/");
    CHECK(d.value->patterns == std::vector<std::string>{"\xe5\x8f\xb0\xe5\x8c\x97/%"});
    auto u = list("\"\" \"\xe5\x8f\xb0\xe5\x8c\x97/%\"", true);
    REQUIRE(u.value);
    CHECK(u.value->patterns == std::vector<std::string>{"\xe5\x8f\xb0\xe5\x8c\x97/%"});
    CHECK(list("\"\" \"\"").value->patterns == std::vector<std::string>{""});
    CHECK(list("\"\" &Jjo").error == "mailbox name is not valid modified UTF-7");
    CHECK(list("\"\"").error == "expected a space");
    CHECK(list("\"\" * x").error == "expected RETURN");
}

TEST_CASE("LIST-EXTENDED: selection options, patterns, return options", "[imap][imap_grammar]") {
    auto r = list("(SUBSCRIBED REMOTE RECURSIVEMATCH) \"\" (INBOX Work/*) RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN))");
    REQUIRE(r.value);
    const auto& l = *r.value;
    CHECK(l.extended);
    CHECK(l.subscribed);
    CHECK(l.remote);
    CHECK(l.recursive_match);
    CHECK_FALSE(l.special_use);
    CHECK(l.patterns == std::vector<std::string>{"INBOX", "Work/*"});
    CHECK(l.return_children);
    CHECK(l.return_subscribed);
    CHECK(l.return_special_use);
    REQUIRE(l.return_status);
    CHECK(*l.return_status == std::vector<StatusItem>{StatusItem::Messages, StatusItem::Unseen});
    auto su = list("(special-use recursivematch) \"\" *");
    REQUIRE(su.value);
    CHECK(su.value->special_use);
    CHECK(su.value->recursive_match);
    auto empty = list("() \"\" % RETURN ()");
    REQUIRE(empty.value);
    CHECK(empty.value->extended);
    CHECK(list("\"\" % RETURN ()").value->extended);
    CHECK(list("\"\" (%)").value->extended);
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"(RECURSIVEMATCH) \"\" *", "RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE"},
             {"(REMOTE RECURSIVEMATCH) \"\" *", "RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE"},
             {"(FOO) \"\" *", "unknown selection option FOO"},
             {"\"\" * RETURN (FOO)", "unknown return option FOO"},
             {"\"\" * RETURN (STATUS)", "expected a space"},
             {"\"\" * RETURN (STATUS (MESSAGES) STATUS (UNSEEN))", "STATUS given twice"},
             {"\"\" * RETURN (STATUS ())", "empty list"},
             {"\"\" ()", "empty list"},
             {"\"\" (INBOX", "expected a space"},
             {"(SUBSCRIBED)\"\" *", "expected a space"}}) {
        INFO(text);
        CHECK(list(text).error == error);
    }
}

// ---- SELECT ----

TEST_CASE("SELECT/EXAMINE parameters: CONDSTORE, QRESYNC", "[imap][imap_grammar]") {
    auto plain = select("inbox");
    REQUIRE(plain.value);
    CHECK(plain.value->mailbox == "INBOX");
    CHECK_FALSE(plain.value->condstore);
    CHECK_FALSE(plain.value->qresync);
    CHECK(select("Work (CONDSTORE)").value->condstore);
    auto q = select("INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))");
    REQUIRE(q.value);
    REQUIRE(q.value->qresync);
    CHECK(q.value->qresync->uidvalidity == 67890007u);
    CHECK(q.value->qresync->modseq == 20050715194045000ull);
    REQUIRE(q.value->qresync->known_uids);
    CHECK(q.value->qresync->known_uids->ranges.size() == 3);
    CHECK_FALSE(q.value->qresync->seq_match);
    auto full = select("INBOX (CONDSTORE QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))");
    REQUIRE(full.value);
    CHECK(full.value->condstore);
    REQUIRE(full.value->qresync->seq_match);
    CHECK(full.value->qresync->seq_match->first.ranges.size() == 4);
    CHECK(full.value->qresync->seq_match->second.ranges.size() == 13);
    auto minimal = select("INBOX (QRESYNC (1 1))");
    REQUIRE(minimal.value);
    CHECK_FALSE(minimal.value->qresync->known_uids);
    // seq-match-data without known-uids
    auto seq_only = select("INBOX (QRESYNC (1 1 (1:2 5:6)))");
    REQUIRE(seq_only.value);
    CHECK_FALSE(seq_only.value->qresync->known_uids);
    CHECK(seq_only.value->qresync->seq_match);
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"INBOX (QRESYNC (1 1 1:*))", "'*' and '$' are not allowed in QRESYNC's sets"},
             {"INBOX (QRESYNC (1 1 $))", "'*' and '$' are not allowed in QRESYNC's sets"},
             {"INBOX (QRESYNC (1 1 1:5 (1:* 1:5)))", "'*' and '$' are not allowed in QRESYNC's sets"},
             {"INBOX (QRESYNC (0 1))", "expected a non-zero number"},
             {"INBOX (QRESYNC (1))", "expected a space"},
             {"INBOX (QRESYNC (1 1) QRESYNC (1 1))", "QRESYNC given twice"},
             {"INBOX (QRESYNC (1 1 (1:2)))", "expected a space"},
             {"INBOX (FOO)", "unknown SELECT parameter"},
             {"INBOX ()", "empty list"},
             {"INBOX x", "expected '('"},
             {"INBOX (CONDSTORE", "expected a space"}}) {
        INFO(text);
        CHECK(select(text).error == error);
    }
}

// ---- APPEND ----

TEST_CASE("APPEND head: mailbox, flags, date-time, up to the literal", "[imap][imap_grammar]") {
    auto r = append("Sent (\\Seen) \"17-Jul-1996 02:44:25 -0700\" ");
    REQUIRE(r.value);
    CHECK(r.value->mailbox == "Sent");
    CHECK(r.value->flags == std::vector<std::string>{"\\Seen"});
    CHECK(r.value->date_time == 837596665);
    CHECK(r.at_end);
    auto plain = append("inbox ");
    REQUIRE(plain.value);
    CHECK(plain.value->mailbox == "INBOX");
    CHECK(plain.value->flags.empty());
    CHECK_FALSE(plain.value->date_time);
    CHECK(append("\"&U,BTFw-\" () ").value->mailbox == "\xe5\x8f\xb0\xe5\x8c\x97");
    CHECK(append("x \" 1-Jan-2024 00:00:00 +0000\" ").value->date_time == 1704067200);
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"INBOX", "expected a space"},
             {"INBOX (\\Seen)", "expected a space"},
             {"INBOX (\\Recent) ", "\\Recent can't be set by a client"},
             {"INBOX \"1-Jan-2024 00:00:00 +0000\" ", "invalid date-time"},
             {"INBOX (\\Seen) x ", "expected the message literal"},
             {"INBOX  ", "expected the message literal"},
             {"INBOX \"17-Jul-1996 02:44:25 -0700\" (\\Seen) ", "expected the message literal"}}) {
        INFO(text);
        CHECK(append(text).error == error);
    }
}

TEST_CASE("APPEND head: RFC 6855's UTF8 data item", "[imap][imap_grammar]") {
    auto r = append("Sent (\\Seen) \"17-Jul-1996 02:44:25 -0700\" UTF8 (");
    REQUIRE(r.value);
    CHECK(r.value->utf8_data);
    CHECK(r.value->flags == std::vector<std::string>{"\\Seen"});
    CHECK(r.at_end);
    CHECK(append("INBOX utf8 (").value->utf8_data);
    CHECK_FALSE(append("INBOX ").value->utf8_data);
    // Once the literal is streamed away its ")" follows the "(".
    auto after = parse("INBOX UTF8 ()", [](Decoder& d) { return parse_append_head(d, false, true); });
    REQUIRE(after.value);
    CHECK(after.value->utf8_data);
    CHECK(parse("INBOX UTF8 (", [](Decoder& d) { return parse_append_head(d, false, true); }).error == "expected ')'");
    for (auto [text, error] : std::vector<std::pair<std::string, std::string>>{
             {"INBOX UTF8 ", "expected '('"},
             {"INBOX UTF8(", "expected a space"},
             {"INBOX UTF8 (x", "expected the message literal"},
             {"INBOX UTF8 () ", "expected the message literal"}}) {
        INFO(text);
        CHECK(append(text).error == error);
    }
}

TEST_CASE("the head and a grammar read one command together", "[imap][imap_grammar]") {
    std::string text = "A7 uid fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject {4}\r\nDate)]) (CHANGEDSINCE 9 VANISHED)";
    Decoder d(text, kLimits);
    auto h = d.head();
    REQUIRE(h);
    CHECK(h->name == "UID FETCH");
    REQUIRE(d.sp());
    auto set = d.sequence_set();
    REQUIRE(set);
    REQUIRE(d.sp());
    auto r = parse_fetch(d, true);
    REQUIRE(r);
    CHECK(r->atts.size() == 2);
    CHECK(r->atts[1].section.fields == std::vector<std::string>{"Subject", "Date"});
    CHECK(r->vanished);
}
