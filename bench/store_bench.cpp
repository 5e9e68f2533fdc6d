// Durable deliveries per second through storage::Store at 1..N concurrent writers, next to a plain
// write+fsync+rename+fsync(dir) loop on the same disk: shows what group commit buys. A benchmark,
// never a pass/fail test; it only fails when the store loses or fails a delivery.
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "server/config.hpp"
#include "server/log.hpp"
#include "server/loop_guard.hpp"
#include "storage/account.hpp"
#include "storage/store.hpp"

using namespace pillarbox;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUsage = R"(usage: store_bench [options]
Measures durable deliveries per second through the Store (group commit) at several numbers of
concurrent writers, next to a plain write+fsync+rename+fsync(dir) loop (one writer).

  --dir DIR         parent folder for the temporary data (default: the current directory);
                    its filesystem is what gets measured; a tmpfs makes the figures meaningless
  --seconds S       run each configuration for S seconds (default 3)
  --messages N      run each configuration for N messages instead of a fixed time
  --sizes LIST      message sizes in bytes, K/M suffixes allowed (default 2K,100K)
  --writers LIST    concurrent writers through the Store (default 1,8,64)
  --accounts N      spread the deliveries over N accounts (default 1: one busy mailbox)
  --io-threads N    StoreSettings::io_threads (default: the worker_threads default)
  --rounds N        run the whole sequence N times and report each configuration's median
                    round (default 1); a shared or noisy disk wants 3
  --no-baseline     skip the plain fsync loop
  --keep            keep the temporary data and print where it is
  -h, --help        this text
)";

struct Options {
    fs::path dir;
    double seconds = 3.0;
    std::uint64_t messages = 0;  // 0: fixed time
    std::vector<std::size_t> sizes{2048, 100 * 1024};
    std::vector<std::size_t> writers{1, 8, 64};
    std::size_t accounts = 1;
    std::size_t io_threads = 0;
    std::size_t rounds = 1;
    bool baseline = true;
    bool keep = false;
};

[[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "store_bench: %s\n%s", msg.c_str(), kUsage);
    std::exit(2);
}

std::size_t parse_size(const std::string& s) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    std::string suffix(end);
    if (suffix == "K" || suffix == "k") v *= 1024;
    else if (suffix == "M" || suffix == "m") v *= 1024 * 1024;
    else if (!suffix.empty() || end == s.c_str()) usage_error("bad number: " + s);
    if (v < 1) usage_error("must be at least 1: " + s);
    return static_cast<std::size_t>(v);
}

std::vector<std::size_t> parse_list(const std::string& s) {
    std::vector<std::size_t> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty()) out.push_back(parse_size(item));
    if (out.empty()) usage_error("empty list: " + s);
    return out;
}

Options parse_options(int argc, char** argv) {
    Options o;
    auto value = [&](int& i) -> std::string {
        if (i + 1 >= argc) usage_error(std::string(argv[i]) + " needs a value");
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else if (a == "--dir") o.dir = value(i);
        else if (a == "--seconds") {
            o.seconds = std::strtod(value(i).c_str(), nullptr);
            if (!(o.seconds > 0)) usage_error("--seconds must be > 0");
        } else if (a == "--messages") o.messages = parse_size(value(i));
        else if (a == "--sizes") o.sizes = parse_list(value(i));
        else if (a == "--writers") o.writers = parse_list(value(i));
        else if (a == "--accounts") o.accounts = parse_size(value(i));
        else if (a == "--io-threads") o.io_threads = parse_size(value(i));
        else if (a == "--rounds") o.rounds = parse_size(value(i));
        else if (a == "--no-baseline") o.baseline = false;
        else if (a == "--keep") o.keep = true;
        else usage_error("unknown option " + a);
    }
    if (o.dir.empty()) o.dir = fs::current_path();
    return o;
}

// The filesystem a folder lives on, from /proc/self/mountinfo (matched by device number), with
// statfs's magic number as a fallback and as the tmpfs check.
struct FsInfo {
    std::string type, source, mount_point;
    bool memory_backed = false;
};

