// The dovecot-keywords file: which IMAP keyword each Maildir flag letter a..z stands for, in
// Dovecot's format ("N name" lines, N = 0 for 'a' … 25 for 'z'). Text in, text out; the caller
// reads and replaces the file under the maildir's lock.
#pragma once
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::storage::maildir {

inline constexpr int kMaxKeywordLetters = 26;

// RFC 9051 flag-keyword: an atom (printable ASCII except ( ) { SP % * " \ ]), so never a
// "\System" flag. The file's line format also relies on this (no space, no newline).
bool is_valid_keyword(std::string_view keyword);

char keyword_letter(int index);                // 0 → 'a'; index must be 0..25
std::optional<int> keyword_index(char letter);  // 'a' → 0; nullopt outside a..z

struct KeywordTable {
    std::array<std::string, kMaxKeywordLetters> names;  // empty = letter free

    // Keywords compare ASCII case-insensitively, as in Dovecot. With the same keyword under two
    // letters (a damaged file), the lowest letter is returned; both letters still read as it.
    std::optional<int> find(std::string_view keyword) const;
    std::optional<std::string_view> name_for_letter(char letter) const;
    int count() const;
    bool full() const { return count() == kMaxKeywordLetters; }
    bool operator==(const KeywordTable&) const = default;
};

struct ParsedKeywords {
    KeywordTable table;
    std::vector<std::string> problems;  // "line N: …", for the log; parsing never fails
};

// Tolerant like Dovecot: lines without "N name", indexes past 25 and empty names are skipped;
// a repeated index takes the later line. Names that are not valid keywords are kept so their
// letter is not handed out again, but the IMAP layer must not show them (is_valid_keyword).
ParsedKeywords parse_keywords(std::string_view text);

// "N name\n" in index order; names that cannot be written on one line are left out.
std::string format_keywords(const KeywordTable& table);

enum class AssignStatus {
    kExisting,  // already had a letter
    kAdded,     // took the lowest free letter; the caller must write the file before using it
    kFull,      // all 26 letters taken: keep this keyword in the index only
    kInvalid,   // not a keyword atom
};
struct Assignment {
    AssignStatus status;
    int index = -1;  // valid for kExisting and kAdded
};

// The letter for a keyword, adding it when new. $Forwarded is the caller's to map to 'P'
// (filename.hpp) before asking here; it is an ordinary keyword to this table.
Assignment assign_keyword(KeywordTable& table, std::string_view keyword);

}  // namespace pillarbox::storage::maildir
