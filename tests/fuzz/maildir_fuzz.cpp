// libFuzzer target: arbitrary bytes as Maildir file names, dovecot-keywords text, modified
// UTF-7 and mailbox/directory names. Beyond not crashing, each parser must agree with its
// formatter: whatever parses must format to something that parses to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storage/maildir/filename.hpp"
#include "storage/maildir/folder_name.hpp"
#include "storage/maildir/keywords.hpp"

namespace {
void require(bool ok) {
    if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pillarbox::storage::maildir;
    std::string_view text(reinterpret_cast<const char*>(data), size);

    for (char sep : {kInfoSeparator, kAltInfoSeparator}) {
        if (auto f = parse_file_name(text, sep)) {
            auto formatted = format_file_name(*f, sep);
            auto again = parse_file_name(formatted, sep);
            require(again && *again == *f);
            require(base_of(text, sep) == f->base);
            f->set_system_flags(static_cast<SystemFlags>(size & 0x1f));
            f->set_keyword_mask(static_cast<std::uint32_t>(size * 2654435761u) & 0x3ffffffu);
            auto changed = parse_file_name(format_file_name(*f, sep), sep);
            require(!changed || *changed == *f);
        }
    }

    auto kw = parse_keywords(text);
    auto kw_again = parse_keywords(format_keywords(kw.table));
    for (int i = 0; i < kMaxKeywordLetters; ++i)
        require(kw_again.table.names[i] == kw.table.names[i] || kw.table.names[i].find_first_of("\r\n") != std::string::npos);
    assign_keyword(kw.table, text);

    if (auto decoded = mutf7_decode(text)) {
        auto encoded = mutf7_encode(*decoded);
        require(encoded && *encoded == text);
    }
    if (auto encoded = mutf7_encode(text)) {
        auto decoded = mutf7_decode(*encoded);
        require(decoded && *decoded == text);
    }

    for (char sep : {'/', '.'}) {
        if (auto name = folder_dir_to_mailbox(text, sep)) {
            auto back = mailbox_to_folder_dir(*name, sep);
            require(back && *back.value == text);
        }
        if (auto dir = mailbox_to_folder_dir(text, sep)) {
            require(dir.value->find('/') == std::string::npos && dir.value->find('\0') == std::string::npos);
            if (!dir.value->empty()) {
                require(*dir.value != "." && *dir.value != "..");
                auto name = folder_dir_to_mailbox(*dir.value, sep);
                require(name && *name == normalize_mailbox_name(text, sep));
            }
        }
    }
    return 0;
}