FsInfo filesystem_of(const fs::path& dir) {
    FsInfo info;
    struct statfs sfs {};
    if (::statfs(dir.c_str(), &sfs) == 0) {
        constexpr long kTmpfs = 0x01021994, kRamfs = 0x858458f6;
        info.memory_backed = sfs.f_type == kTmpfs || sfs.f_type == kRamfs;
        info.type = fmt::format("magic 0x{:x}", static_cast<unsigned long>(sfs.f_type));
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return info;
    std::string want = fmt::format("{}:{}", major(st.st_dev), minor(st.st_dev));
    const std::string d = fs::weakly_canonical(dir).string();
    std::ifstream in("/proc/self/mountinfo");
    std::size_t best = 0;
    for (std::string line; std::getline(in, line);) {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        std::istringstream ls(line);
        std::string id, parent, devno, root, mnt;
        ls >> id >> parent >> devno >> root >> mnt;
        if (devno != want) continue;
        std::string tok;
        while (ls >> tok && tok != "-") {
        }
        std::string type, source;
        ls >> type >> source;
        // Several mounts may share a device (bind mounts): take the longest mount point that is a
        // prefix of the folder.
        if (d.rfind(mnt, 0) == 0 && mnt.size() >= best) {
            best = mnt.size();
            info.type = type;
            info.source = source;
            info.mount_point = mnt;
        }
    }
    if (info.type == "tmpfs" || info.type == "ramfs") info.memory_backed = true;
    return info;
}

// An RFC 5322 message of exactly `size` bytes, CRLF line ends, 76-character body lines.
std::string make_message(std::size_t size) {
    std::string m =
        "From: Bench Sender <sender@bench.example>\r\n"
        "To: Bench Recipient <user0@bench.example>\r\n"
        "Subject: store benchmark\r\n"
        "Message-ID: <bench@bench.example>\r\n"
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n";
    static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 ";
    std::size_t n = 0;
    while (m.size() < size) {
        std::size_t left = size - m.size();
        if (left <= 2) {
            m.append(left, '.');
            break;
        }
        std::size_t len = std::min<std::size_t>(76, left - 2);
        for (std::size_t i = 0; i < len; ++i) m.push_back(kAlphabet[(n++ * 7) % (sizeof kAlphabet - 1)]);
        m += "\r\n";
    }
    m.resize(size);
    return m;
}

std::size_t count_files(const fs::path& dir) {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        if (it->is_regular_file()) ++n;
    return n;
}

double cpu_seconds() {
    struct rusage ru {};
    ::getrusage(RUSAGE_SELF, &ru);
    auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// Flushes whatever the previous configuration left dirty, so it is not billed to the next one.
void settle(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::syncfs(fd);
        ::close(fd);
    }
}

struct Result {
    std::size_t size = 0;
    std::string label;       // "plain" or the writer count
    std::size_t writers = 0;  // 0 for the baseline
    std::uint64_t messages = 0;
    double seconds = 0;
    double cpu = 0;
    double batch = 0;  // average messages per group commit (store only)
    double p50_ms = 0, p99_ms = 0;
    double rate() const { return seconds > 0 ? static_cast<double>(messages) / seconds : 0; }
    double mbps() const { return rate() * static_cast<double>(size) / 1e6; }
};

void percentiles(std::vector<double>& lat, Result& r) {
    if (lat.empty()) return;
    std::sort(lat.begin(), lat.end());
    auto at = [&](double q) { return lat[std::min(lat.size() - 1, static_cast<std::size_t>(q * static_cast<double>(lat.size())))]; };
    r.p50_ms = at(0.50);
    r.p99_ms = at(0.99);
}


[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "store_bench: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

// The disk's own limit for one writer: what a naive durable Maildir delivery costs per message.
Result run_baseline(const fs::path& root, const std::string& message, const Options& o) {
    fs::create_directories(root / "tmp");
    fs::create_directories(root / "new");
    const fs::path new_dir = root / "new";
    int dfd = ::open(new_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) die("open " + new_dir.string());
    settle(root);
    Result r;
    r.size = message.size();
    r.label = "plain";
    std::vector<double> lat;
    const double cpu0 = cpu_seconds();
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
    for (std::uint64_t i = 0;; ++i) {
        auto now = Clock::now();
        if (o.messages ? i >= o.messages : now >= deadline) break;
        std::string name = fmt::format("{}.bench{}", i, ::getpid());
        fs::path tmp = root / "tmp" / name, dst = new_dir / name;
        int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) die("create " + tmp.string());
        if (!storage::write_fully(fd, message)) die("write " + tmp.string());
        if (::fsync(fd) != 0) die("fsync " + tmp.string());
        ::close(fd);
        if (::rename(tmp.c_str(), dst.c_str()) != 0) die("rename " + dst.string());
        if (::fsync(dfd) != 0) die("fsync " + new_dir.string());
        ++r.messages;
        lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - now).count());
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.cpu = cpu_seconds() - cpu0;
    ::close(dfd);
    percentiles(lat, r);
    if (std::size_t on_disk = count_files(new_dir); on_disk != r.messages) {
        std::fprintf(stderr, "store_bench: plain baseline: %zu files in new/, %llu written\n", on_disk,
                     static_cast<unsigned long long>(r.messages));
        std::exit(1);
    }
    return r;
}

