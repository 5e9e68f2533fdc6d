// Outbound queue: streaming writes, group commit, envelope JSON and startup recovery (see
// queue.hpp for the layout and the crash-safety rule).
#include "storage/queue/queue.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "server/background.hpp"
#include "server/file_modes.hpp"
#include "server/log.hpp"
#include "server/loop_guard.hpp"
#include "server/utf8.hpp"
#include "storage/account.hpp"  // fsync_dir
#include "storage/store.hpp"    // write_fully

namespace pillarbox::storage::queue {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kWriteChunk = 64 * 1024;  // body bytes gathered before a write job
constexpr std::size_t kMaxField = 2048;
constexpr std::size_t kMaxEnvelopeFile = 4 * 1024 * 1024;  // a reader never loads more
constexpr int kVersion = 1;

std::string errno_text(int err) { return std::strerror(err); }


// Every string ends up in a JSON file and later in SMTP commands and log lines: no CR/LF
// smuggling, nothing the JSON writer would refuse.
std::string check_text(std::string_view what, const std::string& s) {
    if (s.size() > kMaxField) return fmt::format("{} is longer than {} bytes", what, kMaxField);
    if (std::any_of(s.begin(), s.end(), [](char ch) {
            auto c = static_cast<unsigned char>(ch);
            return c < 0x20 || c == 0x7f;
        }))
        return fmt::format("{} contains a control character", what);
    if (!valid_utf8(s)) return fmt::format("{} is not UTF-8", what);
    return "";
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr std::pair<unsigned, const char*> kNotifyNames[] = {
    {notify::never, "never"}, {notify::success, "success"}, {notify::failure, "failure"}, {notify::delay, "delay"}};

// rename(2) that never replaces: a queue id that somehow exists already must fail the commit,
// not overwrite a queued message. link+unlink where the file system lacks RENAME_NOREPLACE.
bool rename_noreplace(const std::string& from, const std::string& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
    if (errno != EINVAL && errno != ENOSYS) return false;
    if (::link(from.c_str(), to.c_str()) != 0) return false;
    ::unlink(from.c_str());  // a leftover tmp name is recover()'s business
    return true;
}

// The data of every file of a batch, durable. A batch of several messages starts with one
// syncfs(), which writes them all back under one journal commit (the store's group commit does
// the same); a lone message starts write-back of its two files together. Either way the
// fdatasync() calls after it find little left to do, and they report a write-back error of that
// very file. Measured here (20 writers, ~11 messages a batch, a busy shared disk): syncfs 6-15
// ms a batch against 14-32 ms for one fdatasync per file; a lone message 0.3-0.4 ms against 0.5-0.8.
std::string sync_files(const std::vector<std::pair<int, std::string>>& files) {
    blocking_call("queue::sync_files");
    if (files.size() >= 4) {
        if (::syncfs(files.front().first) != 0) return fmt::format("syncfs: {}", errno_text(errno));
    } else {
        for (auto& [fd, path] : files) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    for (auto& [fd, path] : files)
        if (::fdatasync(fd) != 0) return fmt::format("fdatasync {}: {}", path, errno_text(errno));
    return "";
}

}  // namespace

// ---- envelope JSON ----

bool valid_id(std::string_view id) {
    return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); });
}

std::string validate(const Envelope& e) {
    if (!valid_id(e.id)) return "no valid queue id";
    if (auto w = check_text("sender", e.sender); !w.empty()) return w;
    if (e.recipients.empty()) return "no recipients";
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
        auto& r = e.recipients[i];
        if (r.address.empty()) return fmt::format("recipient {} has no address", i + 1);
        if (auto w = check_text(fmt::format("recipient {} address", i + 1), r.address); !w.empty()) return w;
        if (auto w = check_text(fmt::format("recipient {} orcpt", i + 1), r.orcpt); !w.empty()) return w;
        if (r.notify > 15) return fmt::format("recipient {} has unknown notify bits", i + 1);
        if ((r.notify & notify::never) && r.notify != notify::never)
            return fmt::format("recipient {} combines notify never with others", i + 1);
    }
    if (e.ret != "" && e.ret != "FULL" && e.ret != "HDRS") return "ret is not FULL, HDRS or empty";
    for (auto [what, s] : {std::pair{"envid", &e.envid}, {"client_ip", &e.client_ip}, {"helo", &e.helo}, {"sasl_user", &e.sasl_user},
                           {"reason", &e.reason}})
        if (auto w = check_text(what, *s); !w.empty()) return w;
    if (e.received < 0 || e.next_attempt < 0) return "negative time";
    return "";
}

