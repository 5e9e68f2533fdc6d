// Delivers (and, with --append-percent, IMAP-appends) generated messages through storage::Store
// as fast as it can, for the crash and disk-full tests: prints one line per recipient once its
// commit callback has run (durable).
//
//   store_writer DATA_DIR [options]
//     --account LP@DOMAIN   deliver to this account (repeat; default alice@example.test)
//     --rcpts N             recipients per message, distinct accounts round-robin (default 1)
//     --in-flight K         deliveries in flight at once (default 8)
//     --count N             stop after N messages and exit cleanly (default 0: run until killed)
//     --prefix P            id prefix, unique per run (default w<pid>)
//     --big-percent P       share of messages of 2500..8000 lines, > 64 KiB (default 10)
//     --lines MIN:MAX       every message has MIN..MAX body lines (overrides the size mix)
//     --fail-pause MS       after a failed delivery wait MS before starting the next (default 0)
//     --append-percent P    share of operations that are Store::append (streamed in pieces, like
//                           a delivery) instead of a delivery
//                           (default 0): to one account (round-robin), alternately "Sent" with
//                           \Seen and "Drafts" with \Draft \Seen, internal date from the id
//     --seed N              random seed (default: random)
//
// SIGTERM or SIGINT: start nothing new, let the deliveries in flight finish, close the store and
// exit 0 (so a test can check that a clean stop leaves nothing behind in tmp/).
//
// Message id "<prefix>-<seq>x<lines>"; the message is
//   Message-ID: <ID@store-writer.test>\r\nSubject: store_writer ID\r\n\r\n
//   then lines "ID line K\r\n" for K in 0..lines-1,
// and for a delivery the store adds "Return-Path: <writer@store-writer.test>\r\nDelivered-To:
// LP@DOMAIN\r\n" on top; an append is stored exactly as generated, with the internal date
// 1000000000 + FNV-1a-32(id) % 700000000. Output, flushed per line: "ACK <id> <account> <uid>
// <mailbox>" or "FAIL <id> <account> temporary|permanent <mailbox>", mailbox INBOX for
// deliveries (the reason goes to stderr).
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "server/config.hpp"
#include "server/loop_guard.hpp"
#include "storage/store.hpp"

using namespace pillarbox;

namespace {

struct Account {
    std::string localpart, domain;
    std::string name() const { return localpart + "@" + domain; }
};

struct Options {
    std::string data;
    std::vector<Account> accounts;
    std::size_t rcpts = 1;
    std::size_t in_flight = 8;
    std::uint64_t count = 0;
    std::string prefix;
    unsigned big_percent = 10;
    std::uint64_t min_lines = 0, max_lines = 0;  // 0: the default mix
    unsigned fail_pause_ms = 0;
    unsigned append_percent = 0;
    std::uint64_t seed = 0;
    bool seeded = false;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr, "store_writer: %s\nusage: store_writer DATA_DIR [--account LP@DOMAIN]... [--rcpts N] "
                 "[--in-flight K] [--count N] [--prefix P] [--big-percent P] [--lines MIN:MAX] [--fail-pause MS] [--append-percent P] [--seed N]\n",
                 why.c_str());
    std::exit(2);
}

std::uint64_t number(const std::string& s, const char* opt) {
    try {
        std::size_t used = 0;
        auto v = std::stoull(s, &used);
        if (used != s.size()) throw std::invalid_argument(s);
        return v;
    } catch (const std::exception&) {
        usage(fmt::format("{}: not a number: {}", opt, s));
    }
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(a + " needs a value");
            return argv[++i];
        };
        if (a == "--account") {
            std::string v = value();
            auto at = v.find('@');
            if (at == std::string::npos || at == 0 || at + 1 == v.size()) usage("--account wants LP@DOMAIN");
            o.accounts.push_back({v.substr(0, at), v.substr(at + 1)});
        } else if (a == "--rcpts") {
            o.rcpts = number(value(), "--rcpts");
        } else if (a == "--in-flight") {
            o.in_flight = number(value(), "--in-flight");
        } else if (a == "--count") {
            o.count = number(value(), "--count");
        } else if (a == "--prefix") {
            o.prefix = value();
        } else if (a == "--big-percent") {
            o.big_percent = static_cast<unsigned>(number(value(), "--big-percent"));
        } else if (a == "--lines") {
            std::string v = value();
            auto colon = v.find(':');
            if (colon == std::string::npos) usage("--lines wants MIN:MAX");
            o.min_lines = number(v.substr(0, colon), "--lines");
            o.max_lines = number(v.substr(colon + 1), "--lines");
            if (o.min_lines == 0 || o.max_lines < o.min_lines) usage("--lines wants 0 < MIN <= MAX");
        } else if (a == "--fail-pause") {
            o.fail_pause_ms = static_cast<unsigned>(number(value(), "--fail-pause"));
        } else if (a == "--append-percent") {
            o.append_percent = static_cast<unsigned>(number(value(), "--append-percent"));
            if (o.append_percent > 100) usage("--append-percent must be 0..100");
        } else if (a == "--seed") {
            o.seed = number(value(), "--seed");
            o.seeded = true;
        } else if (!a.empty() && a[0] == '-') {
            usage("unknown option " + a);
        } else if (o.data.empty()) {
            o.data = a;
        } else {
            usage("more than one data directory");
        }
    }
    if (o.data.empty()) usage("no data directory");
    if (o.accounts.empty()) o.accounts.push_back({"alice", "example.test"});
    if (o.rcpts == 0 || o.rcpts > o.accounts.size()) usage("--rcpts must be 1..number of accounts");
    if (o.in_flight == 0) usage("--in-flight must be at least 1");
    if (o.prefix.empty()) o.prefix = fmt::format("w{}", ::getpid());
    return o;
}

