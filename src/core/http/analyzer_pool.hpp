// http/analyzer_pool.hpp (private) — Analyzer copies for the HTTP server.
//
// Copies are made on demand up to `capacity` (one per concurrent analysis: dlib
// networks are not thread-safe, and more copies than cores only add memory);
// a request borrows one for the duration of one analysis (Lease, RAII) and
// waits while all are busy. Thread-safety: every method may be called from any
// thread. acquire() rethrows what copying a network throws (std::bad_alloc).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "faceq/pipeline/analyzer.hpp"

namespace faceq::detail {

// Analyzer copies, made on demand up to `capacity`; a request borrows one
// for the duration of one analysis and waits while all are busy.
class AnalyzerPool {
public:
    AnalyzerPool(std::unique_ptr<Analyzer> first, int capacity)
        : prototype_(*first), capacity_(std::max(1, capacity)), created_(1) {
        idle_.push_back(std::move(first));
    }

    class Lease {
    public:
        Lease(AnalyzerPool& pool, std::unique_ptr<Analyzer> a) : pool_(pool), analyzer_(std::move(a)) {}
        ~Lease() { pool_.give_back(std::move(analyzer_)); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Analyzer& operator*() { return *analyzer_; }
        Analyzer* operator->() { return analyzer_.get(); }

    private:
        AnalyzerPool& pool_;
        std::unique_ptr<Analyzer> analyzer_;
    };

    Lease acquire() {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !idle_.empty() || created_ < capacity_; });
        if (!idle_.empty()) {
            auto a = std::move(idle_.back());
            idle_.pop_back();
            ++busy_;
            return Lease(*this, std::move(a));
        }
        ++created_;
        ++busy_;
        lock.unlock();
        try {
            // Copying copies the networks: done outside the lock.
            return Lease(*this, std::make_unique<Analyzer>(prototype_));
        } catch (...) {
            lock.lock();
            --created_;
            --busy_;
            ready_.notify_one();
            throw;
        }
    }

    const ModelVersions& versions() const { return prototype_.versions(); }
    int created() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return created_;
    }
    int busy() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return busy_;
    }
    int capacity() const { return capacity_; }

private:
    void give_back(std::unique_ptr<Analyzer> a) {
        if (!a) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            idle_.push_back(std::move(a));
            --busy_;
        }
        ready_.notify_one();
    }

    const Analyzer prototype_;  // never used for analysis: copied from
    const int capacity_;
    mutable std::mutex mutex_;
    std::condition_variable ready_;
    std::vector<std::unique_ptr<Analyzer>> idle_;
    int created_ = 0;
    int busy_ = 0;
};

}  // namespace faceq::detail