std::string to_json(const Envelope& e) {
    if (auto why = validate(e); !why.empty()) throw std::invalid_argument("invalid envelope: " + why);
    // ordered_json: fields stay in this order, so an admin reading the file sees id first.
    nlohmann::ordered_json j;
    j["version"] = kVersion;
    j["id"] = e.id;
    j["sender"] = e.sender;
    auto rcpts = nlohmann::ordered_json::array();
    for (auto& r : e.recipients) {
        auto n = nlohmann::ordered_json::array();
        for (auto [bit, name] : kNotifyNames)
            if (r.notify & bit) n.push_back(name);
        rcpts.push_back({{"address", r.address}, {"notify", n}, {"orcpt", r.orcpt}});
    }
    j["recipients"] = std::move(rcpts);
    j["ret"] = e.ret;
    j["envid"] = e.envid;
    j["smtputf8"] = e.smtputf8;
    j["body"] = e.eightbit ? "8bitmime" : "7bit";
    j["requiretls"] = e.requiretls;
    j["size"] = e.size;
    j["received"] = e.received;
    j["attempts"] = e.attempts;
    j["next_attempt"] = e.next_attempt;
    j["client_ip"] = e.client_ip;
    j["helo"] = e.helo;
    j["sasl_user"] = e.sasl_user;
    if (!e.reason.empty()) j["reason"] = e.reason;
    try {
        return j.dump(2) + "\n";
    } catch (const nlohmann::json::exception& x) {
        throw std::invalid_argument(std::string("invalid envelope: ") + x.what());
    }
}

namespace {

// Field readers for from_json: each returns "" or what is wrong.
using Json = nlohmann::json;

std::string get_string(const Json& j, const char* key, std::string& out, bool required = true) {
    auto it = j.find(key);
    if (it == j.end()) return required ? fmt::format("{} missing", key) : "";
    if (!it->is_string()) return fmt::format("{} is not a string", key);
    out = it->get<std::string>();
    return "";
}

std::string get_bool(const Json& j, const char* key, bool& out) {
    auto it = j.find(key);
    if (it == j.end()) return fmt::format("{} missing", key);
    if (!it->is_boolean()) return fmt::format("{} is not true or false", key);
    out = it->get<bool>();
    return "";
}

template <typename T>
std::string get_integer(const Json& j, const char* key, T& out) {
    auto it = j.find(key);
    if (it == j.end()) return fmt::format("{} missing", key);
    if (!it->is_number_integer()) return fmt::format("{} is not an integer", key);
    if (it->is_number_unsigned()) {
        auto v = it->get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return fmt::format("{} is out of range", key);
        out = static_cast<T>(v);
        return "";
    }
    auto v = it->get<std::int64_t>();
    if (v < 0) return fmt::format("{} is negative", key);
    out = static_cast<T>(v);
    return "";
}

std::string parse_envelope(std::string_view text, Envelope& e) {
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded()) return "not JSON";
    if (!j.is_object()) return "not a JSON object";
    int version = 0;
    if (auto w = get_integer(j, "version", version); !w.empty()) return w;
    if (version != kVersion) return fmt::format("unknown version {}", version);
    std::string body;
    for (auto [key, out] : {std::pair{"id", &e.id}, {"sender", &e.sender}, {"ret", &e.ret}, {"envid", &e.envid}, {"body", &body}})
        if (auto w = get_string(j, key, *out); !w.empty()) return w;
    if (body == "8bitmime") e.eightbit = true;
    else if (body != "7bit") return "body is not 7bit or 8bitmime";
    for (auto [key, out] : {std::pair{"smtputf8", &e.smtputf8}, {"requiretls", &e.requiretls}})
        if (auto w = get_bool(j, key, *out); !w.empty()) return w;
    if (auto w = get_integer(j, "size", e.size); !w.empty()) return w;
    if (auto w = get_integer(j, "received", e.received); !w.empty()) return w;
    if (auto w = get_integer(j, "attempts", e.attempts); !w.empty()) return w;
    if (auto w = get_integer(j, "next_attempt", e.next_attempt); !w.empty()) return w;
    // Log-only fields may be missing: a hand-written .env (a tool, a test) needs none of them.
    for (auto [key, out] : {std::pair{"client_ip", &e.client_ip}, {"helo", &e.helo}, {"sasl_user", &e.sasl_user}, {"reason", &e.reason}})
        if (auto w = get_string(j, key, *out, false); !w.empty()) return w;
    auto rit = j.find("recipients");
    if (rit == j.end() || !rit->is_array()) return "recipients is not a list";
    for (auto& rj : *rit) {
        if (!rj.is_object()) return "a recipient is not an object";
        Recipient r;
        if (auto w = get_string(rj, "address", r.address); !w.empty()) return "recipient " + w;
        if (auto w = get_string(rj, "orcpt", r.orcpt); !w.empty()) return "recipient " + w;
        auto nit = rj.find("notify");
        if (nit == rj.end() || !nit->is_array()) return "recipient notify is not a list";
        for (auto& n : *nit) {
            auto known = std::find_if(std::begin(kNotifyNames), std::end(kNotifyNames),
                                      [&](auto& p) { return n.is_string() && n.get_ref<const std::string&>() == p.second; });
            if (known == std::end(kNotifyNames)) return "recipient notify has an unknown value";
            r.notify |= known->first;
        }
        e.recipients.push_back(std::move(r));
    }
    return validate(e);
}

}  // namespace

