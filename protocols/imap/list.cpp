// LIST and LSUB matching (see list.hpp).
#include "protocols/imap/list.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "server/ascii.hpp"
#include "storage/maildir/folder_name.hpp"

namespace pillarbox::imap {

namespace {

bool match_at(std::string_view p, std::string_view n) {
    // Iterative wildcard match with backtracking to the last '*' or '%' (a '%' can't cross the
    // separator, so it backtracks only within one level).
    std::size_t pi = 0, ni = 0, star_p = std::string_view::npos, star_n = 0;
    bool star_crosses = false;
    while (ni < n.size()) {
        if (pi < p.size() && (p[pi] == '*' || p[pi] == '%')) {
            star_crosses = p[pi] == '*';
            star_p = pi++;
            star_n = ni;
        } else if (pi < p.size() && p[pi] == n[ni]) {
            ++pi;
            ++ni;
        } else if (star_p != std::string_view::npos && (star_crosses || n[star_n] != kSeparator)) {
            pi = star_p + 1;
            ni = ++star_n;
        } else {
            return false;
        }
    }
    while (pi < p.size() && (p[pi] == '*' || p[pi] == '%')) ++pi;
    return pi == p.size();
}

// "inbox/x" matches "INBOX/x": the INBOX level of a pattern is compared without case.
std::string inbox_normalised(std::string_view pattern) {
    std::string p(pattern);
    if (p.size() >= 5 && ascii_iequals(std::string_view(p).substr(0, 5), "INBOX") &&
        (p.size() == 5 || p[5] == kSeparator))
        for (std::size_t i = 0; i < 5; ++i) p[i] = static_cast<char>(ascii_upper(p[i]));
    return p;
}

}  // namespace

bool list_match(std::string_view pattern, std::string_view name) { return match_at(inbox_normalised(pattern), name); }

std::string join_reference(std::string_view reference, std::string_view pattern) {
    if (reference.empty()) return std::string(pattern);
    if (!pattern.empty() && pattern.front() == kSeparator) pattern.remove_prefix(1);
    if (reference.back() == kSeparator) return std::string(reference) + std::string(pattern);
    return std::string(reference) + kSeparator + std::string(pattern);
}

std::vector<ListEntry> list_mailboxes(const std::vector<storage::MailboxInfo>& boxes, const ListRequest& r, bool lsub) {
    // Every name, and every parent level implied by one (a Maildir++ folder "A/B" may exist
    // without "A").
    struct Node {
        const storage::MailboxInfo* box = nullptr;
        bool children = false, subscribed_child = false;
    };
    std::map<std::string, Node> tree;
    for (auto& b : boxes) {
        tree[b.name].box = &b;
        for (auto pos = b.name.find(kSeparator); pos != std::string::npos; pos = b.name.find(kSeparator, pos + 1)) {
            auto& parent = tree[b.name.substr(0, pos)];
            parent.children = true;
            if (b.subscribed) parent.subscribed_child = true;
        }
    }
    std::vector<std::string> patterns;
    for (auto& p : r.patterns) patterns.push_back(join_reference(r.reference, p));
    const bool only_subscribed = r.subscribed || lsub;
    std::vector<ListEntry> out;
    for (auto& [name, node] : tree) {
        bool matched = false;
        for (auto& p : patterns) matched = matched || list_match(p, name);
        if (!matched) continue;
        const bool subscribed = node.box && node.box->subscribed;
        ListEntry e;
        e.name = name;
        e.selectable = node.box != nullptr;
        if (only_subscribed && !subscribed) {
            // RFC 5258 section 3.5: with RECURSIVEMATCH a parent of subscribed mailboxes is
            // listed with CHILDINFO; LSUB with '%' lists it \Noselect (RFC 3501 6.3.9).
            if (r.recursive_match && node.subscribed_child) {
                if (!node.box) e.attributes.push_back("\\NonExistent");
                e.childinfo.push_back("SUBSCRIBED");
                out.push_back(std::move(e));
            } else if (lsub && node.subscribed_child) {
                bool percent = false;
                for (auto& p : patterns) percent = percent || p.find('%') != std::string::npos;
                if (percent) {
                    e.attributes.push_back("\\Noselect");
                    out.push_back(std::move(e));
                }
            }
            continue;
        }
        if (r.special_use && (!node.box || node.box->special_use.empty())) continue;
        if (!node.box) e.attributes.push_back("\\Noselect");
        if (!lsub) e.attributes.push_back(node.children ? "\\HasChildren" : "\\HasNoChildren");
        if (subscribed && (only_subscribed || r.return_subscribed) && !lsub) e.attributes.push_back("\\Subscribed");
        if (node.box && !node.box->special_use.empty() && !lsub) e.attributes.push_back(node.box->special_use);
        out.push_back(std::move(e));
    }
    // INBOX first, as clients expect; the rest in name order.
    std::stable_partition(out.begin(), out.end(), [](const ListEntry& e) { return e.name == "INBOX"; });
    return out;
}

}  // namespace pillarbox::imap
