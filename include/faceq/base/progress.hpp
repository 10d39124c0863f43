// faceq/base/progress.hpp — how long core operations talk to people without
// printing: a progress callback (units done of total) and a log callback (one
// line of text per call, for stderr). The CLI turns them into progress bars
// and "faceq: ..." lines; the core never writes to a terminal itself.
//
// Convention for LogFn lines: a line starting "warning: " is a warning, one
// starting "debug: " a detail shown only when asked (-v); every other line is
// information. Callbacks may be empty (then nothing is said).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace faceq {

struct Progress {
    std::string label;        // what is being done ("prepare", a file being fetched)
    std::uint64_t done = 0;   // units so far (bytes, images)
    std::uint64_t total = 0;  // 0 = unknown
};
using ProgressFn = std::function<void(const Progress&)>;
using LogFn = std::function<void(const std::string&)>;  // one line for people (stderr)

}  // namespace faceq