std::optional<Envelope> from_json(std::string_view text, std::string* error) {
    Envelope e;
    std::string why = parse_envelope(text, e);
    if (!why.empty()) {
        if (error) *error = std::move(why);
        return std::nullopt;
    }
    return e;
}

// ---- writing ----

namespace detail {

class Message;

// What the Queue and its messages share; outlives the Queue while writers are still held.
struct Core {
    Core(asio::io_context& l, const fs::path& data_directory)
        : loop(l), root(data_directory / "queue"), tmp(root / "tmp"), messages(root / "messages") {
        for (Place p : {Place::Messages, Place::Hold, Place::Incoming}) dirs[static_cast<int>(p)] = root / place_name(p);
        std::random_device rd;
        salt = (static_cast<std::uint64_t>(rd()) ^ static_cast<std::uint64_t>(::getpid())) & 0xFFF;
    }

    // Strictly increasing in this process; see valid_id() for the format.
    std::string next_id() {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        std::uint64_t v = (static_cast<std::uint64_t>(us) << 12) | salt;
        if (v <= last_id) v = last_id + 1;
        last_id = v;
        return fmt::format("{:016X}", v);
    }

    void enqueue(std::shared_ptr<Message> m);  // any thread
    void run_batches();                        // committer thread

    asio::io_context& loop;
    const fs::path root, tmp, messages;
    fs::path dirs[3];                  // by Place
    std::atomic<bool> made[3] = {};    // this process made sure tmp/ and that place exist
    const fs::path& dir(Place p) const { return dirs[static_cast<int>(p)]; }
    asio::thread_pool* io = nullptr;         // loop thread; null once the Queue is going away
    asio::thread_pool* committer = nullptr;  // set for the Queue's whole life
    std::uint64_t salt = 0, last_id = 0;     // loop thread

    std::mutex mu;
    std::vector<std::shared_ptr<Message>> ready;  // files written, waiting for a batch (mu)
    bool batch_running = false;                   // (mu)

    std::atomic<std::uint64_t> commits{0}, batches{0}, dir_fsyncs{0};
};

// One message: the body streams to tmp/<ID>.eml on the io threads (one job at a time, so chunks
// stay in order), the .env joins it at commit, then the committer moves both into messages/.
class Message : public std::enable_shared_from_this<Message> {
public:
    Message(std::shared_ptr<Core> core, Place where) : core_(std::move(core)), place_(where) {}
    ~Message() {
        if (fd_eml_ >= 0) ::close(fd_eml_);
        if (fd_env_ >= 0) ::close(fd_env_);
    }

    void start(Envelope env) {
        if (started_) return;
        started_ = true;
        env_ = std::move(env);
        env_.id = core_->next_id();
        if (env_.received == 0) env_.received = unix_now();
        if (env_.next_attempt == 0) env_.next_attempt = env_.received;
        env_.attempts = 0;
        id_ = env_.id;
        tmp_eml_ = (core_->tmp / (id_ + ".eml")).string();
        tmp_env_ = (core_->tmp / (id_ + ".env")).string();
        eml_ = (core_->dir(place_) / (id_ + ".eml")).string();
        env_path_ = (core_->dir(place_) / (id_ + ".env")).string();
        // Checked now so a bad envelope never costs a body write.
        if (auto why = validate(env_); !why.empty()) failed_ = "invalid envelope: " + why;
    }

    void body(std::string_view chunk) {
        if (!started_ || committing_ || aborted_ || !failed_.empty()) return;
        pending_.append(chunk);
        if (!writing_ && pending_.size() >= kWriteChunk) flush(false);
    }

