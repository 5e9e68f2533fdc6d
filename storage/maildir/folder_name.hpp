// IMAP mailbox names ↔ Maildir++ folder directory names, laid out as Dovecot's default
// LAYOUT=maildir++ does, and the modified UTF-7 (RFC 3501 5.1.3) that names are stored in.
// Pure functions; mailbox names here are UTF-8 (the IMAP layer converts the wire form).
//
// On disk: INBOX is the Maildir root itself; every other mailbox is one directory in the root,
// "." followed by its hierarchy levels joined by '.', each level in modified UTF-7:
//   INBOX → ""   Sent → ".Sent"   Work/2024 → ".Work.2024"   台北 → ".&U,BTFw-"
// The IMAP hierarchy separator defaults to '/', which lets users have '.' in names ("v1.2");
// with '/' a '.' inside a level is written \2e, Dovecot's listescape convention, so Dovecot with
// the listescape plugin shows the same names (without it, it shows the \2e). With separator '.'
// the directory names are exactly Dovecot's defaults. In both, a level's '/' (impossible on
// disk) is written \2f, '\' is written \5c and a leading '~' \7e, as listescape does.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pillarbox::storage::maildir {

inline constexpr char kDefaultHierarchySeparator = '/';

// NAME_MAX: the whole directory name, "." and escapes included.
inline constexpr std::size_t kMaxFolderDirLength = 255;

template <typename T>
struct Checked {
    std::optional<T> value;
    std::string error;  // why it was refused, fit for a NO response; set when value is empty
    static Checked ok(T v) { return Checked{std::move(v), {}}; }
    static Checked fail(std::string e) { return Checked{std::nullopt, std::move(e)}; }
    explicit operator bool() const { return value.has_value(); }
};

// UTF-8 → modified UTF-7. nullopt on invalid UTF-8 (overlong forms, surrogates, > U+10FFFF).
std::optional<std::string> mutf7_encode(std::string_view utf8);

// Modified UTF-7 → UTF-8. Only the one canonical spelling of a name is accepted: nullopt on
// bytes outside 0x20..0x7E, a shift without its '-', a character outside the modified base64
// alphabet, leftover or non-zero padding bits, an unpaired surrogate, a printable ASCII
// character that was base64-encoded, and two base64 runs back to back ("&-" is '&').
std::optional<std::string> mutf7_decode(std::string_view mutf7);

// '/' and '.' only: others clash with LIST wildcards, the escape character or base64.
bool is_supported_separator(char separator);

bool is_inbox(std::string_view name);  // INBOX in any case

// INBOX in any case, alone or as the first level, becomes "INBOX" (as in Dovecot).
std::string normalize_mailbox_name(std::string_view name, char separator = kDefaultHierarchySeparator);

// Why a name cannot be a mailbox, or nullopt when it can: empty, not UTF-8, control characters
// (C0, DEL, C1), LIST wildcards '*' and '%', a leading or trailing separator, an empty level,
// or a "." or ".." level.
std::optional<std::string> mailbox_name_error(std::string_view name, char separator = kDefaultHierarchySeparator);

// The directory name under the Maildir root: "" for INBOX, ".Name" otherwise.
Checked<std::string> mailbox_to_folder_dir(std::string_view name, char separator = kDefaultHierarchySeparator);

// The mailbox a directory entry in the Maildir root stands for. nullopt for entries that are
// not folders (cur, new, tmp, files, "." and "..") and for any name that mailbox_to_folder_dir
// would not produce, so the two stay exact inverses: bad mUTF-7, raw 8-bit names, needless or
// upper-case escapes, empty levels, and ".INBOX", which would shadow the root.
std::optional<std::string> folder_dir_to_mailbox(std::string_view dir, char separator = kDefaultHierarchySeparator);

}  // namespace pillarbox::storage::maildir
