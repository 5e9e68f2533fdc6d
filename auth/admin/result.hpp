// What an admin operation returns: its typed result, or an Error saying what is wrong in words
// for the admin. The CLI prints the words as they are; the HTTP API will map the code.
#pragma once
#include <string>
#include <utility>
#include <variant>

namespace pillarbox::auth::admin {

enum class Errc {
    InvalidAddress,       // not localpart@domain, or characters a Maildir path can't hold
    InvalidDomain,
    InvalidAliasName,
    InvalidAliasTarget,
    DomainNotLocal,       // mail for the domain is not delivered here (add the domain first)
    DomainInMydestination,  // local through the configuration already
    DomainExists,
    NoSuchDomain,
    DomainInUse,          // accounts are left in it
    AccountExists,
    NoSuchAccount,
    NoSuchAlias,
    BadQuota,
    BadPassword,          // empty, or longer than kMaxPassword
    TooLarge,             // an import over its size limit
};

struct Error {
    Errc code;
    std::string message;  // e.g. "bob@example.com: account exists"
    // What it is about (the domain of DomainNotLocal), for a shell that adds its own hint.
    std::string subject = {};
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    const T& value() const { return std::get<0>(v_); }
    T& value() { return std::get<0>(v_); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

// For operations that have nothing to return but success.
using Status = Result<std::monostate>;
inline Status done() { return Status(std::monostate{}); }

}  // namespace pillarbox::auth::admin
