// The state check of command tables (see command_table.hpp).
#include "protocols/common/command_table.hpp"

namespace pillarbox::protocols {

Refusal check_command(unsigned flags, const CommandState& s) {
    if (s.logged_in ? !(flags & kAfterLogin) : !(flags & kBeforeLogin))
        return s.logged_in ? Refusal::AlreadyLoggedIn : Refusal::NotLoggedIn;
    if ((flags & kInTransaction) && !s.in_transaction) return Refusal::NoTransaction;
    if ((flags & kNoTransaction) && s.in_transaction) return Refusal::InTransaction;
    if ((flags & kNeedsTls) && s.tls_missing) return Refusal::NeedsTls;
    return Refusal::None;
}

}  // namespace pillarbox::protocols