// The internal date an append of message id gets, so a test can tell it from the id alone.
std::int64_t internal_date_of(const std::string& id) {
    std::uint32_t h = 2166136261u;
    for (unsigned char c : id) h = (h ^ c) * 16777619u;
    return 1000000000 + static_cast<std::int64_t>(h % 700000000u);
}

void emit(const std::string& line) {
    // One write per line; a pipe write up to PIPE_BUF is atomic, so a SIGKILL never leaves half
    // of an acknowledgement.
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
}

class Writer {
public:
    Writer(asio::io_context& loop, storage::Store& store, Options opts)
        : loop_(loop),
          store_(store),
          o_(std::move(opts)),
          rng_(o_.seeded ? o_.seed : std::random_device{}()),
          signals_(loop, SIGTERM, SIGINT) {
        signals_.async_wait([this](std::error_code ec, int) {
            if (ec) return;
            stopping_ = true;
            maybe_finish();
        });
    }

    // Opens every account first (that is when recovery runs), then starts delivering.
    void run() {
        auto left = std::make_shared<std::size_t>(o_.accounts.size());
        for (auto& a : o_.accounts) {
            store_.with_account(a.localpart, a.domain, [](storage::Account&) {},
                                [this, a, left](std::string err) {
                                    if (!err.empty()) std::fprintf(stderr, "store_writer: open %s: %s\n", a.name().c_str(), err.c_str());
                                    if (--*left == 0) fill();
                                });
        }
    }

    std::uint64_t acked() const { return acked_; }
    std::uint64_t failed() const { return failed_; }

private:
    struct Job {
        std::string id;
        std::vector<Account> to;
        std::string text;
        std::string mailbox = "INBOX";  // another one: an append
        std::size_t off = 0;
        std::unique_ptr<storage::DeliveryTarget> d;
        std::unique_ptr<storage::AppendTarget> a;  // an append instead of a delivery
    };

    bool more() const { return !stopping_ && (o_.count == 0 || started_ < o_.count); }

    void fill() {
        while (in_flight_ < o_.in_flight && more()) start_one();
        maybe_finish();
    }

    // Nothing in flight and nothing more to do: let the loop run out of work.
    void maybe_finish() {
        if (in_flight_ == 0 && !more() && !pausing_) signals_.cancel();
    }

    std::uint64_t pick_lines() {
        if (o_.max_lines) return std::uniform_int_distribution<std::uint64_t>(o_.min_lines, o_.max_lines)(rng_);
        unsigned r = std::uniform_int_distribution<unsigned>(0, 99)(rng_);
        if (r < o_.big_percent) return std::uniform_int_distribution<std::uint64_t>(2500, 8000)(rng_);
        if (r < o_.big_percent + 20) return std::uniform_int_distribution<std::uint64_t>(40, 2000)(rng_);
        return std::uniform_int_distribution<std::uint64_t>(1, 40)(rng_);
    }

    void start_one() {
        std::uint64_t seq = started_++;
        ++in_flight_;
        auto job = std::make_shared<Job>();
        std::uint64_t lines = pick_lines();
        job->id = fmt::format("{}-{}x{}", o_.prefix, seq, lines);
        // No draw at 0%, so a seed replays the same deliveries as before appends existed.
        bool append = o_.append_percent && std::uniform_int_distribution<unsigned>(0, 99)(rng_) < o_.append_percent;
        std::size_t n_to = append ? 1 : o_.rcpts;
        for (std::size_t k = 0; k < n_to; ++k) job->to.push_back(o_.accounts[(next_account_ + k) % o_.accounts.size()]);
        next_account_ = (next_account_ + 1) % o_.accounts.size();
        job->text = fmt::format("Message-ID: <{}@store-writer.test>\r\nSubject: store_writer {}\r\n\r\n", job->id, job->id);
        for (std::uint64_t k = 0; k < lines; ++k) job->text += fmt::format("{} line {}\r\n", job->id, k);
        if (append) {
            bool sent = appends_++ % 2 == 0;
            job->mailbox = sent ? "Sent" : "Drafts";
            std::uint32_t flags = sent ? storage::kSeen : storage::kDraft | storage::kSeen;
            const Account& a = job->to[0];
            job->a = store_.append({a.localpart, a.domain}, job->mailbox, flags, internal_date_of(job->id));
            feed(job);
            return;
        }
        job->d = store_.delivery();
        job->d->start("writer@store-writer.test", true);
        for (auto& a : job->to) job->d->add_recipient(a.localpart, a.domain, a.name());
        feed(job);
    }