    std::size_t buffered() const { return pending_.size() + in_flight_; }

    void on_drained(std::function<void()> cb) {
        if (buffered() < kWriteChunk) {
            if (cb) cb();
            return;
        }
        drained_ = std::move(cb);
    }

    void commit(std::function<void(bool, std::string)> done) {
        if (!begin_commit(std::move(done), nullptr))
            return;
        if (!writing_) flush(true);
    }

    // Queue::copy_in: the body comes from src, read on an io thread, then the usual commit.
    void copy_from(std::shared_ptr<const MessageCopy> src, std::function<void(bool, std::string)> done) {
        if (!begin_commit(std::move(done), !src ? "nothing to copy from" : !core_->io ? "the queue is shut down" : nullptr))
            return;
        asio::thread_pool* io = core_->io;
        writing_ = true;
        auto work = asio::make_work_guard(core_->loop);
        asio::post(*io, [self = shared_from_this(), src, work] {
            self->copy_chunks(*src);
            if (self->finish_files()) {
                self->core_->enqueue(self);
                return;
            }
            asio::post(self->core_->loop, [self, work] { self->write_done(true); });
        });
    }

    void abort() {
        if (committing_ || aborted_) return;  // once committing, the commit decides
        aborted_ = true;
        pending_.clear();
        pending_.shrink_to_fit();
        drained_ = nullptr;
        if (!writing_) cleanup();
    }

    const std::string& id() const { return id_; }

private:
    friend struct Core;

    // The common start of commit() and copy_from(): a call that can't commit is answered from the
    // loop (never from inside the call); a failure known already (a write error, or `broken`, a
    // reason the caller found) ends the commit without I/O. True when the caller goes on.
    bool begin_commit(std::function<void(bool, std::string)> done, const char* broken) {
        if (committing_ || aborted_ || !started_) {
            std::string why = committing_ ? "commit called twice" : aborted_ ? "aborted" : "commit without start";
            asio::post(core_->loop, [done = std::move(done), why] {
                if (done) done(false, why);
            });
            return false;
        }
        committing_ = true;
        done_ = std::move(done);
        commit_work_.emplace(core_->loop.get_executor());
        if (failed_.empty() && broken) failed_ = broken;
        if (!failed_.empty()) {
            cleanup();
            asio::post(core_->loop, [self = shared_from_this()] { self->finish(); });
            return false;
        }
        return true;
    }

    void flush(bool final) {
        if (writing_) return;  // the running job's completion flushes again
        asio::thread_pool* io = core_->io;
        if (!io) {
            // The Queue is gone: nothing more reaches the disk; the tmp file is recover()'s.
            failed_ = "the queue is shut down";
            pending_.clear();
            if (final) asio::post(core_->loop, [self = shared_from_this()] { self->finish(); });
            return;
        }
        writing_ = true;
        auto data = std::make_shared<std::string>(std::move(pending_));
        pending_.clear();
        in_flight_ = data->size();
        auto work = asio::make_work_guard(core_->loop);
        asio::post(*io, [self = shared_from_this(), data, final, work] {
            self->write_chunk(*data);
            if (final && self->finish_files()) {
                self->core_->enqueue(self);  // the committer reports back to the loop
                return;
            }
            asio::post(self->core_->loop, [self, final, work] { self->write_done(final); });
        });
    }

    // On the loop, after a write job (for a final one: only when it failed).
    void write_done(bool final) {
        writing_ = false;
        in_flight_ = 0;
        if (failed_.empty() && !error_.empty()) failed_ = error_;
        if (final) {
            finish();
            return;
        }
        if (aborted_) {
            cleanup();
            return;
        }
        if (!failed_.empty()) pending_.clear();
        if (drained_ && buffered() < kWriteChunk) std::exchange(drained_, nullptr)();
        if (pending_.size() >= kWriteChunk) flush(false);
        else if (committing_) flush(true);
    }

    // The end of a commit, on the loop: error_ was last written by the io or committer thread
    // that posted this.
    void finish() {
        writing_ = false;
        in_flight_ = 0;
        std::string why = !failed_.empty() ? failed_ : error_;
        if (why.empty()) ++core_->commits;
        else log::line(log::Level::Warning, "queue", id_, "not queued: {}", why);
        auto done = std::exchange(done_, nullptr);
        if (done) done(why.empty(), why.empty() ? id_ : why);
        commit_work_.reset();
    }

