// TLS server contexts, SNI and the self-signed certificate (see tls.hpp).
#include "tls.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "log.hpp"
#include "loop_guard.hpp"

namespace pillarbox::tls {
namespace {

std::string ssl_error() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown TLS library error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

template <typename T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
void bio_free(BIO* b) { BIO_free(b); }
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, bio_free>>;

bool add_ext(X509* cert, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    if (!ext) return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

// Writes data to path atomically (tmp + rename) with the given mode.
std::string write_file(const std::string& path, const std::string& data, mode_t mode) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return fmt::format("cannot create {}: {}", tmp, std::strerror(errno));
    bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) && ::fsync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return fmt::format("cannot write {}: {}", path, std::strerror(ok ? errno : err));
    }
    return "";
}

std::string bio_string(BIO* bio) {
    const uint8_t* data = nullptr;
    size_t len = 0;
    BIO_mem_contents(bio, &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
}

// Loads a chain and key into ctx: the key from the first of `files` that holds one, the chain
// from the first that holds a certificate.
std::string load_identity(SSL_CTX* ctx, const std::vector<std::string>& files) {
    bool have_key = false, have_cert = false;
    for (auto& f : files) {
        if (::access(f.c_str(), R_OK) != 0) return fmt::format("cannot read {}: {}", f, std::strerror(errno));
        if (!have_cert && SSL_CTX_use_certificate_chain_file(ctx, f.c_str()) == 1) have_cert = true;
        ERR_clear_error();
        if (!have_key && SSL_CTX_use_PrivateKey_file(ctx, f.c_str(), SSL_FILETYPE_PEM) == 1) have_key = true;
        ERR_clear_error();
    }
    if (!have_cert) return fmt::format("no PEM certificate found in {}", fmt::join(files, ", "));
    if (!have_key) return fmt::format("no PEM private key found in {}", fmt::join(files, ", "));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fmt::format("private key does not match the certificate in {}: {}", fmt::join(files, ", "), ssl_error());
    return "";
}

std::shared_ptr<asio::ssl::context> make_context(const TlsSettings& s, const std::vector<std::string>& files,
                                                 std::string& error) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* c = ctx->native_handle();
    SSL_CTX_set_min_proto_version(c, s.min_version == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
    if (SSL_CTX_set_strict_cipher_list(c, s.ciphers.c_str()) != 1) {
        error = fmt::format("tls_ciphers \"{}\": {}", s.ciphers, ssl_error());
        return nullptr;
    }
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    static const unsigned char sid[] = "pillarbox";
    SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
    error = load_identity(c, files);
    if (!error.empty()) return nullptr;
    return ctx;
}

}  // namespace

TlsSettings TlsSettings::from(const config::Config& c) {
    TlsSettings s;
    s.cert_file = c.get("tls_cert_file");
    s.key_file = c.get("tls_key_file");
    s.sni_maps = c.get("tls_server_sni_maps");
    s.min_version = c.get("tls_min_version");
    s.ciphers = c.get("tls_ciphers");
    return s;
}

