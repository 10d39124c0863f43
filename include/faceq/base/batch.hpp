// faceq/base/batch.hpp — turning command-line paths into a list of images, and
// running work over them on N threads while delivering results in input order.
//
// expand_inputs(): a file is taken as given (even without an image extension:
// the decoder decides); a directory contributes its image files sorted by
// name (recursively with `recursive`); "-" reads one path per line from
// `stdin_paths`. A directory with no images becomes an item carrying an error,
// so the batch reports it and goes on; so does each entry that cannot be read
// (a directory or subdirectory that does not open, an image-named symbolic
// link that is dangling or loops), in its place by name. Symbolic links to
// directories are not followed. Each item's `key` names it independently of
// where the photos are mounted (see faceq/base/shard.hpp): an image found in
// a folder argument is keyed by its path relative to that folder ("sub/x.jpg"
// whether the folder was given as /mnt/a/photos or /data/photos); a file
// given directly, or on stdin, by the path as given.
//
// ordered_parallel(): `jobs` threads each build their own worker state with
// `make_worker` (e.g. a copy of an Analyzer), take indices from a shared
// counter and compute results; `deliver` runs on the calling thread in index
// order. At most `window` results wait for delivery, so memory stays flat over
// any number of inputs. Exceptions thrown by a worker are the worker's bug:
// workers must turn failures into results.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace faceq {

struct InputItem {
    std::string path;
    std::optional<std::string> error;  // set for inputs that are bad before decoding
    std::string key;                   // the path relative to its folder argument, else as given
};

std::vector<InputItem> expand_inputs(const std::vector<std::string>& args, bool recursive, std::istream* stdin_paths);

template <typename Result, typename MakeWorker, typename Deliver>
void ordered_parallel(std::size_t count, int jobs, MakeWorker make_worker, Deliver deliver, std::size_t window = 0) {
    if (count == 0) return;
    jobs = std::max(1, std::min<int>(jobs, static_cast<int>(count)));
    if (window == 0) window = static_cast<std::size_t>(jobs) * 4;

    std::mutex mu;
    std::condition_variable ready_cv, space_cv;
    std::map<std::size_t, Result> ready;
    std::size_t next_to_deliver = 0;
    std::atomic<std::size_t> next_index{0};

    auto thread_main = [&] {
        auto work = make_worker();
        for (;;) {
            std::size_t i;
            {
                // Do not run further ahead than `window` results.
                std::unique_lock<std::mutex> lock(mu);
                i = next_index.fetch_add(1);
                if (i >= count) return;
                space_cv.wait(lock, [&] { return i < next_to_deliver + window; });
            }
            Result r = work(i);
            {
                std::lock_guard<std::mutex> lock(mu);
                ready.emplace(i, std::move(r));
            }
            ready_cv.notify_one();
        }
    };

    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(jobs));
    for (int t = 0; t < jobs; ++t) threads.emplace_back(thread_main);
    for (std::size_t i = 0; i < count; ++i) {
        Result r;
        {
            std::unique_lock<std::mutex> lock(mu);
            ready_cv.wait(lock, [&] { return ready.count(i) > 0; });
            auto it = ready.find(i);
            r = std::move(it->second);
            ready.erase(it);
            next_to_deliver = i + 1;
        }
        space_cv.notify_all();
        deliver(i, std::move(r));
    }
    for (auto& t : threads) t.join();
}

}  // namespace faceq
