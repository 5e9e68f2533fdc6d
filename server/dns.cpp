// The c-ares resolver behind dns.hpp: c-ares' sockets and retransmit timer are driven by the Asio
// loop (no resolver thread), and replies are turned into Answer records on the loop thread.
#include "dns.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <netdb.h>

#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace pillarbox::dns {
namespace {

void library_init() {
    static std::once_flag once;
    static int status = ARES_SUCCESS;
    std::call_once(once, [] { status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (status != ARES_SUCCESS)
        throw std::runtime_error(std::string("c-ares: library init: ") + ares_strerror(status));
}

int qtype(Type t) {
    switch (t) {
        case Type::A: return ns_t_a;
        case Type::AAAA: return ns_t_aaaa;
        case Type::MX: return ns_t_mx;
        case Type::TXT: return ns_t_txt;
        case Type::PTR: return ns_t_ptr;
    }
    return ns_t_a;
}

const char* type_name(Type t) {
    switch (t) {
        case Type::A: return "A";
        case Type::AAAA: return "AAAA";
        case Type::MX: return "MX";
        case Type::TXT: return "TXT";
        case Type::PTR: return "PTR";
    }
    return "?";
}

std::string strip_dot(const char* s) {
    std::string r = s ? s : "";
    if (!r.empty() && r.back() == '.') r.pop_back();
    return r;
}

// Returns an ares status; ARES_ENODATA when nothing usable was in the reply.
int parse_hostent_addrs(int family, const unsigned char* abuf, int alen, std::vector<std::string>& out) {
    hostent* host = nullptr;
    int st = family == AF_INET ? ares_parse_a_reply(abuf, alen, &host, nullptr, nullptr)
                               : ares_parse_aaaa_reply(abuf, alen, &host, nullptr, nullptr);
    if (st != ARES_SUCCESS) return st;
    for (char** p = host->h_addr_list; p && *p; ++p) {
        char buf[INET6_ADDRSTRLEN];
        if (inet_ntop(family, *p, buf, sizeof buf)) out.emplace_back(buf);
    }
    ares_free_hostent(host);
    return ARES_SUCCESS;
}

int parse_mx(const unsigned char* abuf, int alen, std::vector<std::string>& out) {
    ares_mx_reply* mx = nullptr;
    int st = ares_parse_mx_reply(abuf, alen, &mx);
    if (st != ARES_SUCCESS) return st;
    for (auto* m = mx; m; m = m->next) out.push_back(std::to_string(m->priority) + " " + strip_dot(m->host));
    ares_free_data(mx);
    return ARES_SUCCESS;
}

int parse_txt(const unsigned char* abuf, int alen, std::vector<std::string>& out) {
    ares_txt_ext* txt = nullptr;
    int st = ares_parse_txt_reply_ext(abuf, alen, &txt);
    if (st != ARES_SUCCESS) return st;
    // One record may carry several character-strings; record_start says where the next begins.
    for (auto* t = txt; t; t = t->next) {
        if (t->record_start || out.empty()) out.emplace_back();
        out.back().append(reinterpret_cast<const char*>(t->txt), t->length);
    }
    ares_free_data(txt);
    return ARES_SUCCESS;
}

int parse_ptr(const unsigned char* abuf, int alen, std::vector<std::string>& out) {
    // The parser wants the queried address only to copy it into the hostent; any will do.
    in_addr dummy{};
    hostent* host = nullptr;
    int st = ares_parse_ptr_reply(abuf, alen, &dummy, sizeof dummy, AF_INET, &host);
    if (st != ARES_SUCCESS) return st;
    // Every PTR target is in h_aliases (h_name is just the last one); fall back to h_name.
    for (char** p = host->h_aliases; p && *p; ++p) out.push_back(strip_dot(*p));
    if (out.empty() && host->h_name) out.push_back(strip_dot(host->h_name));
    ares_free_hostent(host);
    return ARES_SUCCESS;
}

Answer make_answer(Type type, const std::string& name, int status, const unsigned char* abuf, int alen) {
    Answer a;
    if (status == ARES_SUCCESS) {
        switch (type) {
            case Type::A: status = parse_hostent_addrs(AF_INET, abuf, alen, a.records); break;
            case Type::AAAA: status = parse_hostent_addrs(AF_INET6, abuf, alen, a.records); break;
            case Type::MX: status = parse_mx(abuf, alen, a.records); break;
            case Type::TXT: status = parse_txt(abuf, alen, a.records); break;
            case Type::PTR: status = parse_ptr(abuf, alen, a.records); break;
        }
        if (status == ARES_SUCCESS && a.records.empty()) status = ARES_ENODATA;
    }
    if (status == ARES_SUCCESS) {
        a.status = Answer::Status::Ok;
        return a;
    }
    a.records.clear();
    // A name that can't be encoded can't exist either: retrying it later would never help.
    if (status == ARES_ENOTFOUND || status == ARES_ENODATA || status == ARES_EBADNAME)
        a.status = Answer::Status::NotFound;
    else
        a.status = Answer::Status::TempFail;
    a.error = name + "/" + type_name(type) + ": " + ares_strerror(status);
    return a;
}

// Validates one ResolverSettings.servers entry and writes it in the form c-ares' CSV parser
// reads unambiguously ("IP:PORT" / "[IPv6]:PORT").
std::string normalise_server(const std::string& s) {
    std::string host = s, port = "53";
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string::npos) throw std::runtime_error("dns server: bad address: " + s);
        host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') throw std::runtime_error("dns server: bad address: " + s);
            port = s.substr(close + 2);
        }
    } else if (std::count(s.begin(), s.end(), ':') == 1) {
        auto colon = s.find(':');
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    unsigned char buf[sizeof(in6_addr)];
    bool v4 = inet_pton(AF_INET, host.c_str(), buf) == 1;
    bool v6 = !v4 && inet_pton(AF_INET6, host.c_str(), buf) == 1;
    if (!v4 && !v6) throw std::runtime_error("dns server: bad address: " + s);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(port) < 1 || std::stoi(port) > 65535)
        throw std::runtime_error("dns server: bad port: " + s);
    return v4 ? host + ":" + port : "[" + host + "]:" + port;
}

