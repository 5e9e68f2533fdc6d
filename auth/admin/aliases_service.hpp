// Alias operations of the admin service layer: one alias at a time, and the import of an
// aliases(5) or virtual(5) file. Sources are user@domain, @domain (a catch-all) or a bare
// aliases(5) name; targets are addresses or bare local names.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "auth/admin/admin.hpp"
#include "auth/admin/result.hpp"

namespace pillarbox::auth::admin {

inline constexpr std::size_t kMaxAliasImport = 64u * 1024 * 1024;  // bytes of an imported file

struct AliasAdded {
    std::string source, target;  // normalised
    bool added = true;           // false: it existed
};

struct AliasesDeleted {
    std::string source;
    std::size_t targets = 0;
};

struct Alias {
    std::string source;
    std::vector<std::string> targets;  // in the order they were added
};

struct AliasImport {
    // What the admin should read, in file order: the file's own problems ("line 3: bad name
    // 'x y'"), then the entries and targets skipped ("line 5: x@y.org: mail for y.org is not
    // delivered here; skipped").
    std::vector<std::string> notes;
    std::size_t entries = 0;   // entries in the file
    std::size_t skipped = 0;   // entries skipped whole
    std::size_t added = 0;     // alias targets added (those that existed don't count)
    std::size_t problems = 0;  // the file's own problems (the first notes)
};

// Every target is checked before anything is added; a source with a domain must be local.
Result<std::vector<AliasAdded>> add_alias(Admin& admin, std::string_view source, const std::vector<std::string>& targets);
// One target, or all when `target` is empty. A source stored by an older release, which
// today's rule refuses, can still be deleted.
Result<AliasesDeleted> delete_alias(Admin& admin, std::string_view source, std::string_view target = {});
// Sorted by source.
std::vector<Alias> list_aliases(Admin& admin);
// The text of an aliases(5) or virtual(5) file, in one transaction. Refused over kMaxAliasImport.
Result<AliasImport> import_aliases(Admin& admin, std::string_view text);

}  // namespace pillarbox::auth::admin
