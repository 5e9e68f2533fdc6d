// Asynchronous DNS for the SMTP policy (DNSBL, sender/recipient domain checks, client PTR) and
// the outbound side (MX, A/AAAA): c-ares driven by the Asio loop, so lookups never block it.
#pragma once
#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pillarbox::dns {

enum class Type { A, AAAA, MX, TXT, PTR };

struct Answer {
    enum class Status {
        Ok,        // records holds at least one record
        NotFound,  // NXDOMAIN, or the name exists without records of this type (NODATA)
        TempFail,  // timeout, SERVFAIL, refused, network trouble: try again later
    };
    Status status = Status::TempFail;
    // A/AAAA: addresses as text ("192.0.2.1", "2001:db8::1"); MX: "PREFERENCE HOST" (host without
    // the trailing dot); TXT: each record's strings joined; PTR: host names without the trailing dot.
    std::vector<std::string> records;
    std::string error;  // for the log when not Ok
};

class Resolver {
public:
    virtual ~Resolver() = default;
    // The callback runs on the loop thread, exactly once, unless the Resolver is destroyed first
    // (then never). Names are given without a trailing dot.
    virtual void lookup(const std::string& name, Type type, std::function<void(Answer)> cb) = 0;
};

struct ResolverSettings {
    std::vector<std::string> servers;  // "IP" or "IP:PORT" / "[IPv6]:PORT"; empty: /etc/resolv.conf
    std::chrono::milliseconds timeout{5000};  // per try
    int tries = 2;
};

// c-ares on the Asio loop. Throws std::runtime_error when c-ares can't initialise.
std::unique_ptr<Resolver> make_resolver(asio::io_context& loop, const ResolverSettings& s);

// "192.0.2.1" -> "1.2.0.192", "2001:db8::1" -> nibbles reversed; the DNSBL/PTR query prefix.
// Empty when ip is not an address.
std::string reverse_name(const std::string& ip);

}  // namespace pillarbox::dns
