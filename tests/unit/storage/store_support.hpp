// Test helpers over the store's asynchronous mailbox interface: start a call, run the loop until
// its answer, return it.
#pragma once
#include <asio/io_context.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "storage/mailboxes.hpp"

namespace pillarbox::test {

// call(done) starts one operation; the loop runs until done was called.
template <typename R, typename Call>
storage::Outcome<R> wait_for(asio::io_context& io, Call call) {
    std::optional<storage::Outcome<R>> out;
    call([&](storage::Outcome<R> o) { out = std::move(o); });
    io.restart();
    while (!out && io.run_one()) {
    }
    io.restart();
    if (!out) throw std::runtime_error("the loop ran out of work without an answer");
    return std::move(*out);
}

// IMAP APPEND through the streaming path, the text in pieces of `piece` bytes (0: one piece).
inline storage::Outcome<std::uint32_t> append_text(asio::io_context& io, storage::Mailboxes& store,
                                                    const storage::AccountId& who, const std::string& mailbox,
                                                    std::string_view text, std::uint32_t flags = 0,
                                                    std::int64_t internal_date = 1700000000, std::size_t piece = 0) {
    auto a = store.append(who, mailbox, flags, internal_date);
    if (piece == 0) piece = std::max<std::size_t>(text.size(), 1);
    for (std::size_t off = 0; off < text.size(); off += piece) a->body(text.substr(off, piece));
    return wait_for<std::uint32_t>(io, [&](auto done) { a->commit(std::move(done)); });
}

}  // namespace pillarbox::test
