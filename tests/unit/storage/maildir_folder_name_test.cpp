// Modified UTF-7 and mailbox name ↔ Maildir++ directory mapping.
#include <catch2/catch.hpp>

#include "storage/maildir/folder_name.hpp"

using namespace pillarbox::storage::maildir;

namespace {
std::string enc(std::string_view s) {
    auto r = mutf7_encode(s);
    REQUIRE(r);
    return *r;
}
std::string dec(std::string_view s) {
    auto r = mutf7_decode(s);
    REQUIRE(r);
    return *r;
}
std::string dir(std::string_view name, char sep = '/') {
    auto r = mailbox_to_folder_dir(name, sep);
    INFO(r.error);
    REQUIRE(r);
    return *r.value;
}
}  // namespace

TEST_CASE("modified UTF-7 matches the RFC 3501 example") {
    CHECK(enc("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
    CHECK(dec("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語");
}

TEST_CASE("modified UTF-7 matches RFC 2152 examples in IMAP form") {
    CHECK(enc("日本語") == "&ZeVnLIqe-");
    CHECK(enc("Hi Mom -☺-!") == "Hi Mom -&Jjo--!");
    CHECK(dec("Hi Mom -&Jjo--!") == "Hi Mom -☺-!");
    CHECK(enc("A≢Α.") == "A&ImIDkQ-.");
    CHECK(dec("A&ImIDkQ-.") == "A≢Α.");
}

TEST_CASE("modified UTF-7 writes & as &- and leaves printable ASCII alone") {
    CHECK(enc("&") == "&-");
    CHECK(enc("Tom & Jerry") == "Tom &- Jerry");
    CHECK(dec("Tom &- Jerry") == "Tom & Jerry");
    CHECK(enc(" !\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~") == " !\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~");
    CHECK(enc("") == "");
    CHECK(dec("") == "");
    CHECK(dec("&-&-") == "&&");
}

TEST_CASE("modified UTF-7 encodes control characters and non-BMP code points") {
    CHECK(enc("\t") == "&AAk-");
    CHECK(dec("&AAk-") == "\t");
    CHECK(enc("\x7f") == "&AH8-");
    CHECK(enc("😀") == "&2D3eAA-");  // U+1F600 as the surrogate pair D83D DE00
    CHECK(dec("&2D3eAA-") == "😀");
    CHECK(enc("é€😀") == "&AOkgrNg93gA-");
    CHECK(dec("&AOkgrNg93gA-") == "é€😀");
}

TEST_CASE("modified UTF-7 encoding refuses invalid UTF-8") {
    CHECK_FALSE(mutf7_encode("\xff"));
    CHECK_FALSE(mutf7_encode("\xc3"));                  // truncated
    CHECK_FALSE(mutf7_encode("\xc0\xaf"));              // overlong '/'
    CHECK_FALSE(mutf7_encode("\xe0\x80\xaf"));          // overlong
    CHECK_FALSE(mutf7_encode("\xed\xa0\x80"));          // UTF-8-encoded surrogate
    CHECK_FALSE(mutf7_encode("\xf4\x90\x80\x80"));      // past U+10FFFF
    CHECK_FALSE(mutf7_encode("a\x80z"));                // stray continuation byte
}

TEST_CASE("modified UTF-7 decoding refuses everything but the canonical spelling") {
    CHECK_FALSE(mutf7_decode("&"));            // shift without end
    CHECK_FALSE(mutf7_decode("&ZeVnLIqe"));    // missing '-'
    CHECK_FALSE(mutf7_decode("&Ze/nLIqe-"));   // '/' is RFC 2152 base64, not IMAP's
    CHECK_FALSE(mutf7_decode("&ZeVnLIqe=-"));  // padding
    CHECK_FALSE(mutf7_decode("&ZeV-"));        // non-zero padding bits ("&ZeU-" is 日)
    CHECK_FALSE(mutf7_decode("&AA-"));         // 12 bits: not even one character
    CHECK_FALSE(mutf7_decode("&AOkA-"));       // a whole base64 character too many
    CHECK_FALSE(mutf7_decode("&AGE-"));        // 'a' must stand for itself
    CHECK_FALSE(mutf7_decode("&ACY-"));        // '&' must be &-
    CHECK_FALSE(mutf7_decode("&2D0-"));        // lone high surrogate
    CHECK_FALSE(mutf7_decode("&3gA-"));        // lone low surrogate
    CHECK_FALSE(mutf7_decode("&2D3YPQ-"));     // high surrogate followed by a high surrogate
    CHECK_FALSE(mutf7_decode("&2D0-&3gA-"));   // a pair split over two runs
    CHECK_FALSE(mutf7_decode("&ZeU-&Zyw-"));   // two runs back to back
    CHECK_FALSE(mutf7_decode("caf\xc3\xa9"));  // raw 8-bit
    CHECK_FALSE(mutf7_decode("a\tb"));         // raw control character
    CHECK(dec("&ZeU-x&Zyw-") == "日x本");       // runs separated by a direct character are fine
    CHECK(dec("&ZeU-&-") == "日&");
}

TEST_CASE("modified UTF-7 round-trips assorted text") {
    for (const char* s : {"INBOX", "Entwürfe", "Корзина", "送信済み", "a&b&&c", "mixed 日本 text ☺", "\x01\x1f", "😀😀x😀"}) {
        INFO(s);
        CHECK(dec(enc(s)) == s);
    }
}

TEST_CASE("INBOX is the root maildir, in any case") {
    CHECK(dir("INBOX") == "");
    CHECK(dir("inbox") == "");
    CHECK(dir("InBoX", '.') == "");
    CHECK(is_inbox("iNbOx"));
    CHECK_FALSE(is_inbox("INBOX2"));
    CHECK(normalize_mailbox_name("inbox") == "INBOX");
    CHECK(normalize_mailbox_name("Inbox/Sub") == "INBOX/Sub");
    CHECK(normalize_mailbox_name("Inbox.Sub", '.') == "INBOX.Sub");
    CHECK(normalize_mailbox_name("Inboxes") == "Inboxes");
    CHECK(normalize_mailbox_name("Inbox.Sub", '/') == "Inbox.Sub");
}

TEST_CASE("folders map to Maildir++ directories like Dovecot's") {
    CHECK(dir("Sent") == ".Sent");
    CHECK(dir("Work/2024") == ".Work.2024");
    CHECK(dir("inbox/Sub") == ".INBOX.Sub");
    CHECK(dir("Work.2024", '.') == ".Work.2024");
    CHECK(dir("台北") == ".&U,BTFw-");
    CHECK(dir("~peter/mail/台北/日本語") == ".\\7epeter.mail.&U,BTFw-.&ZeVnLIqe-");
    CHECK(dir("Tom & Jerry") == ".Tom &- Jerry");
}

TEST_CASE("with separator '/', a dot inside a name is escaped as listescape does") {
    CHECK(dir("v1.2") == ".v1\\2e2");
    CHECK(dir("a.b/c") == ".a\\2eb.c");
    CHECK(dir("back\\slash") == ".back\\5cslash");
    CHECK(dir("a~b") == ".a~b");
    CHECK(folder_dir_to_mailbox(".v1\\2e2") == "v1.2");
    CHECK(folder_dir_to_mailbox(".a\\2eb.c") == "a.b/c");
}

TEST_CASE("with separator '.', a slash inside a name is escaped") {
    CHECK(dir("a/b", '.') == ".a\\2fb");
    CHECK(folder_dir_to_mailbox(".a\\2fb", '.') == "a/b");
    CHECK(folder_dir_to_mailbox(".a.b", '.') == "a.b");
}

TEST_CASE("directories map back to mailbox names") {
    CHECK(folder_dir_to_mailbox(".Sent") == "Sent");
    CHECK(folder_dir_to_mailbox(".Work.2024") == "Work/2024");
    CHECK(folder_dir_to_mailbox(".INBOX.Sub") == "INBOX/Sub");
    CHECK(folder_dir_to_mailbox(".&U,BTFw-.&ZeVnLIqe-") == "台北/日本語");
    CHECK(folder_dir_to_mailbox(".\\7epeter") == "~peter");
}

TEST_CASE("root entries that are not folders map to nothing") {
    for (const char* e : {"", ".", "..", "cur", "new", "tmp", "dovecot-uidlist", "dovecot-keywords", "maildirsize", "subscriptions"}) {
        INFO(e);
        CHECK_FALSE(folder_dir_to_mailbox(e));
    }
}

TEST_CASE("directories that are not in canonical form are refused so names stay one-to-one") {
    CHECK_FALSE(folder_dir_to_mailbox(".INBOX"));        // would shadow the root
    CHECK_FALSE(folder_dir_to_mailbox(".inbox"));
    CHECK_FALSE(folder_dir_to_mailbox(".inbox.Sub"));    // INBOX/Sub is .INBOX.Sub
    CHECK_FALSE(folder_dir_to_mailbox("..Sent"));        // empty level
    CHECK_FALSE(folder_dir_to_mailbox(".Sent."));
    CHECK_FALSE(folder_dir_to_mailbox(".a..b"));
    CHECK_FALSE(folder_dir_to_mailbox(".v1\\2E2"));      // upper-case escape
    CHECK_FALSE(folder_dir_to_mailbox(".\\41bc"));       // needless escape of 'A'
    CHECK_FALSE(folder_dir_to_mailbox(".a\\2fb"));       // '/' inside a level under separator '/'
    CHECK_FALSE(folder_dir_to_mailbox(".a\\2"));         // truncated escape
    CHECK_FALSE(folder_dir_to_mailbox(".a\\zz"));
    CHECK_FALSE(folder_dir_to_mailbox(".caf\xc3\xa9"));  // raw UTF-8 from another tool
    CHECK_FALSE(folder_dir_to_mailbox(".&ZeV-"));        // bad mUTF-7
    CHECK_FALSE(folder_dir_to_mailbox(".~peter"));       // leading '~' is written escaped
    CHECK_FALSE(folder_dir_to_mailbox(".\\2e\\2e"));     // ".." as a level
    CHECK(folder_dir_to_mailbox(".a\\2e\\2e") == "a..");
    CHECK_FALSE(folder_dir_to_mailbox(".Sent", '|'));    // unsupported separator
}

TEST_CASE("invalid mailbox names are refused with a reason") {
    CHECK_FALSE(mailbox_name_error("Sent"));
    CHECK_FALSE(mailbox_name_error("a/b/c"));
    CHECK_FALSE(mailbox_name_error("v1.2"));
    CHECK_FALSE(mailbox_name_error("日本語"));
    CHECK_THAT(*mailbox_name_error(""), Catch::Contains("empty"));
    CHECK_THAT(*mailbox_name_error("/Sent"), Catch::Contains("separator"));
    CHECK_THAT(*mailbox_name_error("Sent/"), Catch::Contains("separator"));
    CHECK_THAT(*mailbox_name_error(".Sent", '.'), Catch::Contains("separator"));
    CHECK_THAT(*mailbox_name_error("a//b"), Catch::Contains("empty hierarchy level"));
    CHECK_THAT(*mailbox_name_error("a..b", '.'), Catch::Contains("empty hierarchy level"));
    CHECK(mailbox_name_error(".."));
    CHECK(mailbox_name_error("a/../b"));
    CHECK(mailbox_name_error("a/."));
    CHECK_THAT(*mailbox_name_error(std::string("a\0b", 3)), Catch::Contains("control"));
    CHECK(mailbox_name_error("a\nb"));
    CHECK(mailbox_name_error("a\x7f"));
    CHECK(mailbox_name_error("a\xc2\x85"));  // U+0085, a C1 control
    CHECK_THAT(*mailbox_name_error("caf\xe9"), Catch::Contains("UTF-8"));
    CHECK(mailbox_name_error("a*"));
    CHECK(mailbox_name_error("a%b"));
    CHECK(mailbox_name_error("Sent", '|'));
    CHECK_FALSE(mailbox_to_folder_dir("a/../b"));
    CHECK_FALSE(mailbox_to_folder_dir(""));
}

TEST_CASE("directory names never leave the Maildir root") {
    for (const char* name : {"..", "a/..", "../x", "a/b", "x.y", "\\2f", "~root", "a\\b/c"}) {
        auto d = mailbox_to_folder_dir(name, '/');
        if (!d) continue;
        INFO(name);
        CHECK(d.value->find('/') == std::string::npos);
        CHECK(d.value->front() == '.');
        CHECK(*d.value != ".");
        CHECK(*d.value != "..");
    }
    for (const char* name : {"a/b", "a.b/c"}) {
        auto d = mailbox_to_folder_dir(name, '.');
        REQUIRE(d);
        CHECK(d.value->find('/') == std::string::npos);
    }
}

TEST_CASE("over-long names are refused") {
    CHECK(mailbox_to_folder_dir(std::string(254, 'a')));
    CHECK_FALSE(mailbox_to_folder_dir(std::string(255, 'a')));
    CHECK_THAT(mailbox_to_folder_dir(std::string(300, 'a')).error, Catch::Contains("too long"));
    CHECK_FALSE(folder_dir_to_mailbox("." + std::string(255, 'a')));
}

TEST_CASE("names and directories round-trip with either separator") {
    for (char sep : {'/', '.'}) {
        for (std::string name : {"Sent", "Archive/2023/Q1", "Entwürfe", "日本語/台北", "Tom & Jerry", "~x/~y", "a\\b", "INBOX/x"}) {
            if (sep == '.')
                for (auto& c : name)
                    if (c == '/') c = '.';
            INFO(name << " sep " << sep);
            auto d = mailbox_to_folder_dir(name, sep);
            REQUIRE(d);
            CHECK(folder_dir_to_mailbox(*d.value, sep) == name);
        }
    }
}