    void cleanup() {
        asio::thread_pool* io = core_->io;
        if (!io) return;
        auto work = asio::make_work_guard(core_->loop);  // the loop outlives the clean-up
        asio::post(*io, [self = shared_from_this(), work] { self->discard_files(); });
    }

    // ---- io / committer thread: one at a time, handed over by posts ----

    bool open_tmp(const std::string& path, int& fd, bool& created) {
        auto& made = core_->made[static_cast<int>(place_)];
        if (!made.load()) {
            // The first message for this place: the layout's own entries must be as durable as
            // the renames into them.
            std::error_code ec;
            files::make_private_directories(core_->tmp, ec);
            files::make_private_directories(core_->dir(place_), ec);
            try {
                fsync_dir(core_->root);
                fsync_dir(core_->root.parent_path());
            } catch (const std::exception& e) {
                if (error_.empty()) error_ = e.what();
                discard_files();
                return false;
            }
            made.store(true);
        }
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return fail("create", path);
        created = true;
        return true;
    }

    // Records the first error and gives the space back at once (a full disk must not stay full
    // because of a message that already failed).
    bool fail(const char* what, const std::string& path) {
        int err = errno ? errno : EIO;
        if (error_.empty()) error_ = fmt::format("{} {}: {}", what, path, errno_text(err));
        discard_files();
        return false;
    }

    void discard_files() {
        blocking_call("queue::Message::discard_files");
        if (fd_eml_ >= 0) ::close(fd_eml_), fd_eml_ = -1;
        if (fd_env_ >= 0) ::close(fd_env_), fd_env_ = -1;
        if (eml_created_) ::unlink(tmp_eml_.c_str()), eml_created_ = false;
        if (env_created_) ::unlink(tmp_env_.c_str()), env_created_ = false;
    }

    void write_chunk(const std::string& data) {
        blocking_call("queue::Message::write_chunk");
        if (!error_.empty() || data.empty()) return;
        if (fd_eml_ < 0 && !open_tmp(tmp_eml_, fd_eml_, eml_created_)) return;
        if (!write_fully(fd_eml_, data)) return (void)fail("write", tmp_eml_);
        size_ += data.size();
    }

    void copy_chunks(const MessageCopy& src) {
        blocking_call("queue::Message::copy_chunks");
        int fd = src.fd;
        if (fd < 0) {
            fd = ::open(src.path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                if (error_.empty()) error_ = fmt::format("open {}: {}", src.path, errno_text(errno));
                return;
            }
        }
        std::string chunk;
        std::uint64_t at = src.offset, left = src.length;
        while (error_.empty() && left > 0) {
            chunk.resize(static_cast<std::size_t>(std::min<std::uint64_t>(left, kWriteChunk)));
            ssize_t n = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(at));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                error_ = fmt::format("read {}: {}", src.path.empty() ? "the message to copy" : src.path, errno_text(errno));
                break;
            }
            if (n == 0) {
                if (src.length != UINT64_MAX) error_ = "the message to copy is shorter than it was";
                break;
            }
            chunk.resize(static_cast<std::size_t>(n));
            write_chunk(chunk);
            at += static_cast<std::uint64_t>(n);
            if (left != UINT64_MAX) left -= static_cast<std::uint64_t>(n);
        }
        if (src.fd < 0) ::close(fd);
        if (!error_.empty()) discard_files();
    }

    // Creates the .eml if the body was empty and writes the .env; the files stay open for the
    // committer's sync. False (and nothing left) on any failure.
    bool finish_files() {
        if (!error_.empty()) return false;
        if (fd_eml_ < 0 && !open_tmp(tmp_eml_, fd_eml_, eml_created_)) return false;
        env_.size = size_;
        std::string text;
        try {
            text = to_json(env_);
        } catch (const std::exception& e) {
            error_ = e.what();
            discard_files();
            return false;
        }
        if (!open_tmp(tmp_env_, fd_env_, env_created_)) return false;
        if (!write_fully(fd_env_, text)) return fail("write", tmp_env_);
        return true;
    }

    std::shared_ptr<Core> core_;
    const Place place_;
    std::string id_;
    std::string tmp_eml_, tmp_env_, eml_, env_path_;

    // Loop thread.
    std::string pending_;
    std::size_t in_flight_ = 0;
    bool started_ = false, writing_ = false, committing_ = false, aborted_ = false;
    std::string failed_;  // why the commit will fail, as far as the loop knows
    std::function<void()> drained_;
    std::function<void(bool, std::string)> done_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> commit_work_;

    // I/O side (one io job or the committer at a time); env_ is read-only there.
    Envelope env_;
    int fd_eml_ = -1, fd_env_ = -1;
    bool eml_created_ = false, env_created_ = false;
    std::uint64_t size_ = 0;
    std::string error_;
};