class AresResolver final : public Resolver {
public:
    AresResolver(asio::io_context& loop, const ResolverSettings& s) : loop_(loop), timer_(loop) {
        library_init();
        ares_options opts{};
        opts.sock_state_cb = &AresResolver::on_sock_state;
        opts.sock_state_cb_data = this;
        opts.timeout = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(s.timeout.count(), 1, 3'600'000));
        opts.tries = std::max(1, s.tries);
        int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
        int st = ares_init_options(&channel_, &opts, mask);
        if (st != ARES_SUCCESS) {
            channel_ = nullptr;
            throw std::runtime_error(std::string("c-ares: init: ") + ares_strerror(st));
        }
        if (!s.servers.empty()) {
            try {
                std::string csv;
                for (auto& srv : s.servers) csv += (csv.empty() ? "" : ",") + normalise_server(srv);
                st = ares_set_servers_ports_csv(channel_, csv.c_str());
                if (st != ARES_SUCCESS)
                    throw std::runtime_error(std::string("c-ares: servers: ") + ares_strerror(st));
            } catch (...) {
                ares_destroy(channel_);
                throw;
            }
        }
    }

    ~AresResolver() override {
        // Expire the token first: ares_destroy runs the query callbacks (ARES_EDESTRUCTION) and the
        // socket-state callback, and nothing posted from here on may reach a user callback.
        alive_.reset();
        ares_destroy(channel_);
        for (auto& [fd, w] : watches_) unwatch(*w);
        watches_.clear();
    }

    void lookup(const std::string& name, Type type, std::function<void(Answer)> cb) override {
        if (name.find('\0') != std::string::npos) {
            Answer a;
            a.status = Answer::Status::NotFound;
            a.error = "name contains NUL";
            deliver(std::move(cb), std::move(a));
            return;
        }
        auto* q = new Query{this, type, name, std::move(cb)};
        // May call on_answer synchronously (bad name, no servers); on_answer posts, so the user's
        // callback still never runs inside lookup().
        ares_query(channel_, name.c_str(), ns_c_in, qtype(type), &AresResolver::on_answer, q);
        reschedule();
    }

