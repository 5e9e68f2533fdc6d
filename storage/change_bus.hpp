// The in-process change bus: every change to a mailbox (new messages, flags, expunges, folders
// created/renamed/deleted) reaches the sessions that listen to that account, in the order the
// store made them. Loop thread only.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "storage/mailbox_types.hpp"

namespace pillarbox::storage {

class ChangeBus {
public:
    using Listener = std::function<void(const Change&)>;

    // Unsubscribes when destroyed.
    class Subscription {
    public:
        Subscription() = default;
        Subscription(ChangeBus* bus, std::uint64_t id) : bus_(bus), id_(id) {}
        Subscription(Subscription&& o) noexcept : bus_(std::exchange(o.bus_, nullptr)), id_(o.id_) {}
        Subscription& operator=(Subscription&& o) noexcept {
            reset();
            bus_ = std::exchange(o.bus_, nullptr);
            id_ = o.id_;
            return *this;
        }
        ~Subscription() { reset(); }
        void reset() {
            if (bus_) bus_->listeners_.erase(id_);
            bus_ = nullptr;
        }

    private:
        ChangeBus* bus_ = nullptr;
        std::uint64_t id_ = 0;
    };

    // mailbox empty: every mailbox of the account (LIST-STATUS, NOTIFY); else just that one
    // (a renamed mailbox is followed under its new name).
    [[nodiscard]] Subscription subscribe(const std::string& account, const std::string& mailbox, Listener l);
    void publish(const std::string& account, const Change& c);

private:
    struct Entry {
        std::string account, mailbox;
        Listener listener;
    };
    std::map<std::uint64_t, Entry> listeners_;
    std::uint64_t next_ = 0;
};

}  // namespace pillarbox::storage
