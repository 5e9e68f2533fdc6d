// Server-side TLS on a connection's socket, BoringSSL reading and writing the descriptor itself
// (a small BIO over recv/send) while the coroutines wait for readiness on the loop. Nothing is
// buffered here: BoringSSL holds a record buffer only while a record is in flight and frees it
// in between, so an idle TLS connection costs the SSL object and its session keys, not the four
// 17 KiB buffers that asio::ssl::stream keeps for a connection's whole life.
//
// One read and one write may be outstanding at once (the connection's reader and writer); both
// run on the loop thread, so the SSL object is never entered twice at the same moment.
#pragma once
#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>

#include <cstddef>
#include <string_view>
#include <system_error>

struct ssl_st;
struct ssl_ctx_st;

namespace pillarbox {

class TlsStream {
public:
    using Socket = asio::generic::stream_protocol::socket;
    // The socket must outlive this object; it is put in non-blocking mode.
    TlsStream(Socket& socket, ssl_ctx_st* ctx);
    ~TlsStream();
    TlsStream(const TlsStream&) = delete;
    TlsStream& operator=(const TlsStream&) = delete;

    // The server side of the handshake.
    asio::awaitable<void> handshake(std::error_code& ec);
    // Some decrypted bytes into [data, data + size): their count, or 0 with ec set (the peer's
    // close_notify or a plain end of file: asio::error::eof).
    asio::awaitable<std::size_t> read_some(char* data, std::size_t size, std::error_code& ec);
    // All of `bytes`, or ec.
    asio::awaitable<void> write(std::string_view bytes, std::error_code& ec);
    // Sends close_notify (without waiting for the peer's).
    asio::awaitable<void> shutdown(std::error_code& ec);

    ssl_st* native_handle() const { return ssl_; }

private:
    // After an SSL call returned r <= 0: waits for what it wants (true: call again) or sets ec.
    asio::awaitable<bool> wait_for(int r, int saved_errno, std::error_code& ec);

    Socket& socket_;
    ssl_st* ssl_;
};

}  // namespace pillarbox