void Core::enqueue(std::shared_ptr<Message> m) {
    std::lock_guard lock(mu);
    ready.push_back(std::move(m));
    if (batch_running) return;
    batch_running = true;
    asio::post(*committer, [this] { run_batches(); });
}

// Group commit: whatever became ready while the previous batch was syncing forms the next
// batch. One sync pass over all its files, the renames, one fsync of messages/.
void Core::run_batches() {
    for (;;) {
        std::vector<std::shared_ptr<Message>> batch;
        {
            std::lock_guard lock(mu);
            if (ready.empty()) {
                batch_running = false;
                return;
            }
            batch.swap(ready);
        }
        ++batches;
        std::vector<std::pair<int, std::string>> files;
        for (auto& m : batch) files.emplace_back(m->fd_eml_, m->tmp_eml_), files.emplace_back(m->fd_env_, m->tmp_env_);
        std::string sync_error = sync_files(files);
        std::vector<Message*> renamed;
        bool into[3] = {};  // the places this batch renamed into: one fsync each
        for (auto& m : batch) {
            if (::close(m->fd_eml_) != 0 && sync_error.empty() && m->error_.empty())
                m->error_ = fmt::format("close {}: {}", m->tmp_eml_, errno_text(errno));
            if (::close(m->fd_env_) != 0 && sync_error.empty() && m->error_.empty())
                m->error_ = fmt::format("close {}: {}", m->tmp_env_, errno_text(errno));
            m->fd_eml_ = m->fd_env_ = -1;
            if (!sync_error.empty()) m->error_ = sync_error;
            if (m->error_.empty()) {
                if (!rename_noreplace(m->tmp_eml_, m->eml_)) {
                    m->error_ = fmt::format("rename {} to {}: {}", m->tmp_eml_, m->eml_, errno_text(errno));
                } else if (!rename_noreplace(m->tmp_env_, m->env_path_)) {
                    m->error_ = fmt::format("rename {} to {}: {}", m->tmp_env_, m->env_path_, errno_text(errno));
                    ::unlink(m->eml_.c_str());  // a lone .eml is not queued; don't leave it either
                } else {
                    m->eml_created_ = m->env_created_ = false;
                    renamed.push_back(m.get());
                    into[static_cast<int>(m->place_)] = true;
                }
            }
            if (!m->error_.empty()) m->discard_files();
        }
        if (!renamed.empty()) {
            ++dir_fsyncs;
            try {
                for (int p = 0; p < 3; ++p)
                    if (into[p]) fsync_dir(dirs[p]);
            } catch (const std::exception& e) {
                // Not durable, so not queued: take the files back; the client will retry. (A
                // crash now could still bring one back: delivered twice, never lost.)
                for (auto* m : renamed) {
                    ::unlink(m->env_path_.c_str());
                    ::unlink(m->eml_.c_str());
                    m->error_ = e.what();
                }
            }
        }
        asio::post(loop, [batch = std::move(batch)] {
            for (auto& m : batch) m->finish();
        });
    }
}

}  // namespace detail

namespace {
// The handle a session holds; dropping it without commit aborts the message.
class WriterHandle final : public Writer {
public:
    WriterHandle(std::shared_ptr<detail::Message> m, Envelope base) : m_(std::move(m)), base_(std::move(base)) {}
    ~WriterHandle() override { m_->abort(); }
    void start(Envelope env) override { m_->start(std::move(env)); }
    void start(const std::string& return_path, bool) override {
        base_.sender = return_path;
        pending_start_ = true;
    }
    void add_recipient(const std::string& localpart, const std::string& domain, const std::string&,
                       const RecipientDsn& dsn) override {
        Recipient r;
        r.address = domain.empty() ? localpart : localpart + "@" + domain;
        r.notify = dsn.notify;
        r.orcpt = dsn.orcpt;
        base_.recipients.push_back(std::move(r));
    }
    void body(std::string_view chunk) override {
        begin();
        m_->body(chunk);
    }
    std::size_t buffered() const override { return m_->buffered(); }
    void on_drained(std::function<void()> cb) override { m_->on_drained(std::move(cb)); }
    void commit(std::function<void(bool, std::string)> done) override {
        begin();
        m_->commit(std::move(done));
    }
    void commit(std::function<void(std::vector<RecipientResult>)> done) override {
        begin();
        m_->commit([done = std::move(done), n = base_.recipients.size()](bool ok, std::string id_or_error) {
            RecipientResult r;
            r.ok = ok;
            (ok ? r.queue_id : r.reason) = std::move(id_or_error);
            done(std::vector<RecipientResult>(n, r));
        });
    }
    void abort() override { m_->abort(); }
    const std::string& id() const override { return m_->id(); }

private:
    // A DeliveryTarget-style start takes effect once the recipients are known.
    void begin() {
        if (!pending_start_) return;
        pending_start_ = false;
        m_->start(base_);
    }
    std::shared_ptr<detail::Message> m_;
    Envelope base_;
    bool pending_start_ = false;
};
}  // namespace