// N writers through one Store: each keeps exactly one delivery in flight and starts the next as
// soon as its commit callback fires.
class StoreRun {
public:
    StoreRun(asio::io_context& io, const fs::path& data, const std::string& message, std::size_t writers, const Options& o)
        : io_(io), data_(data), message_(message), writers_(writers), o_(o) {}

    Result run() {
        // The embedded defaults, as `pillarbox serve` without a config file has them.
        auto settings = storage::StoreSettings::from(config::Config::defaults(config::Environment{false, "bench.example"}));
        settings.data_directory = data_;
        if (o_.io_threads) settings.io_threads = o_.io_threads;
        store_ = std::make_unique<storage::Store>(io_, settings);

        // Create the accounts before the clock starts: first use builds the Maildir++ tree.
        for (std::size_t a = 0; a < o_.accounts; ++a)
            store_->with_account(account_name(a), kDomain, [](storage::Account&) {}, [&](std::string err) {
                if (!err.empty()) fail("open account: " + err);
            });
        io_.run();
        io_.restart();
        settle(data_);

        slots_.resize(writers_);
        const double cpu0 = cpu_seconds();
        t0_ = Clock::now();
        deadline_ = t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.seconds));
        for (std::size_t w = 0; w < writers_; ++w) start(w);
        io_.run();
        io_.restart();
        Result r;
        r.seconds = acked_ ? std::chrono::duration<double>(last_ack_ - t0_).count() : 0;
        r.cpu = cpu_seconds() - cpu0;
        r.size = message_.size();
        r.writers = writers_;
        r.label = std::to_string(writers_);
        r.messages = acked_;
        r.batch = batches_ ? static_cast<double>(acked_) / static_cast<double>(batches_) : 0;
        percentiles(latencies_, r);
        if (!failure_.empty()) fail(failure_);
        verify();
        slots_.clear();
        store_.reset();  // joins the Store's threads, closes the indexes
        return r;
    }

