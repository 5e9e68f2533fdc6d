// Runs the scripted conversations in-process (DESIGN.md's second test tier): one World per
// distinct set of config lines holds the listeners' configs, the accounts of conversation.py's
// MailHost, the real Authenticator behind a FakeAuthentication, a FakeStore, the real queue and
// the sessions' services; each script gets a Pipe to a fresh session.
#pragma once
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/config.hpp"
#include "tests/unit/scripts/fakes.hpp"
#include "tests/unit/scripts/pipe.hpp"
#include "tests/unit/scripts/script.hpp"

namespace pillarbox { class WorkerPool; }
namespace pillarbox::auth { class AccountsDb; }
namespace pillarbox::storage::queue { class Queue; }
namespace pillarbox::smtp { struct Services; }
namespace pillarbox::pop3 { struct Services; }
namespace pillarbox::imap { struct Services; }

namespace pillarbox::scripts {

inline constexpr const char* kPassword = "script-pass-1";

class World {
public:
    // config: NAME = VALUE lines over the base configuration (conversation.py's).
    explicit World(const std::vector<std::pair<std::string, std::string>>& config);
    ~World();

    // Runs one script; throws std::runtime_error naming file:line and the transcript's tail.
    void run(const Script& s);
    // A fresh session on a listener (mx, submission, submissions, pop3, pop3s).
    std::unique_ptr<Pipe> connect(const std::string& listener);
    void add_account(const std::string& address);

    asio::io_context& io() { return io_; }
    FakeStore& store() { return *store_; }
    FakeAuthentication& auth() { return *fake_auth_; }
    storage::queue::Queue& queue() { return *queue_; }

private:
    void inject(const std::string& what);
    std::string dir_;
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    config::Config config_;
    std::map<std::string, std::shared_ptr<const config::Config>> listeners_;
    std::map<std::string, config::ListenerLine> lines_;
    std::unique_ptr<WorkerPool> workers_;
    std::shared_ptr<auth::AccountsDb> accounts_;
    std::unique_ptr<auth::Authenticator> real_auth_;
    std::unique_ptr<FakeAuthentication> fake_auth_;
    std::unique_ptr<FakeStore> store_;
    std::unique_ptr<storage::queue::Queue> queue_;
    std::shared_ptr<smtp::Services> smtp_;
    std::shared_ptr<pop3::Services> pop3_;
    std::shared_ptr<imap::Services> imap_;
};

}  // namespace pillarbox::scripts