private:
    struct Query {
        AresResolver* owner;
        Type type;
        std::string name;
        std::function<void(Answer)> cb;
    };

    struct Watch {
        Watch(AresResolver* o, asio::io_context& loop, ares_socket_t f) : owner(o), fd(f), desc(loop) {}
        AresResolver* owner;
        ares_socket_t fd;
        asio::posix::stream_descriptor desc;
        bool want_read = false, want_write = false;
        bool read_pending = false, write_pending = false;
        bool closed = false;
    };

    static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
        std::unique_ptr<Query> q(static_cast<Query*>(arg));
        if (status == ARES_EDESTRUCTION) return;  // the Resolver is going away: never call back
        q->owner->deliver(std::move(q->cb), make_answer(q->type, q->name, status, abuf, alen));
    }

    void deliver(std::function<void(Answer)> cb, Answer a) {
        asio::post(loop_, [alive = std::weak_ptr<int>(alive_), cb = std::move(cb), a = std::move(a)]() mutable {
            if (!alive.expired()) cb(std::move(a));
        });
    }

    static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
        auto* self = static_cast<AresResolver*>(data);
        auto it = self->watches_.find(fd);
        if (!readable && !writable) {
            // c-ares is about to close fd: stop watching it now, before the number can be reused.
            if (it != self->watches_.end()) {
                self->unwatch(*it->second);
                self->watches_.erase(it);
            }
            return;
        }
        if (it == self->watches_.end()) {
            auto w = std::make_shared<Watch>(self, self->loop_, fd);
            asio::error_code ec;
            w->desc.assign(fd, ec);
            // If the reactor refuses the fd, the queries on it end by timeout instead.
            if (ec) return;
            it = self->watches_.emplace(fd, std::move(w)).first;
        }
        it->second->want_read = readable != 0;
        it->second->want_write = writable != 0;
        self->arm(it->second);
    }

    void unwatch(Watch& w) {
        w.closed = true;
        // release() cancels the pending waits and hands the fd back: c-ares owns and closes it.
        if (w.desc.is_open()) w.desc.release();
    }

    void arm(const std::shared_ptr<Watch>& w) {
        if (w->want_read && !w->read_pending) {
            w->read_pending = true;
            w->desc.async_wait(asio::posix::descriptor_base::wait_read,
                               [weak = std::weak_ptr<Watch>(w)](const asio::error_code& ec) { on_ready(weak, ec, true); });
        }
        if (w->want_write && !w->write_pending) {
            w->write_pending = true;
            w->desc.async_wait(asio::posix::descriptor_base::wait_write,
                               [weak = std::weak_ptr<Watch>(w)](const asio::error_code& ec) { on_ready(weak, ec, false); });
        }
    }

    // Static, and the watch is checked first: the Resolver may be gone when a cancelled wait completes.
    static void on_ready(const std::weak_ptr<Watch>& weak, const asio::error_code& ec, bool read) {
        auto w = weak.lock();
        if (!w) return;
        (read ? w->read_pending : w->write_pending) = false;
        // Don't re-arm on an error: it would likely repeat at once and spin the loop; the queries on
        // this socket then end by timeout and c-ares opens a fresh one.
        if (ec || w->closed) return;
        AresResolver& self = *w->owner;
        ares_process_fd(self.channel_, read ? w->fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : w->fd);
        if (!w->closed) self.arm(w);
        self.reschedule();
    }

    void reschedule() {
        timeval tv{};
        if (!ares_timeout(channel_, nullptr, &tv)) {
            timer_.cancel();  // nothing outstanding: don't keep the loop busy
            return;
        }
        timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
        timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const asio::error_code& ec) {
            if (ec || alive.expired()) return;
            ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            reschedule();
        });
    }

    asio::io_context& loop_;
    ares_channel channel_ = nullptr;
    asio::steady_timer timer_;
    std::unordered_map<ares_socket_t, std::shared_ptr<Watch>> watches_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace

std::unique_ptr<Resolver> make_resolver(asio::io_context& loop, const ResolverSettings& s) {
    return std::make_unique<AresResolver>(loop, s);
}

std::string reverse_name(const std::string& ip) {
    unsigned char b[sizeof(in6_addr)];
    std::string r;
    if (ip.find('\0') != std::string::npos) return r;  // inet_pton would see only the prefix
    if (inet_pton(AF_INET, ip.c_str(), b) == 1) {
        for (int i = 3; i >= 0; --i) r += std::to_string(b[i]) + (i ? "." : "");
        return r;
    }
    if (inet_pton(AF_INET6, ip.c_str(), b) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 15; i >= 0; --i) {
            r += hex[b[i] & 0xf];
            r += '.';
            r += hex[b[i] >> 4];
            if (i) r += '.';
        }
        return r;
    }
    return "";
}

}  // namespace pillarbox::dns