Writer::~Writer() = default;

// ---- Queue ----

Queue::Queue(asio::io_context& loop, fs::path data_directory, std::size_t io_threads)
    : core_(std::make_shared<detail::Core>(loop, data_directory)), io_(std::max<std::size_t>(io_threads, 1)), committer_(1) {
    core_->io = &io_;
    core_->committer = &committer_;
    make_background(io_, std::max<std::size_t>(io_threads, 1));
    make_background(committer_, 1);
}

Queue::~Queue() {
    core_->io = nullptr;
    io_.join();         // write jobs finish and hand their commits to the committer...
    committer_.join();  // ...which is still there to complete them
    core_->committer = nullptr;
}

std::unique_ptr<Writer> Queue::writer(Place where, Envelope base) {
    return std::make_unique<WriterHandle>(std::make_shared<detail::Message>(core_, where), std::move(base));
}

void Queue::copy_in(Envelope env, Place where, std::shared_ptr<const MessageCopy> src, std::function<void(bool, std::string)> done) {
    auto m = std::make_shared<detail::Message>(core_, where);
    m->start(std::move(env));
    m->copy_from(std::move(src), std::move(done));
}

fs::path Queue::message_path(const std::string& id, Place where) const { return core_->dir(where) / (id + ".eml"); }
fs::path Queue::envelope_path(const std::string& id, Place where) const { return core_->dir(where) / (id + ".env"); }

Queue::Stats Queue::stats() const { return {core_->commits.load(), core_->batches.load(), core_->dir_fsyncs.load()}; }

std::optional<Envelope> Queue::read_envelope(const std::string& id, Place where, std::string* why) {
    blocking_call("queue::Queue::read_envelope");
    auto fail = [&](std::string reason) -> std::optional<Envelope> {
        if (why) *why = std::move(reason);
        return std::nullopt;
    };
    if (!valid_id(id)) return fail("not a queue id");
    auto path = envelope_path(id, where).string();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(fmt::format("open {}: {}", path, errno_text(errno)));
    struct stat st {};
    std::string text;
    std::string error;
    if (::fstat(fd, &st) != 0) {
        error = fmt::format("stat {}: {}", path, errno_text(errno));
    } else if (static_cast<std::uint64_t>(st.st_size) > kMaxEnvelopeFile) {
        error = fmt::format("{} is larger than {} bytes", path, kMaxEnvelopeFile);
    } else {
        text.resize(static_cast<std::size_t>(st.st_size));
        std::size_t got = 0;
        while (got < text.size()) {
            ssize_t n = ::pread(fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                error = fmt::format("read {}: {}", path, errno_text(errno));
                break;
            }
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        text.resize(got);
    }
    ::close(fd);
    if (!error.empty()) return fail(error);
    std::string parse_error;
    auto env = from_json(text, &parse_error);
    if (!env) return fail("malformed envelope: " + parse_error);
    if (env->id != id) return fail(fmt::format("the envelope names another id ({})", env->id));
    auto eml = message_path(id, where).string();
    struct stat mst {};
    if (::stat(eml.c_str(), &mst) != 0) return fail(fmt::format("message file {}: {}", eml, errno_text(errno)));
    if (static_cast<std::uint64_t>(mst.st_size) != env->size)
        return fail(fmt::format("message file has {} bytes, the envelope says {}", mst.st_size, env->size));
    return env;
}

std::vector<std::string> Queue::list(Place where, std::vector<Skipped>* skipped) {
    blocking_call("queue::Queue::list");
    std::vector<std::string> ids;
    std::error_code ec;
    for (fs::directory_iterator it(core_->dir(where), ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (name.size() < 4 || name.compare(name.size() - 4, 4, ".env") != 0) continue;
        auto id = name.substr(0, name.size() - 4);
        std::string why;
        if (read_envelope(id, where, &why)) {
            ids.push_back(std::move(id));
            continue;
        }
        log::line(log::Level::Warning, "queue", id, "skipped: {}", why);
        if (skipped) skipped->push_back({std::move(id), std::move(why)});
    }
    std::sort(ids.begin(), ids.end());
    return ids;
}

RecoverReport Queue::recover(std::chrono::seconds min_age) {
    blocking_call("queue::Queue::recover");
    RecoverReport report;
    std::int64_t now = unix_now();
    auto stale = [&](const std::string& path) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
        return min_age.count() <= 0 || now - st.st_ctim.tv_sec >= min_age.count();
    };
    std::error_code ec;
    for (fs::directory_iterator it(core_->tmp, ec), end; !ec && it != end; it.increment(ec)) {
        auto p = it->path().string();
        if (stale(p) && ::unlink(p.c_str()) == 0) ++report.tmp_removed;
    }
    for (auto& dir : core_->dirs)
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            auto name = it->path().filename().string();
            if (name.size() < 4 || name.compare(name.size() - 4, 4, ".eml") != 0) continue;
            auto env = dir / (name.substr(0, name.size() - 4) + ".env");
            struct stat st {};
            if (::lstat(env.c_str(), &st) == 0 || errno != ENOENT) continue;
            auto p = it->path().string();
            if (stale(p) && ::unlink(p.c_str()) == 0) ++report.lone_removed;
        }
    if (report.tmp_removed || report.lone_removed)
        log::info("queue", "recovery removed {} unfinished files and {} messages without an envelope", report.tmp_removed,
                  report.lone_removed);
    return report;
}

