// A byte transform stacked between a Connection's stream (socket or TLS) and its session's
// buffers: IMAP's COMPRESS=DEFLATE (RFC 4978) will be one. Layers keep their own state and see
// every byte in order, one direction in decode() and the other in encode().
#pragma once
#include <string>
#include <string_view>

namespace pillarbox {

class StreamLayer {
public:
    virtual ~StreamLayer() = default;
    // Bytes as they came from below (the wire side): append what the layer above should read to
    // `out` (possibly nothing yet). False when they can't be decoded (a corrupt stream): the
    // connection logs error() and closes.
    virtual bool decode(std::string_view in, std::string& out) = 0;
    // Bytes from above (the session side) for one write: append what goes below to `out`. All
    // of it must come out now (a deflate layer flushes), since the peer is waiting for a reply.
    virtual void encode(std::string_view in, std::string& out) = 0;
    virtual std::string error() const { return {}; }
};

// Passes bytes through unchanged: the reference implementation of the interface.
class IdentityLayer final : public StreamLayer {
public:
    bool decode(std::string_view in, std::string& out) override {
        out.append(in);
        return true;
    }
    void encode(std::string_view in, std::string& out) override { out.append(in); }
};

}  // namespace pillarbox