private:
    static constexpr const char* kDomain = "bench.example";
    static std::string account_name(std::size_t a) { return fmt::format("user{}", a); }

    struct Slot {
        std::unique_ptr<storage::DeliveryTarget> delivery;
        Clock::time_point started;
    };

    [[noreturn]] void fail(const std::string& why) {
        std::fprintf(stderr, "store_bench: %zu writers, %zu bytes: %s\n", writers_, message_.size(), why.c_str());
        std::exit(1);
    }

    bool more() const {
        if (!failure_.empty()) return false;
        if (o_.messages) return started_ < o_.messages;
        return Clock::now() < deadline_;
    }

    void start(std::size_t w) {
        if (!more()) return;
        std::size_t account = started_++ % o_.accounts;
        auto& slot = slots_[w];
        // Replaces (and drops) the previous, committed handle.
        slot.delivery = store_->delivery();
        slot.started = Clock::now();
        std::string lp = account_name(account);
        slot.delivery->start("sender@bench.example", true);
        slot.delivery->add_recipient(lp, kDomain, lp + "@" + kDomain);
        slot.delivery->body(message_);
        slot.delivery->commit([this, w](std::vector<storage::RecipientResult> res) { committed(w, std::move(res)); });
    }

    void committed(std::size_t w, std::vector<storage::RecipientResult> res) {
        auto now = Clock::now();
        if (res.size() != 1 || !res[0].ok) {
            failure_ = res.empty() ? "no recipient result" : "delivery failed: " + res[0].reason;
        } else {
            ++acked_;
            last_ack_ = now;
            latencies_.push_back(std::chrono::duration<double, std::milli>(now - slots_[w].started).count());
        }
        // Every callback of one group commit runs inside the same loop handler; a marker posted
        // behind them counts the batches.
        if (!in_batch_) {
            in_batch_ = true;
            ++batches_;
            asio::post(io_, [this] { in_batch_ = false; });
        }
        start(w);
    }

    // Every acknowledged message must be in new/ and in the index, and nothing left in tmp/.
    void verify() {
        std::size_t files = 0, tmp = 0;
        std::uint64_t indexed = 0;
        for (std::size_t a = 0; a < o_.accounts; ++a) {
            auto root = store_->account_root(account_name(a), kDomain);
            files += count_files(root / "new");
            tmp += count_files(root / "tmp");
            store_->with_account(account_name(a), kDomain,
                                 [&](storage::Account& acc) { indexed += acc.mailbox("INBOX").uidnext - 1; },
                                 [&](std::string err) {
                                     if (!err.empty()) fail("read index: " + err);
                                 });
            io_.run();
            io_.restart();
        }
        if (files != acked_ || indexed != acked_ || tmp != 0)
            fail(fmt::format("{} acknowledged, but {} files in new/, {} in the index, {} left in tmp/", acked_, files, indexed, tmp));
    }

    asio::io_context& io_;
    fs::path data_;
    const std::string& message_;
    std::size_t writers_;
    const Options& o_;
    std::unique_ptr<storage::Store> store_;
    std::vector<Slot> slots_;
    Clock::time_point t0_, deadline_, last_ack_;
    std::uint64_t started_ = 0, acked_ = 0, batches_ = 0;
    bool in_batch_ = false;
    std::string failure_;
    std::vector<double> latencies_;
};

std::string size_label(std::size_t n) {
    if (n % (1024 * 1024) == 0) return fmt::format("{} MiB", n / (1024 * 1024));
    if (n % 1024 == 0) return fmt::format("{} KiB", n / 1024);
    return fmt::format("{} B", n);
}

const Clock::time_point g_start = Clock::now();
double since_start() { return std::chrono::duration<double>(Clock::now() - g_start).count(); }

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five;
    in >> one >> five;
    return one.empty() ? "?" : one + " " + five;
}