std::string generate_self_signed(const std::string& hostname, const std::string& cert_path,
                                 const std::string& key_path) {
    blocking_call("generate_self_signed");
    EC_KEY* ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    if (!ec || EC_KEY_generate_key(ec) != 1) {
        EC_KEY_free(ec);
        return "cannot generate an EC key: " + ssl_error();
    }
    PkeyPtr pkey(EVP_PKEY_new());
    EVP_PKEY_assign_EC_KEY(pkey.get(), ec);

    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    uint8_t serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;  // positive
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 825L * 24 * 3600);  // the CA/B maximum
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const uint8_t*>(hostname.c_str()), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const uint8_t*>("Pillarbox self-signed"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    X509_set_pubkey(cert.get(), pkey.get());
    std::string san = "DNS:" + hostname;
    if (!add_ext(cert.get(), NID_subject_alt_name, san.c_str()) ||
        !add_ext(cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(cert.get(), NID_key_usage, "critical,digitalSignature") ||
        !add_ext(cert.get(), NID_ext_key_usage, "serverAuth"))
        return "cannot add certificate extensions: " + ssl_error();
    if (X509_sign(cert.get(), pkey.get(), EVP_sha256()) == 0) return "cannot sign certificate: " + ssl_error();

    BioPtr kb(BIO_new(BIO_s_mem())), cb(BIO_new(BIO_s_mem()));
    if (PEM_write_bio_PrivateKey(kb.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
        PEM_write_bio_X509(cb.get(), cert.get()) != 1)
        return "cannot encode certificate: " + ssl_error();
    if (auto e = write_file(key_path, bio_string(kb.get()), 0600); !e.empty()) return e;
    return write_file(cert_path, bio_string(cb.get()), 0644);
}

CertFiles resolve_cert_files(const TlsSettings& s, const std::string& hostname, const std::string& data_dir,
                             bool create, std::string& error) {
    blocking_call("resolve_cert_files");
    CertFiles f;
    if (!s.cert_file.empty()) {
        f.cert = s.cert_file;
        f.key = s.key_file.empty() ? s.cert_file : s.key_file;
        return f;
    }
    std::filesystem::path dir = std::filesystem::path(data_dir) / "tls";
    f.cert = (dir / (hostname + ".crt")).string();
    f.key = (dir / (hostname + ".key")).string();
    f.generated = true;
    if (::access(f.cert.c_str(), R_OK) == 0 && ::access(f.key.c_str(), R_OK) == 0) return f;
    if (!create) {
        f.missing = true;
        return f;
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        error = fmt::format("cannot create {}: {}", dir.string(), ec.message());
        return f;
    }
    ::chmod(dir.c_str(), 0700);
    error = generate_self_signed(hostname, f.cert, f.key);
    if (error.empty())
        log::info("master", "generated a self-signed certificate for {} in {} (set tls_cert_file to use your own)",
                  hostname, f.cert);
    return f;
}

std::shared_ptr<ServerContexts> ServerContexts::build(const TlsSettings& s, const std::string& hostname,
                                                      const std::string& data_dir, bool create, std::string& error) {
    blocking_call("ServerContexts::build");
    auto files = resolve_cert_files(s, hostname, data_dir, create, error);
    if (!error.empty() || files.missing) return nullptr;
    auto out = std::shared_ptr<ServerContexts>(new ServerContexts());
    std::vector<std::string> main_files{files.cert};
    if (files.key != files.cert) main_files.insert(main_files.begin(), files.key);
    out->default_ = make_context(s, main_files, error);
    if (!out->default_) return nullptr;
    out->cert_file_ = files.cert;

    if (!s.sni_maps.empty()) {
        std::ifstream in(s.sni_maps);
        if (!in) {
            error = fmt::format("tls_server_sni_maps: cannot open {}: {}", s.sni_maps, std::strerror(errno));
            return nullptr;
        }
        std::string line;
        int lineno = 0;
        while (std::getline(in, line)) {
            ++lineno;
            std::istringstream words(line);
            std::string name, file;
            std::vector<std::string> pem;
            if (!(words >> name) || name[0] == '#') continue;
            while (words >> file) pem.push_back(file);
            if (pem.empty()) {
                error = fmt::format("{}:{}: expected NAME FILE [FILE...]", s.sni_maps, lineno);
                return nullptr;
            }
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
            auto ctx = make_context(s, pem, error);
            if (!ctx) {
                error = fmt::format("{}:{}: {}", s.sni_maps, lineno, error);
                return nullptr;
            }
            out->by_name_[name] = ctx;
        }
        SSL_CTX_set_tlsext_servername_callback(out->default_->native_handle(), &ServerContexts::on_servername);
        SSL_CTX_set_tlsext_servername_arg(out->default_->native_handle(), out.get());
    }
    return out;
}

std::shared_ptr<asio::ssl::context> ServerContexts::find(std::string_view requested) const {
    std::string name(requested);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
    // Postfix-style parent domain match: ".example.com" covers a.example.com and a.b.example.com.
    for (auto dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
        if (auto it = by_name_.find(std::string_view(name).substr(dot)); it != by_name_.end()) return it->second;
    return nullptr;
}

int ServerContexts::on_servername(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<ServerContexts*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;
    if (auto ctx = self->find(name)) SSL_set_SSL_CTX(ssl, ctx->native_handle());
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace pillarbox::tls
