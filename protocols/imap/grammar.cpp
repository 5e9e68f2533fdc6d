// The argument grammars of FETCH, SEARCH, STORE, STATUS, LIST, SELECT/EXAMINE and APPEND (see
// grammar.hpp). Each reads from a Decoder and stops at the first error, which the Decoder keeps.
#include "protocols/imap/grammar.hpp"

#include <algorithm>
#include <initializer_list>

namespace pillarbox::imap {

namespace {

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

bool is_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

// A keyword made of letters, digits, '.' and '-', upper-cased: FETCH's attribute names stop at
// '[' and '<', which atoms don't (RFC 9051 section 9: '[' is an ATOM-CHAR).
std::string keyword(Decoder& d) {
    std::string_view rest = d.rest();
    std::size_t n = 0;
    while (n < rest.size() && is_name_char(rest[n])) ++n;
    std::string word;
    for (std::size_t i = 0; i < n; ++i) word += upper(rest[i]);
    return word;
}

// Takes the keyword that keyword() saw.
void skip(Decoder& d, const std::string& word) { d.skip(word.size()); }

// One of the words, taken; false (and an error) when none is next.
bool take_one_of(Decoder& d, std::initializer_list<std::string_view> words, std::string_view what) {
    for (auto w : words)
        if (d.peek_word(w)) return d.take_word(w);
    d.fail(std::string("expected ") + std::string(what));
    return false;
}

template <typename T>
std::optional<T> bad(Decoder& d, std::string message) {
    d.fail(std::move(message));
    return std::nullopt;
}

bool end_of_command(Decoder& d) {
    if (d.at_end()) return true;
    d.fail("unexpected text after the arguments");
    return false;
}

// "(" item *(SP item) ")" where item(d) reads one and returns false on error. empty_ok: "()" too.
template <typename Item>
bool paren_list(Decoder& d, bool empty_ok, Item item) {
    if (!d.enter_list()) return false;
    if (d.peek(')')) {
        if (!empty_ok) {
            d.fail("empty list");
            return false;
        }
        return d.leave_list();
    }
    for (;;) {
        if (!item()) return false;
        if (d.peek(')')) return d.leave_list();
        if (!d.sp()) return false;
    }
}

// ---- FETCH ----

// section-part = nz-number *("." nz-number); the '.' before a section-text is left in place.
bool section_part(Decoder& d, std::vector<std::uint32_t>& part) {
    for (;;) {
        auto n = d.nz_number();
        if (!n) return false;
        part.push_back(*n);
        std::string_view r = d.rest();
        if (r.size() < 2 || r[0] != '.' || r[1] < '0' || r[1] > '9') return true;
        d.take('.');
    }
}

bool header_list(Decoder& d, std::vector<std::string>& fields) {
    return paren_list(d, false, [&] {
        auto f = d.astring();
        if (!f) return false;
        fields.push_back(std::move(*f));
        return true;
    });
}

// section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"; after a part
// number, section-text adds "MIME" (RFC 9051 section 9: MIME describes a part, not a message).
bool section_text(Decoder& d, Section& s) {
    std::string word = keyword(d);
    using T = Section::Text;
    if (word == "HEADER") s.text = T::Header;
    else if (word == "TEXT") s.text = T::Text;
    else if (word == "MIME" && !s.part.empty()) s.text = T::Mime;
    else if (word == "HEADER.FIELDS") s.text = T::HeaderFields;
    else if (word == "HEADER.FIELDS.NOT") s.text = T::HeaderFieldsNot;
    else {
        d.fail(word.empty() ? "invalid section" : "invalid section " + word);
        return false;
    }
    skip(d, word);
    if (s.text == T::HeaderFields || s.text == T::HeaderFieldsNot) return d.sp() && header_list(d, s.fields);
    return true;
}

// section = "[" [section-spec] "]"; binary: section-binary = "[" [section-part] "]".
std::optional<Section> section(Decoder& d, bool binary) {
    Section s;
    if (!d.take('[')) return std::nullopt;
    if (d.peek(']')) {
        d.take(']');
        return s;
    }
    std::string_view r = d.rest();
    bool digit = !r.empty() && r[0] >= '0' && r[0] <= '9';
    if (digit && !section_part(d, s.part)) return std::nullopt;
    if (binary) {
        if (!digit) return bad<Section>(d, "a BINARY section is part numbers only");
    } else if (!digit || d.peek('.')) {
        if (digit) d.take('.');
        if (!section_text(d, s)) return std::nullopt;
    }
    if (!d.take(']')) return std::nullopt;
    return s;
}

// partial = "<" number64 "." nz-number64 ">" (RFC 9051; RFC 3501 had 32-bit numbers).
bool partial(Decoder& d, FetchAtt& att) {
    if (!d.peek('<')) return true;
    d.take('<');
    auto origin = d.number64();
    if (!origin || !d.take('.')) return false;
    auto length = d.number64();
    if (!length) return false;
    if (*length == 0) {
        d.fail("a partial's length must not be 0");
        return false;
    }
    att.partial = std::make_pair(*origin, *length);
    return d.take('>');
}

std::optional<FetchAtt> fetch_att(Decoder& d) {
    using K = FetchAtt::Kind;
    static const std::pair<std::string_view, K> kSimple[] = {
        {"ENVELOPE", K::Envelope}, {"FLAGS", K::Flags}, {"INTERNALDATE", K::InternalDate},
        {"RFC822", K::Rfc822}, {"RFC822.HEADER", K::Rfc822Header}, {"RFC822.SIZE", K::Rfc822Size},
        {"RFC822.TEXT", K::Rfc822Text}, {"BODYSTRUCTURE", K::BodyStructure}, {"UID", K::Uid},
        {"MODSEQ", K::ModSeq},
    };
    std::string word = keyword(d);
    FetchAtt att;
    for (const auto& [name, kind] : kSimple) {
        if (word == name) {
            skip(d, word);
            att.kind = kind;
            return att;
        }
    }
    bool sectioned = d.rest().size() > word.size() && d.rest()[word.size()] == '[';
    if (word == "BODY" && !sectioned) {
        skip(d, word);
        att.kind = K::Body;
        return att;
    }
    if (word == "BODY" || word == "BODY.PEEK") att.kind = K::BodySection;
    else if (word == "BINARY" || word == "BINARY.PEEK") att.kind = K::Binary;
    else if (word == "BINARY.SIZE") att.kind = K::BinarySize;
    else return bad<FetchAtt>(d, word.empty() ? "expected a fetch attribute" : "unknown fetch attribute " + word);
    if (!sectioned) return bad<FetchAtt>(d, word + " needs a section");
    skip(d, word);
    att.peek = word.ends_with(".PEEK");
    auto s = section(d, att.kind != K::BodySection);
    if (!s) return std::nullopt;
    att.section = std::move(*s);
    // BINARY.SIZE has no partial (RFC 3516 section 6: "BINARY.SIZE" section-binary).
    if (att.kind != K::BinarySize && !partial(d, att)) return std::nullopt;
    return att;
}

bool macro(Decoder& d, std::vector<FetchAtt>& atts) {
    using K = FetchAtt::Kind;
    std::string word = keyword(d);
    std::vector<K> kinds;
    if (word == "FAST") kinds = {K::Flags, K::InternalDate, K::Rfc822Size};
    else if (word == "ALL") kinds = {K::Flags, K::InternalDate, K::Rfc822Size, K::Envelope};
    else if (word == "FULL") kinds = {K::Flags, K::InternalDate, K::Rfc822Size, K::Envelope, K::Body};
    else return false;
    skip(d, word);
    for (K k : kinds) atts.push_back(FetchAtt{k, false, {}, std::nullopt});
    return true;
}

// fetch-modifier (RFC 7162 section 3.1.4.1 CHANGEDSINCE, 3.2.6 VANISHED).
bool fetch_modifiers(Decoder& d, bool uid, FetchRequest& r) {
    bool ok = paren_list(d, false, [&] {
        if (d.peek_word("CHANGEDSINCE")) {
            d.take_word("CHANGEDSINCE");
            if (r.changed_since) {
                d.fail("CHANGEDSINCE given twice");
                return false;
            }
            // mod-sequence-value is positive, but 0 ("everything") is taken too: it asks for
            // nothing a client could misread.
            if (!d.sp()) return false;
            auto v = d.number64();
            if (v) r.changed_since = *v;
            return v.has_value();
        }
        if (d.peek_word("VANISHED")) {
            d.take_word("VANISHED");
            if (!uid) {
                // RFC 7162 section 3.2.6: VANISHED with FETCH (not UID FETCH) is BAD.
                d.fail("VANISHED is for UID FETCH only");
                return false;
            }
            r.vanished = true;
            return true;
        }
        d.fail("unknown FETCH modifier");
        return false;
    });
    if (ok && r.vanished && !r.changed_since) {
        // RFC 7162 section 3.2.6: VANISHED only together with CHANGEDSINCE.
        d.fail("VANISHED needs CHANGEDSINCE");
        return false;
    }
    return ok;
}

// ---- SEARCH ----

std::optional<SearchKey> search_key(Decoder& d);

std::optional<SearchKey> key_list(Decoder& d) {
    SearchKey k;
    k.kind = SearchKey::Kind::And;
    bool ok = paren_list(d, false, [&] {
        auto child = search_key(d);
        if (child) k.children.push_back(std::move(*child));
        return child.has_value();
    });
    if (!ok) return std::nullopt;
    return k;
}

// NOT and OR nest without parentheses; the depth limit holds for them too, or a long run of
// "NOT NOT NOT ..." would recurse as deep as the command is long.
std::optional<SearchKey> nested_keys(Decoder& d, SearchKey::Kind kind, int count) {
    if (!d.nest()) return std::nullopt;
    SearchKey k;
    k.kind = kind;
    for (int i = 0; i < count; ++i) {
        std::optional<SearchKey> child;
        if (d.sp()) child = search_key(d);
        if (!child) break;
        k.children.push_back(std::move(*child));
    }
    d.unnest();
    if (k.children.size() != static_cast<std::size_t>(count)) return std::nullopt;
    return k;
}

// RFC 7162 section 3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer,
// with entry-name = DQUOTE "/flags/" attr-flag DQUOTE. The entry is accepted and ignored: this
// server keeps no per-flag mod-sequences, so the message's own one answers for every flag.
std::optional<SearchKey> modseq_key(Decoder& d) {
    SearchKey k;
    k.kind = SearchKey::Kind::ModSeq;
    if (!d.sp()) return std::nullopt;
    if (d.peek('"')) {
        auto entry = d.string();
        if (!entry) return std::nullopt;
        if (entry->size() <= 7 || !std::equal(entry->begin(), entry->begin() + 7, "/flags/",
                                               [](char a, char b) { return upper(a) == upper(b); }))
            return bad<SearchKey>(d, "invalid MODSEQ entry name");
        if (!d.sp()) return std::nullopt;
        if (!take_one_of(d, {"PRIV", "SHARED", "ALL"}, "priv, shared or all")) return std::nullopt;
        if (!d.sp()) return std::nullopt;
    }
    auto v = d.number64();
    if (!v) return std::nullopt;
    k.number = *v;
    return k;
}

std::optional<SearchKey> search_key(Decoder& d) {
    using K = SearchKey::Kind;
    SearchKey k;
    std::string_view r = d.rest();
    if (r.empty()) return bad<SearchKey>(d, "expected a search key");
    if (r[0] == '(') return key_list(d);
    if ((r[0] >= '0' && r[0] <= '9') || r[0] == '*' || r[0] == '$') {
        auto set = d.sequence_set();
        if (!set) return std::nullopt;
        k.kind = K::SequenceSet;
        k.set = std::move(*set);
        return k;
    }
    if (keyword(d).empty()) return bad<SearchKey>(d, "expected a search key");
    auto word_opt = d.atom();
    if (!word_opt) return std::nullopt;
    std::string word;
    for (char c : *word_opt) word += upper(c);

    static const std::pair<std::string_view, K> kPlain[] = {
        {"ALL", K::All}, {"ANSWERED", K::Answered}, {"DELETED", K::Deleted}, {"DRAFT", K::Draft},
        {"FLAGGED", K::Flagged}, {"SEEN", K::Seen}, {"RECENT", K::Recent}, {"NEW", K::New}, {"OLD", K::Old},
        {"UNANSWERED", K::Unanswered}, {"UNDELETED", K::Undeleted}, {"UNDRAFT", K::Undraft},
        {"UNFLAGGED", K::Unflagged}, {"UNSEEN", K::Unseen},
    };
    static const std::pair<std::string_view, K> kText[] = {
        {"BCC", K::Bcc}, {"CC", K::Cc}, {"FROM", K::From}, {"SUBJECT", K::Subject},
        {"TO", K::To}, {"BODY", K::Body}, {"TEXT", K::Text},
    };
    static const std::pair<std::string_view, K> kDate[] = {
        {"BEFORE", K::Before}, {"ON", K::On}, {"SINCE", K::Since},
        {"SENTBEFORE", K::SentBefore}, {"SENTON", K::SentOn}, {"SENTSINCE", K::SentSince},
    };
    for (const auto& [name, kind] : kPlain)
        if (word == name) {
            k.kind = kind;
            return k;
        }
    for (const auto& [name, kind] : kText)
        if (word == name) {
            k.kind = kind;
            auto s = d.sp() ? d.astring() : std::nullopt;
            if (!s) return std::nullopt;
            k.text = std::move(*s);
            return k;
        }
    for (const auto& [name, kind] : kDate)
        if (word == name) {
            k.kind = kind;
            auto date = d.sp() ? d.date() : std::nullopt;
            if (!date) return std::nullopt;
            k.date = *date;
            return k;
        }
    if (word == "KEYWORD" || word == "UNKEYWORD") {
        // flag-keyword = atom (RFC 3501; RFC 9051's named keywords are atoms as well).
        k.kind = word == "KEYWORD" ? K::Keyword : K::Unkeyword;
        auto a = d.sp() ? d.atom() : std::nullopt;
        if (!a) return std::nullopt;
        k.text = std::move(*a);
        return k;
    }
    if (word == "HEADER") {
        k.kind = K::Header;
        auto field = d.sp() ? d.astring() : std::nullopt;
        if (!field) return std::nullopt;
        auto value = d.sp() ? d.astring() : std::nullopt;
        if (!value) return std::nullopt;
        k.header = std::move(*field);
        k.text = std::move(*value);
        return k;
    }
    if (word == "LARGER" || word == "SMALLER") {
        k.kind = word == "LARGER" ? K::Larger : K::Smaller;
        auto n = d.sp() ? d.number64() : std::nullopt;
        if (!n) return std::nullopt;
        k.number = *n;
        return k;
    }
    if (word == "UID") {
        k.kind = K::Uid;
        auto set = d.sp() ? d.sequence_set() : std::nullopt;
        if (!set) return std::nullopt;
        k.set = std::move(*set);
        return k;
    }
    if (word == "NOT") return nested_keys(d, K::Not, 1);
    if (word == "OR") return nested_keys(d, K::Or, 2);
    if (word == "MODSEQ") return modseq_key(d);
    return bad<SearchKey>(d, "unknown search key " + word);
}

// RFC 4731 section 3: search-return-opt = "MIN" / "MAX" / "ALL" / "COUNT"; RFC 5182: "SAVE".
bool search_return(Decoder& d, SearchRequest& r) {
    r.esearch = true;
    if (!d.take_word("RETURN") || !d.sp()) return false;
    bool ok = paren_list(d, true, [&] {
        std::string word = keyword(d);
        bool* opt = word == "MIN" ? &r.min : word == "MAX" ? &r.max : word == "ALL" ? &r.all
                  : word == "COUNT" ? &r.count : word == "SAVE" ? &r.save : nullptr;
        if (!opt) {
            d.fail(word.empty() ? "expected a RETURN option" : "unknown RETURN option " + word);
            return false;
        }
        skip(d, word);
        *opt = true;
        return true;
    });
    // RFC 4731 section 3.1: an empty list is the same as (ALL).
    if (ok && !r.min && !r.max && !r.all && !r.count && !r.save) r.all = true;
    return ok && d.sp();
}

// ---- STATUS ----

std::optional<StatusItem> status_item(Decoder& d) {
    static const std::pair<std::string_view, StatusItem> kItems[] = {
        {"MESSAGES", StatusItem::Messages}, {"RECENT", StatusItem::Recent}, {"UIDNEXT", StatusItem::UidNext},
        {"UIDVALIDITY", StatusItem::UidValidity}, {"UNSEEN", StatusItem::Unseen}, {"DELETED", StatusItem::Deleted},
        {"SIZE", StatusItem::Size}, {"HIGHESTMODSEQ", StatusItem::HighestModSeq},
    };
    std::string word = keyword(d);
    for (const auto& [name, item] : kItems)
        if (word == name) {
            skip(d, word);
            return item;
        }
    return bad<StatusItem>(d, word.empty() ? "expected a status item" : "unknown status item " + word);
}

// ---- LIST ----

// RFC 5258 section 3 (and RFC 6154 section 3 for SPECIAL-USE): an unknown selection option is BAD.
bool list_selection(Decoder& d, ListRequest& r) {
    bool ok = paren_list(d, true, [&] {
        std::string word = keyword(d);
        bool* opt = word == "SUBSCRIBED" ? &r.subscribed : word == "REMOTE" ? &r.remote
                  : word == "RECURSIVEMATCH" ? &r.recursive_match : word == "SPECIAL-USE" ? &r.special_use : nullptr;
        if (!opt) {
            d.fail(word.empty() ? "expected a selection option" : "unknown selection option " + word);
            return false;
        }
        skip(d, word);
        *opt = true;
        return true;
    });
    // RFC 5258 section 3: RECURSIVEMATCH modifies a base option (SUBSCRIBED, or SPECIAL-USE by
    // RFC 6154); alone, or with the independent REMOTE only, it is BAD.
    if (ok && r.recursive_match && !r.subscribed && !r.special_use) {
        d.fail("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE");
        return false;
    }
    return ok;
}

bool list_return(Decoder& d, ListRequest& r) {
    if (!d.take_word("RETURN") || !d.sp()) return false;
    return paren_list(d, true, [&] {
        std::string word = keyword(d);
        if (word == "STATUS") {
            skip(d, word);
            if (r.return_status) {
                d.fail("STATUS given twice");
                return false;
            }
            if (!d.sp()) return false;
            auto items = parse_status_items(d);
            if (items) r.return_status = std::move(*items);
            return items.has_value();
        }
        bool* opt = word == "SUBSCRIBED" ? &r.return_subscribed : word == "CHILDREN" ? &r.return_children
                  : word == "SPECIAL-USE" ? &r.return_special_use : nullptr;
        if (!opt) {
            d.fail(word.empty() ? "expected a return option" : "unknown return option " + word);
            return false;
        }
        skip(d, word);
        *opt = true;
        return true;
    });
}

// ---- SELECT ----

// A set of known UIDs or message numbers (RFC 7162 section 3.2.5): "*" is not allowed, and
// neither is "$", which only SEARCH results are.
std::optional<SequenceSet> known_set(Decoder& d) {
    auto set = d.sequence_set();
    if (!set) return std::nullopt;
    bool star = std::any_of(set->ranges.begin(), set->ranges.end(), [](const SequenceSet::Range& r) {
        return r.first == SequenceSet::kStar || r.last == SequenceSet::kStar;
    });
    if (star || set->saved) return bad<SequenceSet>(d, "'*' and '$' are not allowed in QRESYNC's sets");
    return set;
}

// "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
bool qresync(Decoder& d, SelectRequest& r) {
    if (r.qresync) {
        d.fail("QRESYNC given twice");
        return false;
    }
    if (!d.sp() || !d.enter_list()) return false;
    SelectRequest::Qresync q;
    auto uidvalidity = d.nz_number();
    if (!uidvalidity) return false;
    q.uidvalidity = *uidvalidity;
    auto modseq = d.sp() ? d.number64() : std::nullopt;
    if (!modseq) return false;
    q.modseq = *modseq;
    if (d.peek(' ') && !d.rest().starts_with(" (")) {
        d.sp();
        auto known = known_set(d);
        if (!known) return false;
        q.known_uids = std::move(*known);
    }
    if (d.peek(' ')) {
        // seq-match-data = "(" known-sequence-set SP known-uid-set ")"
        if (!d.sp() || !d.enter_list()) return false;
        auto seqs = known_set(d);
        if (!seqs || !d.sp()) return false;
        auto uids = known_set(d);
        if (!uids || !d.leave_list()) return false;
        q.seq_match = std::make_pair(std::move(*seqs), std::move(*uids));
    }
    if (!d.leave_list()) return false;
    r.qresync = std::move(q);
    return true;
}

}  // namespace

// ---- the grammars ----

std::optional<FetchRequest> parse_fetch(Decoder& d, bool uid) {
    FetchRequest r;
    if (d.peek('(')) {
        bool ok = paren_list(d, false, [&] {
            auto att = fetch_att(d);
            if (att) r.atts.push_back(std::move(*att));
            return att.has_value();
        });
        if (!ok) return std::nullopt;
    } else if (!macro(d, r.atts)) {
        auto att = fetch_att(d);
        if (!att) return std::nullopt;
        r.atts.push_back(std::move(*att));
    }
    if (d.peek(' ')) {
        d.sp();
        if (!fetch_modifiers(d, uid, r)) return std::nullopt;
    }
    if (!end_of_command(d)) return std::nullopt;
    return r;
}

std::optional<SearchRequest> parse_search(Decoder& d) {
    SearchRequest r;
    if (d.peek_word("RETURN") && !search_return(d, r)) return std::nullopt;
    if (d.peek_word("CHARSET")) {
        d.take_word("CHARSET");
        auto charset = d.sp() ? d.astring() : std::nullopt;
        if (!charset || !d.sp()) return std::nullopt;
        for (char c : *charset) r.charset += upper(c);
    }
    r.key.kind = SearchKey::Kind::And;
    for (;;) {
        auto key = search_key(d);
        if (!key) return std::nullopt;
        r.key.children.push_back(std::move(*key));
        if (d.at_end()) return r;
        if (!d.sp()) return std::nullopt;
    }
}

std::optional<StoreRequest> parse_store(Decoder& d) {
    StoreRequest r;
    auto set = d.sequence_set();
    if (!set || !d.sp()) return std::nullopt;
    r.set = std::move(*set);
    if (d.peek('(')) {
        // store-modifiers (RFC 7162 section 3.1.3): UNCHANGEDSINCE is the only one known.
        bool ok = paren_list(d, false, [&] {
            if (!d.take_word("UNCHANGEDSINCE") || !d.sp()) return false;
            if (r.unchanged_since) {
                d.fail("UNCHANGEDSINCE given twice");
                return false;
            }
            auto v = d.number64();  // mod-sequence-valzer: 0 is allowed
            if (v) r.unchanged_since = *v;
            return v.has_value();
        });
        if (!ok || !d.sp()) return std::nullopt;
    }
    if (d.peek('+') || d.peek('-')) {
        r.op = d.peek('+') ? StoreRequest::Op::Add : StoreRequest::Op::Remove;
        d.take(d.peek('+') ? '+' : '-');
    }
    std::string word = keyword(d);
    if (word != "FLAGS" && word != "FLAGS.SILENT")
        return bad<StoreRequest>(d, "expected FLAGS, +FLAGS or -FLAGS");
    skip(d, word);
    r.silent = word == "FLAGS.SILENT";
    if (!d.sp()) return std::nullopt;
    if (d.peek('(')) {
        auto flags = d.flag_list();
        if (!flags) return std::nullopt;
        r.flags = std::move(*flags);
    } else {
        // RFC 9051 section 9: store-att-flags takes flag-list or 1*flag separated by SP.
        for (;;) {
            auto f = d.flag();
            if (!f) return std::nullopt;
            r.flags.push_back(std::move(*f));
            if (!d.peek(' ')) break;
            d.sp();
        }
    }
    if (!end_of_command(d)) return std::nullopt;
    return r;
}

std::optional<std::vector<StatusItem>> parse_status_items(Decoder& d) {
    std::vector<StatusItem> items;
    bool ok = paren_list(d, false, [&] {
        auto item = status_item(d);
        if (item) items.push_back(*item);
        return item.has_value();
    });
    if (!ok) return std::nullopt;
    return items;
}

std::optional<ListRequest> parse_list(Decoder& d, bool utf8) {
    ListRequest r;
    if (d.peek('(')) {
        r.extended = true;
        if (!list_selection(d, r) || !d.sp()) return std::nullopt;
    }
    auto reference = d.mailbox(utf8);
    if (!reference || !d.sp()) return std::nullopt;
    r.reference = std::move(*reference);
    if (d.peek('(')) {
        // RFC 5258 section 3: several patterns in a list are LIST-EXTENDED syntax as well.
        r.extended = true;
        bool ok = paren_list(d, false, [&] {
            auto p = d.list_mailbox(utf8);
            if (p) r.patterns.push_back(std::move(*p));
            return p.has_value();
        });
        if (!ok) return std::nullopt;
    } else {
        auto p = d.list_mailbox(utf8);
        if (!p) return std::nullopt;
        r.patterns.push_back(std::move(*p));
    }
    if (d.peek(' ')) {
        d.sp();
        r.extended = true;
        if (!list_return(d, r)) return std::nullopt;
    }
    if (!end_of_command(d)) return std::nullopt;
    return r;
}

std::optional<SelectRequest> parse_select(Decoder& d, bool utf8) {
    SelectRequest r;
    auto mailbox = d.mailbox(utf8);
    if (!mailbox) return std::nullopt;
    r.mailbox = std::move(*mailbox);
    if (d.peek(' ')) {
        d.sp();
        bool ok = paren_list(d, false, [&] {
            if (d.peek_word("CONDSTORE")) {
                r.condstore = true;
                return d.take_word("CONDSTORE");
            }
            if (d.peek_word("QRESYNC")) return d.take_word("QRESYNC") && qresync(d, r);
            d.fail("unknown SELECT parameter");
            return false;
        });
        if (!ok) return std::nullopt;
    }
    if (!end_of_command(d)) return std::nullopt;
    return r;
}

std::optional<AppendHead> parse_append_head(Decoder& d, bool utf8, bool message_read) {
    AppendHead h;
    auto mailbox = d.mailbox(utf8);
    if (!mailbox || !d.sp()) return std::nullopt;
    h.mailbox = std::move(*mailbox);
    if (d.peek('(')) {
        auto flags = d.flag_list();
        if (!flags || !d.sp()) return std::nullopt;
        h.flags = std::move(*flags);
    }
    if (d.peek('"')) {
        auto when = d.date_time();
        if (!when || !d.sp()) return std::nullopt;
        h.date_time = *when;
    }
    // RFC 6855 section 4: append-data =/ "UTF8" SP "(" literal8 ")".
    if (d.peek_word("UTF8")) {
        d.take_word("UTF8");
        if (!d.sp() || !d.take('(')) return bad<AppendHead>(d, "expected UTF8 (literal8)");
        if (message_read && !d.take(')')) return bad<AppendHead>(d, "expected ) after the UTF8 message");
        h.utf8_data = true;
    }
    if (!d.at_end()) return bad<AppendHead>(d, "expected the message literal");
    return h;
}

}  // namespace pillarbox::imap