std::string ratio(double a, double b) { return b > 0 ? fmt::format("{:.2f}x", a / b) : "-"; }

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    log::configure("store_bench", log::Level::Warning, "");
    mark_loop_thread(true);  // so the Store's blocking_call() check watches this loop

    std::error_code ec;
    fs::create_directories(o.dir, ec);
    std::string tmpl = (fs::absolute(o.dir) / "pillarbox-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) die("mkdtemp " + tmpl);
    const fs::path top = tmpl;

    FsInfo fsinfo = filesystem_of(top);
    std::printf("store_bench: data in %s\n", top.c_str());
    std::printf("filesystem: %s on %s (mounted at %s)\n", fsinfo.type.c_str(), fsinfo.source.empty() ? "?" : fsinfo.source.c_str(),
                fsinfo.mount_point.empty() ? "?" : fsinfo.mount_point.c_str());
    if (fsinfo.memory_backed)
        std::printf("WARNING: %s is memory-backed: fsync costs nothing there and these figures mean nothing; use --dir on a disk\n",
                    fsinfo.type.c_str());
    std::printf("run: %s per configuration, %zu round(s), %zu account(s), %ld CPUs, load average %s\n",
                o.messages ? fmt::format("{} messages", o.messages).c_str() : fmt::format("{:g} s", o.seconds).c_str(), o.rounds,
                o.accounts, ::sysconf(_SC_NPROCESSORS_ONLN), load_average().c_str());
    std::fflush(stdout);

    // Configurations in the order they run; rounds repeat the whole sequence so that a slow spell
    // of a shared disk spreads over all of them.
    struct Config {
        std::size_t size, writers;  // writers 0: the plain baseline
        std::vector<Result> rounds;
    };
    std::vector<Config> configs;
    for (std::size_t size : o.sizes) {
        if (o.baseline) configs.push_back({size, 0, {}});
        for (std::size_t w : o.writers) configs.push_back({size, w, {}});
    }
    asio::io_context io;
    int n = 0;
    for (std::size_t round = 0; round < o.rounds; ++round) {
        for (auto& c : configs) {
            const std::string message = make_message(c.size);
            fs::path data = top / fmt::format("{:03d}-{}-{}", n++, c.writers ? "store" : "plain", c.size);
            c.rounds.push_back(c.writers ? StoreRun(io, data, message, c.writers, o).run() : run_baseline(data, message, o));
            std::printf("  %-8s %6s writers: %8.0f msgs/s   [t=%.1fs]\n", size_label(c.size).c_str(),
                        c.writers ? std::to_string(c.writers).c_str() : "plain", c.rounds.back().rate(), since_start());
            std::fflush(stdout);
        }
    }

    auto median = [](const Config& c) {
        std::vector<const Result*> v;
        for (auto& r : c.rounds) v.push_back(&r);
        std::sort(v.begin(), v.end(), [](const Result* a, const Result* b) { return a->rate() < b->rate(); });
        return *v[v.size() / 2];
    };
    auto find = [&](std::size_t size, std::size_t writers) -> std::optional<Result> {
        for (auto& c : configs)
            if (c.size == size && c.writers == writers) return median(c);
        return std::nullopt;
    };

    std::printf("\n%-8s %7s %8s %9s %8s %8s %9s %8s %8s %6s %6s", "size", "writers", "msgs", "msgs/s", "MB/s", "vs 1 wr", "vs plain",
                "p50 ms", "p99 ms", "batch", "cpu s");
    if (o.rounds > 1) std::printf(" %15s", "msgs/s min-max");
    std::printf("\n");
    for (auto& c : configs) {
        Result r = median(c);
        auto one = find(c.size, 1);
        auto plain = find(c.size, 0);
        std::string vs_one = c.writers && one ? ratio(r.rate(), one->rate()) : "-";
        std::string vs_plain = plain ? ratio(r.rate(), plain->rate()) : "-";
        std::string batch = c.writers ? fmt::format("{:.1f}", r.batch) : "-";
        std::printf("%-8s %7s %8llu %9.0f %8.2f %8s %9s %8.2f %8.2f %6s %6.2f", size_label(c.size).c_str(), r.label.c_str(),
                    static_cast<unsigned long long>(r.messages), r.rate(), r.mbps(), vs_one.c_str(), vs_plain.c_str(), r.p50_ms,
                    r.p99_ms, batch.c_str(), r.cpu);
        if (o.rounds > 1) {
            auto [lo, hi] = std::minmax_element(c.rounds.begin(), c.rounds.end(),
                                                [](const Result& a, const Result& b) { return a.rate() < b.rate(); });
            std::printf(" %15s", fmt::format("{:.0f}-{:.0f}", lo->rate(), hi->rate()).c_str());
        }
        std::printf("\n");
    }
    std::printf("MB = 10^6 bytes of message. plain = one writer doing write+fsync+rename+fsync(dir) per message.\n"
                "batch = messages per group commit. p50/p99 = start of delivery to commit callback.\n"
                "Every acknowledged message was verified in new/ and in the index.\n");

    // The project's target, reported, never enforced: the most writers at least 5x one writer.
    std::size_t most = o.writers.empty() ? 0 : *std::max_element(o.writers.begin(), o.writers.end());
    if (most > 1) {
        std::string line;
        for (std::size_t size : o.sizes) {
            auto one = find(size, 1), many = find(size, most);
            if (!one || !many || one->rate() <= 0) continue;
            double x = many->rate() / one->rate();
            line += fmt::format("  {}: {:.1f}x ({})", size_label(size), x, x >= 5 ? "met" : "NOT met");
        }
        if (!line.empty()) std::printf("target %zu writers >= 5x 1 writer:%s\n", most, line.c_str());
    }
    if (auto flagged = blocking_calls_on_loop())
        std::printf("WARNING: %llu blocking calls ran on the event loop thread\n", static_cast<unsigned long long>(flagged));
    if (fsinfo.memory_backed) std::printf("WARNING: memory-backed filesystem (%s): figures are meaningless\n", fsinfo.type.c_str());
    std::fflush(stdout);

    if (o.keep) {
        std::printf("kept: %s\n", top.c_str());
    } else {
        // Not timed; on a filesystem mounted with -o discard this can take longer than the run.
        fs::remove_all(top, ec);
        if (ec) std::fprintf(stderr, "store_bench: could not remove %s: %s\n", top.c_str(), ec.message().c_str());
    }
    return 0;
}