    // What a session does: hand the body over in pieces, stop above a limit until the writes
    // catch up.
    void feed(const std::shared_ptr<Job>& job) {
        constexpr std::size_t kPiece = 16 * 1024, kLimit = 256 * 1024;
        while (job->off < job->text.size()) {
            std::size_t n = std::min(kPiece, job->text.size() - job->off);
            auto piece = std::string_view(job->text).substr(job->off, n);
            job->off += n;
            if (job->a) job->a->body(piece);
            else job->d->body(piece);
            if ((job->a ? job->a->buffered() : job->d->buffered()) >= kLimit) {
                auto again = [this, job] { asio::post(loop_, [this, job] { feed(job); }); };
                if (job->a) job->a->on_drained(again);
                else job->d->on_drained(again);
                return;
            }
        }
        if (job->a) {
            job->a->commit([this, job](storage::Outcome<std::uint32_t> o) {
                std::vector<storage::RecipientResult> res(1);
                res[0].ok = o.ok();
                if (o.ok()) res[0].uid = *o.value;
                res[0].temporary = !o.error;  // over quota, no such mailbox, a refused name: permanent
                res[0].reason = o.reason;
                committed(job, std::move(res));
            });
            return;
        }
        job->d->commit([this, job](std::vector<storage::RecipientResult> res) { committed(job, std::move(res)); });
    }

    void committed(const std::shared_ptr<Job>& job, std::vector<storage::RecipientResult> res) {
        bool any_failed = res.size() != job->to.size();
        for (std::size_t i = 0; i < job->to.size(); ++i) {
            if (i < res.size() && res[i].ok) {
                ++acked_;
                emit(fmt::format("ACK {} {} {} {}\n", job->id, job->to[i].name(), res[i].uid, job->mailbox));
            } else {
                ++failed_;
                any_failed = true;
                bool temporary = i < res.size() ? res[i].temporary : true;
                emit(fmt::format("FAIL {} {} {} {}\n", job->id, job->to[i].name(), temporary ? "temporary" : "permanent",
                                 job->mailbox));
                std::fprintf(stderr, "store_writer: %s to %s %s failed: %s\n", job->id.c_str(), job->to[i].name().c_str(),
                             job->mailbox.c_str(),
                             i < res.size() ? res[i].reason.c_str() : "no result");
            }
        }
        // Drop the delivery outside its own callback; it holds the fds of failed copies.
        if (job->d || job->a) asio::post(loop_, [job] {
            job->d.reset();
            job->a.reset();
        });
        --in_flight_;
        if (any_failed && o_.fail_pause_ms) {
            auto t = std::make_shared<asio::steady_timer>(loop_, std::chrono::milliseconds(o_.fail_pause_ms));
            ++pausing_;
            t->async_wait([this, t](std::error_code) {
                --pausing_;
                fill();
            });
        } else {
            fill();
        }
    }

    asio::io_context& loop_;
    storage::Store& store_;
    Options o_;
    std::mt19937_64 rng_;
    std::uint64_t started_ = 0, acked_ = 0, failed_ = 0, appends_ = 0;
    std::size_t in_flight_ = 0, next_account_ = 0, pausing_ = 0;
    bool stopping_ = false;
    asio::signal_set signals_;
};

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    std::setvbuf(stdout, nullptr, _IOFBF, 1 << 16);
    asio::io_context loop;
    mark_loop_thread(true);
    std::uint64_t acked = 0, failed = 0;
    {
        // The embedded defaults, as `pillarbox serve` without a config file has them.
        auto settings = storage::StoreSettings::from(config::Config::defaults(config::Environment{false, "writer.store-writer.test"}));
        settings.data_directory = o.data;
        storage::Store store(loop, settings);
        Writer w(loop, store, o);
        w.run();
        loop.run();
        acked = w.acked();
        failed = w.failed();
    }
    std::fprintf(stderr, "store_writer: done, %llu acknowledged, %llu failed, %llu blocking calls on the loop\n",
                 static_cast<unsigned long long>(acked), static_cast<unsigned long long>(failed),
                 static_cast<unsigned long long>(blocking_calls_on_loop()));
    return blocking_calls_on_loop() ? 3 : 0;
}
