// The SASL exchange driver (see sasl_driver.hpp).
#include "protocols/common/sasl_driver.hpp"

namespace pillarbox::protocols {

const SaslReplies::Final& SaslReplies::for_status(auth::Result::Status s) const {
    using St = auth::Result::Status;
    switch (s) {
    case St::TempFail: return temp_fail;
    case St::Aborted: return aborted;
    case St::Malformed: return malformed;
    case St::Refused: return refused;
    case St::Ok:
    case St::Failed: break;
    }
    return failed;
}

void SaslDriver::start(std::unique_ptr<auth::Exchange> exchange, std::optional<std::string> initial, Done done) {
    exchange_ = std::move(exchange);
    done_ = std::move(done);
    // Parked before asking: the answer may come at once, from inside start().
    guard_.park();
    exchange_->start(std::move(initial), guard_.wrap([this](auth::Exchange::Reply r) { on_reply(std::move(r)); }));
}

void SaslDriver::respond(std::string_view line) {
    guard_.park();
    exchange_->respond(line, guard_.wrap([this](auth::Exchange::Reply r) { on_reply(std::move(r)); }));
}

void SaslDriver::on_reply(auth::Exchange::Reply r) {
    if (!r.done) {
        io_.send(replies_.challenge_prefix + r.challenge + "\r\n");
        guard_.unpark();
        return;
    }
    exchange_.reset();
    auto done = std::move(done_);
    done(r.result, r.result.status == auth::Result::Status::Ok ? nullptr : &replies_.for_status(r.result.status));
}

}  // namespace pillarbox::protocols
