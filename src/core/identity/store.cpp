// store.cpp — see faceq/identity/store.hpp: what every store shares.
#include "faceq/identity/store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace faceq {

void run_with_retries(const std::function<void()>& attempt, const RetryPolicy& policy, const LogFn& log) {
    auto pause = policy.first_pause;
    for (int n = 1;; ++n) {
        try {
            attempt();
            return;
        } catch (const TransientError& e) {
            if (n >= policy.attempts) throw;
            if (log) log(fmt::format("warning: {} (attempt {} of {}; trying again)", e.what(), n, policy.attempts));
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, policy.max_pause);
    }
}

}  // namespace faceq
