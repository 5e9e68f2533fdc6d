// Maildir message file names as Dovecot, mutt and other Maildir tools write them: unique base
// names, and the parts of BASE[,KEY=VALUE...][:2,FLAGS] (sizes, our persisted UID, flag letters).
// Pure functions: the caller supplies time, pid and hostname, and does the renames.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pillarbox::storage::maildir {

// ':' per the Maildir spec. Dovecot can be set to ';' for file systems that refuse ':' in names;
// every function that splits or writes the info part takes the separator for that reason.
inline constexpr char kInfoSeparator = ':';
inline constexpr char kAltInfoSeparator = ';';

// NAME_MAX on Linux: no longer name can exist in a directory, so the parser refuses it outright.
inline constexpr std::size_t kMaxFileNameLength = 255;

// Inputs that make a base name unique: secs+usecs order deliveries, pid separates processes on
// one host, counter separates deliveries in one process within the same microsecond.
struct UniqueSource {
    std::uint64_t secs = 0;
    std::uint32_t usecs = 0;  // 0..999999; larger values carry into secs
    std::uint64_t pid = 0;
    std::uint64_t counter = 0;
    std::string_view hostname;
};

// Hostname as it may appear in a base name: '/' and ':' become \057 and \072 (Maildir spec); we
// also write ',' as \054 and ';' as \073 because those end the base for our parser. Empty gives
// "localhost".
std::string escape_hostname(std::string_view hostname);

// "<secs>.M<usecs>P<pid>Q<counter>.<hostname>", Dovecot's shape.
std::string generate_base_name(const UniqueSource& source);

// IMAP system flags as a bit set. \Recent is absent: it is per session and never stored.
using SystemFlags = std::uint8_t;
namespace system_flag {
inline constexpr SystemFlags kSeen = 1u << 0;
inline constexpr SystemFlags kAnswered = 1u << 1;
inline constexpr SystemFlags kFlagged = 1u << 2;
inline constexpr SystemFlags kDeleted = 1u << 3;
inline constexpr SystemFlags kDraft = 1u << 4;
}  // namespace system_flag

// The standard Maildir letters: D \Draft, F \Flagged, P $Forwarded (a keyword in IMAP, a letter
// in Maildir), R \Answered, S \Seen, T \Deleted. IMAP flag names compare case-insensitively.
std::optional<char> letter_for_imap_flag(std::string_view imap_flag);
std::optional<std::string_view> imap_flag_for_letter(char letter);
SystemFlags system_flags_from_letters(std::string_view letters);
std::string letters_for_system_flags(SystemFlags flags);  // ASCII order

// Letters sorted in ASCII order, each once, as the Maildir spec requires.
std::string normalize_flags(std::string_view letters);

enum class InfoKind {
    kNone,          // no separator (usual in new/)
    kFlags,         // ":2,FLAGS"
    kExperimental,  // ":1,..." kept verbatim
    kUnknown,       // anything else after the separator, kept verbatim
};

struct FileName {
    std::string base;
    std::optional<std::uint64_t> size;   // ,S= physical size (Dovecot)
    std::optional<std::uint64_t> vsize;  // ,W= size with CRLF line endings (Dovecot)
    std::optional<std::uint32_t> uid;    // ,U= our IMAP UID, so a rebuilt index keeps UIDs
    // Other ",..." fields verbatim and in order (also malformed S=/W=/U= and repeats of them):
    // other tools put data there and expect it to survive our renames.
    std::vector<std::string> other_fields;
    InfoKind info = InfoKind::kNone;
    // kFlags: the letters, ASCII-sorted and unique (uppercase = standard flags, including
    // letters we do not know; a..z = keywords from dovecot-keywords).
    std::string flags;
    // kFlags: anything from a ',' after the flags on (Dovecot keeps such a second flag set);
    // kExperimental / kUnknown: everything after the separator.
    std::string info_rest;

    bool has_flag(char letter) const;
    // Only letters A-Z and a-z are taken. Setting a flag on a name without ":2," info replaces
    // the info with ":2,", as Dovecot does; clearing one that is not there changes nothing.
    void set_flag(char letter, bool on);
    SystemFlags system_flags() const;
    void set_system_flags(SystemFlags flags);  // leaves P and unknown letters alone
    std::uint32_t keyword_mask() const;        // bit i = letter 'a'+i
    void set_keyword_mask(std::uint32_t mask);

    bool operator==(const FileName&) const = default;
};

// nullopt for what cannot be a message file: empty, longer than kMaxFileNameLength, containing
// '/' or NUL, starting with '.' (Maildir readers skip dot files), or an empty base. Anything
// else parses best-effort; the info starts at the last separator, like Dovecot.
std::optional<FileName> parse_file_name(std::string_view name, char info_sep = kInfoSeparator);

// BASE, then S=, W=, U= and the other fields in that order, then the info.
std::string format_file_name(const FileName& name, char info_sep = kInfoSeparator);

// The base alone, without parsing the rest; what identifies a message across renames.
std::string_view base_of(std::string_view name, char info_sep = kInfoSeparator);

}  // namespace pillarbox::storage::maildir
