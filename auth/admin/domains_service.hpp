// Domain operations of the admin service layer: the domains hosted here besides mydestination
// (Postfix's virtual mailbox domains).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "auth/admin/admin.hpp"
#include "auth/admin/result.hpp"

namespace pillarbox::auth::admin {

struct DomainInfo {
    std::string name;
    bool mydestination = false;  // local through the configuration, not the database
};

// The lower-case name. Refused when it isn't a valid name, is in mydestination already, or exists.
Result<std::string> add_domain(Admin& admin, std::string_view domain);
// Refused while accounts are left in it; its aliases go with it.
Status delete_domain(Admin& admin, std::string_view domain);
// mydestination's first, then the database's.
std::vector<DomainInfo> list_domains(Admin& admin);

}  // namespace pillarbox::auth::admin
