// libFuzzer target: arbitrary client messages through every SASL mechanism (PLAIN, LOGIN,
// CRAM-MD5, SCRAM-SHA-1/256 and their -PLUS forms), the first attacker-controlled parsers a
// connection reaches before it is authenticated. Beyond no crash: a mechanism that checks a
// secret itself (CRAM-MD5, SCRAM) never reports Success to input that can't know the secret,
// and PLAIN/LOGIN only ever ask for a Verify of what the client sent.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/backend.hpp"
#include "auth/password.hpp"
#include "auth/sasl/mechanism.hpp"

namespace {

using namespace pillarbox::auth;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

// An account whose secrets the fuzzer can't derive in time: a random salt per process.
const Credentials& account() {
    static const Credentials c = [] {
        Credentials a;
        a.user = "user@example.com";
        a.password = "{PLAIN}pencil";
        a.scram_sha1 = format_scram(scram_keys(ScramHash::Sha1, "pencil", 4096));
        a.scram_sha256 = format_scram(scram_keys(ScramHash::Sha256, "pencil", 4096));
        return a;
    }();
    return c;
}

// Messages are separated by the two bytes FF FE (PLAIN itself uses NUL).
std::vector<std::string_view> split(std::string_view s) {
    std::vector<std::string_view> out;
    for (;;) {
        auto at = s.find("\xff\xfe");
        if (at == std::string_view::npos) {
            out.push_back(s);
            return out;
        }
        out.push_back(s.substr(0, at));
        s.remove_prefix(at + 2);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2 || size > 4096) return 0;
    const auto& names = sasl::implemented_mechanisms();
    const std::string& name = names[data[0] % names.size()];
    const std::uint8_t flags = data[1];
    sasl::ChannelBindings cb;
    if (flags & 4) cb.tls_exporter = std::string(32, '\x5a');
    if (flags & 8) cb.tls_unique = std::string(12, '\x33');
    auto mech = sasl::make_mechanism(name, "mail.example.com", cb, (flags & 16) != 0, 4096);
    require(mech != nullptr);
    const bool self_checking = name != "PLAIN" && name != "LOGIN";

    auto messages = split(std::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));
    std::size_t next = 0;
    std::optional<std::string> initial;
    if (flags & 1) initial = std::string(messages[next++]);
    sasl::Step step = mech->start(initial);
    for (int turns = 0; turns < 16; ++turns) {
        switch (step.kind) {
        case sasl::Step::Kind::Continue:
            if (next >= messages.size()) return 0;
            step = mech->respond(messages[next++]);
            continue;
        case sasl::Step::Kind::Lookup:
            require(self_checking);
            step = mech->looked_up((flags & 2) ? &account() : nullptr);
            continue;
        case sasl::Step::Kind::Verify:
            require(!self_checking);
            return 0;
        case sasl::Step::Kind::Success:
            // Only a client that knows the password could get here; the fuzzer doesn't.
            require(false);
            return 0;
        case sasl::Step::Kind::Failure:
            require(!step.reason.empty());
            return 0;
        }
    }
    return 0;
}
