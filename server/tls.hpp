// BoringSSL server contexts per listener: TLS 1.2+, modern ciphers, certificate chain and key
// from the config, SNI selection among several certificates (tls_server_sni_maps), and a
// self-signed ECDSA P-256 certificate for myhostname when none is configured.
#pragma once
#include <asio/ssl/context.hpp>

#include <map>
#include <memory>
#include <string>

#include "config.hpp"

namespace pillarbox::tls {

// A listener's TLS parameters; their defaults are written once, in server/parameters.cpp, and
// from() sets every field.
struct TlsSettings {
    std::string cert_file;    // tls_cert_file; empty: use the generated self-signed certificate
    std::string key_file;     // tls_key_file
    std::string sni_maps;     // tls_server_sni_maps
    std::string min_version;  // tls_min_version: TLSv1.2 or TLSv1.3
    std::string ciphers;      // tls_ciphers
    static TlsSettings from(const config::Config& c);
    bool operator==(const TlsSettings&) const = default;
};

// The certificate and key files in force for these settings: the configured ones, or the
// generated pair under DATA_DIR/tls (created when missing). Blocking.
struct CertFiles {
    std::string cert, key;
    bool generated = false;
    bool missing = false;  // generated pair not there yet (create was false)
};
// With create = false a missing generated pair is reported through CertFiles::missing instead.
CertFiles resolve_cert_files(const TlsSettings& s, const std::string& hostname, const std::string& data_dir,
                             bool create, std::string& error);

// Writes a new self-signed ECDSA P-256 certificate with SAN dNSName = hostname (key file 0600).
std::string generate_self_signed(const std::string& hostname, const std::string& cert_path,
                                 const std::string& key_path);

class ServerContexts {
public:
    // Blocking: reads certificate files (and creates the self-signed pair when `create`).
    // Returns null and sets error on any problem; null with no error when the pair is missing
    // and create is false.
    static std::shared_ptr<ServerContexts> build(const TlsSettings& s, const std::string& hostname,
                                                 const std::string& data_dir, bool create, std::string& error);
    asio::ssl::context& context() { return *default_; }
    const std::string& cert_file() const { return cert_file_; }

private:
    static int on_servername(struct ssl_st* ssl, int* alert, void* arg);
    std::shared_ptr<asio::ssl::context> find(std::string_view name) const;

    std::shared_ptr<asio::ssl::context> default_;
    std::map<std::string, std::shared_ptr<asio::ssl::context>, std::less<>> by_name_;  // ".example.com" = subdomains
    std::string cert_file_;
};

}  // namespace pillarbox::tls
