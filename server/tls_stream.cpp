// TlsStream: BoringSSL on a non-blocking socket (see tls_stream.hpp).
#include "tls_stream.hpp"

#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/use_awaitable.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <new>

namespace pillarbox {

namespace {

// One SSL_write at a time is at most one record's worth of plaintext: BoringSSL then needs no
// more than one record's buffer for it.
constexpr std::size_t kWritePiece = 16 * 1024;

// The BIO reads the descriptor from the socket on every call: once the connection closes the
// socket, a late call fails with EBADF instead of touching a descriptor number reused since.
int socket_fd(BIO* bio) { return static_cast<TlsStream::Socket*>(BIO_get_data(bio))->native_handle(); }

bool retryable(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

int bio_write(BIO* bio, const char* data, int size) {
    BIO_clear_retry_flags(bio);
    // MSG_NOSIGNAL: a peer that went away gives EPIPE, never SIGPIPE.
    ssize_t n = ::send(socket_fd(bio), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (retryable(errno)) BIO_set_retry_write(bio);
    return -1;
}

int bio_read(BIO* bio, char* data, int size) {
    BIO_clear_retry_flags(bio);
    ssize_t n = ::recv(socket_fd(bio), data, static_cast<std::size_t>(size), 0);
    if (n >= 0) return static_cast<int>(n);
    if (retryable(errno)) BIO_set_retry_read(bio);
    return -1;
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

const BIO_METHOD* socket_method() {
    static const BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pillarbox socket");
        if (!m || !BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_ctrl(m, bio_ctrl))
            throw std::bad_alloc();
        return m;
    }();
    return method;
}

std::error_code ssl_failure() {
    if (unsigned long e = ERR_get_error()) return {static_cast<int>(e), asio::error::get_ssl_category()};
    return std::make_error_code(std::errc::protocol_error);
}

}  // namespace

TlsStream::TlsStream(Socket& socket, ssl_ctx_st* ctx) : socket_(socket), ssl_(SSL_new(ctx)) {
    if (!ssl_) throw std::bad_alloc();
    BIO* bio = BIO_new(socket_method());
    if (!bio) {
        SSL_free(ssl_);
        throw std::bad_alloc();
    }
    BIO_set_data(bio, &socket_);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);  // one reference for both directions
    SSL_set_accept_state(ssl_);
    // The certificate, key and settings are not needed after the handshake (no renegotiation on
    // the server side): BoringSSL frees its copy of them then.
    SSL_set_shed_handshake_config(ssl_, 1);
    std::error_code ignored;
    socket_.non_blocking(true, ignored);
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

asio::awaitable<bool> TlsStream::wait_for(int r, int saved_errno, std::error_code& ec) {
    switch (SSL_get_error(ssl_, r)) {
    case SSL_ERROR_WANT_READ:
        co_await socket_.async_wait(Socket::wait_read, asio::redirect_error(asio::use_awaitable, ec));
        co_return !ec;
    case SSL_ERROR_WANT_WRITE:
        co_await socket_.async_wait(Socket::wait_write, asio::redirect_error(asio::use_awaitable, ec));
        co_return !ec;
    case SSL_ERROR_ZERO_RETURN:  // close_notify
        ec = asio::error::eof;
        co_return false;
    case SSL_ERROR_SYSCALL:  // an end of file without close_notify has no errno
        ec = saved_errno ? std::error_code(saved_errno, std::system_category()) : std::error_code(asio::error::eof);
        co_return false;
    default:
        ec = ssl_failure();
        co_return false;
    }
}

asio::awaitable<void> TlsStream::handshake(std::error_code& ec) {
    ec.clear();
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_do_handshake(ssl_);
        if (r == 1) co_return;
        if (!co_await wait_for(r, errno, ec)) co_return;
    }
}

asio::awaitable<std::size_t> TlsStream::read_some(char* data, std::size_t size, std::error_code& ec) {
    ec.clear();
    int want = static_cast<int>(std::min<std::size_t>(size, 1 << 30));
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_read(ssl_, data, want);
        if (r > 0) co_return static_cast<std::size_t>(r);
        if (!co_await wait_for(r, errno, ec)) co_return 0;
    }
}

asio::awaitable<void> TlsStream::write(std::string_view bytes, std::error_code& ec) {
    ec.clear();
    while (!bytes.empty()) {
        // After WANT_WRITE, SSL_write must be called again with the same bytes: the piece is
        // taken from the front of what is left, which has not moved.
        int piece = static_cast<int>(std::min(bytes.size(), kWritePiece));
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(ssl_, bytes.data(), piece);
        if (r > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(r));
            continue;
        }
        if (!co_await wait_for(r, errno, ec)) co_return;
    }
}

asio::awaitable<void> TlsStream::shutdown(std::error_code& ec) {
    ec.clear();
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_shutdown(ssl_);
        if (r >= 0) co_return;  // 0: ours sent, the peer's not awaited (RFC 8446 section 6.1)
        if (!co_await wait_for(r, errno, ec)) co_return;
    }
}

}  // namespace pillarbox
