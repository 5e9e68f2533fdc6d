// Domain operations of the admin service layer (see domains_service.hpp).
#include "auth/admin/domains_service.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "server/ascii.hpp"
#include "server/mail_names.hpp"

namespace pillarbox::auth::admin {

Result<std::string> add_domain(Admin& admin, std::string_view domain) {
    if (auto why = names::domain_problem(domain); !why.empty())
        return Error{Errc::InvalidDomain, fmt::format("{}: not a valid domain name ({})", domain, why)};
    auto d = ascii_lower(domain);
    const auto& local = admin.settings().recipients.mydestination;
    if (std::find(local.begin(), local.end(), d) != local.end())
        return Error{Errc::DomainInMydestination, fmt::format("{}: already local through mydestination", d)};
    if (!admin.db().add_domain(d)) return Error{Errc::DomainExists, fmt::format("{}: domain exists", d)};
    return d;
}

Status delete_domain(Admin& admin, std::string_view domain) {
    try {
        if (!admin.db().delete_domain(domain)) return Error{Errc::NoSuchDomain, fmt::format("{}: no such domain", domain)};
    } catch (const DomainInUse& e) {
        return Error{Errc::DomainInUse, e.what()};
    }
    return done();
}

std::vector<DomainInfo> list_domains(Admin& admin) {
    std::vector<DomainInfo> out;
    for (auto& d : admin.settings().recipients.mydestination) out.push_back({d, true});
    for (auto& d : admin.db().domains()) out.push_back({d, false});
    return out;
}

}  // namespace pillarbox::auth::admin