std::string Queue::move(const std::string& id, Place from, Place to) {
    blocking_call("queue::Queue::move");
    if (!valid_id(id)) return "not a queue id";
    if (from == to) return "";
    auto eml_from = message_path(id, from).string(), env_from = envelope_path(id, from).string();
    auto eml_to = message_path(id, to).string(), env_to = envelope_path(id, to).string();
    struct stat st {};
    if (::stat(env_from.c_str(), &st) != 0) return fmt::format("no message {} in {}", id, place_name(from));
    std::error_code ec;
    files::make_private_directories(core_->dir(to), ec);
    // The .eml is linked, not renamed: until the .env moves, the message stays whole where it was.
    if (::link(eml_from.c_str(), eml_to.c_str()) != 0 && errno != EEXIST)
        return fmt::format("link {} to {}: {}", eml_from, eml_to, errno_text(errno));
    if (!rename_noreplace(env_from, env_to)) {
        std::string why = fmt::format("rename {} to {}: {}", env_from, env_to, errno_text(errno));
        ::unlink(eml_to.c_str());
        return why;
    }
    try {
        fsync_dir(core_->dir(to));
        ::unlink(eml_from.c_str());
        fsync_dir(core_->dir(from));
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

std::string Queue::rewrite_envelope(const Envelope& env, Place where) {
    blocking_call("queue::Queue::rewrite_envelope");
    if (!valid_id(env.id)) return "not a queue id";
    std::string text;
    try {
        text = to_json(env);
    } catch (const std::exception& e) {
        return e.what();
    }
    auto target = envelope_path(env.id, where).string();
    struct stat st {};
    if (::stat(target.c_str(), &st) != 0) return fmt::format("no message {} in {}", env.id, place_name(where));
    std::error_code ec;
    files::make_private_directories(core_->tmp, ec);
    auto tmp = (core_->tmp / (env.id + ".env")).string();
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fmt::format("create {}: {}", tmp, errno_text(errno));
    bool ok = write_fully(fd, text) && ::fdatasync(fd) == 0;
    int err = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), target.c_str()) != 0) {
        if (ok) err = errno;
        ::unlink(tmp.c_str());
        return fmt::format("write {}: {}", target, errno_text(err));
    }
    try {
        fsync_dir(core_->dir(where));
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

std::string Queue::remove(const std::string& id, Place where) {
    blocking_call("queue::Queue::remove");
    if (!valid_id(id)) return "not a queue id";
    auto env = envelope_path(id, where).string();
    if (::unlink(env.c_str()) != 0)
        return errno == ENOENT ? fmt::format("no message {} in {}", id, place_name(where)) : fmt::format("unlink {}: {}", env, errno_text(errno));
    ::unlink(message_path(id, where).c_str());
    try {
        fsync_dir(core_->dir(where));
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

const char* place_name(Place p) {
    switch (p) {
        case Place::Hold: return "hold";
        case Place::Incoming: return "incoming";
        case Place::Messages: break;
    }
    return "messages";
}

}  // namespace pillarbox::storage::queue
