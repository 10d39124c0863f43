// tests/test_serve_hostile.cpp — hostile clients against a real `faceq serve`
// (issue 12; the probes of the HTTP research, docs/http.md): one keyed server
// with --max-upload-mb 1, --read-timeout 2, --threads 1 and -j 1, and raw
// non-blocking sockets that send what no well-behaved client sends — huge
// chunked and compressed bodies, absurd lengths, endless request lines,
// trickled heads and bodies, pipelined requests, 2,600 ranges, bursts of 64
// connections — and a gallery whose table disappears. Each probe asserts the
// status, the time to the first answer byte, the bytes the server took in and
// the server's RSS (VmRSS from /proc/PID/status, sampled while it runs). Every
// loop is bounded in time and bytes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "serve_process.hpp"
#include "test_sqlite.hpp"

using namespace faceq::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const std::string key = "hostile-key-0123456789";
constexpr long rss_slack_kb = 16 * 1024;  // what one probe may add to the server's RSS

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// VmRSS of a process in kB; 0 when it cannot be read.
long rss_kb(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0;
}

int connect_to(int port, bool nonblocking) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    REQUIRE((r == 0 || errno == EINPROGRESS));
    return fd;
}

// The status of the first response in `answer`; 0 when there is none.
int status_of(const std::string& answer) {
    if (answer.rfind("HTTP/1.", 0) != 0 || answer.size() < 12) return 0;
    return std::atoi(answer.c_str() + 9);
}

struct Outcome {
    int status = 0;        // of the first answer; 0 = closed (or nothing) without one
    double seconds = 0;    // to the first answer byte, or to the close
    std::size_t sent = 0;  // bytes the server took in
    std::string answer;    // what it sent back (the first 64 kB)
    bool closed = false;   // the server closed the connection
    long rss_before_kb = 0;
    long rss_peak_kb = 0;
};

// Sends `head`, then `body_bytes` bytes made by `fill` (which writes the next
// piece at an offset into a buffer and returns its length), without blocking,
// while reading the answer. Sending stops at the first answer byte; reading
// stops when the server closes, 0.3 s after the answer began, or at the time
// limit. The server's RSS is sampled every poll (at most 20 ms apart).
Outcome probe(int port, pid_t pid, const std::string& head, std::uint64_t body_bytes,
              const std::function<std::size_t(std::uint64_t offset, char* out, std::size_t room)>& fill,
              double time_limit = 10) {
    Outcome o;
    o.rss_before_kb = o.rss_peak_kb = rss_kb(pid);
    const int fd = connect_to(port, true);
    std::string pending = head;
    std::uint64_t offset = 0;
    std::vector<char> piece(64 * 1024);
    const auto start = Clock::now();
    Clock::time_point answered{};
    while (since(start) < time_limit) {
        if (pending.empty() && offset < body_bytes && answered == Clock::time_point{}) {
            const std::size_t n = fill(offset, piece.data(), piece.size());
            pending.assign(piece.data(), n);
            offset += n;
        }
        pollfd p{fd, static_cast<short>(POLLIN | (pending.empty() || answered != Clock::time_point{} ? 0 : POLLOUT)),
                 0};
        ::poll(&p, 1, 20);
        o.rss_peak_kb = std::max(o.rss_peak_kb, rss_kb(pid));
        if (p.revents & POLLOUT) {
            const ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
            if (n > 0) {
                o.sent += static_cast<std::size_t>(n);
                pending.erase(0, static_cast<std::size_t>(n));
            } else if (n < 0 && errno != EAGAIN) {
                p.revents |= POLLIN;  // reset: read what came before it
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[16384];
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n > 0) {
                if (answered == Clock::time_point{}) {
                    answered = Clock::now();
                    o.seconds = since(start);
                }
                if (o.answer.size() < 65536) o.answer.append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EAGAIN) {
                o.closed = true;
                if (answered == Clock::time_point{}) o.seconds = since(start);
                break;
            }
        }
        if (answered != Clock::time_point{} && since(answered) > 0.3) break;
    }
    if (answered == Clock::time_point{} && !o.closed) o.seconds = since(start);
    ::close(fd);
    o.status = status_of(o.answer);
    o.sent -= std::min(o.sent, head.size());  // body bytes only
    UNSCOPED_INFO("status " << o.status << " after " << o.seconds << " s; body bytes taken " << o.sent << "; RSS "
                            << o.rss_before_kb << " -> peak " << o.rss_peak_kb
                            << " kB; answer: " << o.answer.substr(0, 300));
    return o;
}

Outcome probe(int port, pid_t pid, const std::string& request) { return probe(port, pid, request, 0, nullptr); }

// A chunked body of `total` bytes of 'x', as 64 KiB chunks, then the last chunk.
std::uint64_t chunked_size(std::uint64_t total) {
    const std::uint64_t frame = 64 * 1024 + 9;  // "10000\r\n" + data + "\r\n"
    return total / (64 * 1024) * frame + 5;
}
std::size_t fill_chunked(std::uint64_t offset, char* out, std::size_t room, std::uint64_t total) {
    static const std::string frame = "10000\r\n" + std::string(64 * 1024, 'x') + "\r\n";
    const std::uint64_t frames_end = total / (64 * 1024) * frame.size();
    std::size_t n = 0;
    while (n < room && offset < frames_end + 5) {
        const char c = offset < frames_end ? frame[offset % frame.size()] : "0\r\n\r\n"[offset - frames_end];
        out[n++] = c;
        ++offset;
    }
    return n;
}

// POST /analyze with `extra_headers` and a chunked multipart body of `total`
// bytes of 'x' (not a valid form: the server must refuse it before parsing).
Outcome chunked_upload(int port, pid_t pid, const std::string& extra_headers, std::uint64_t total) {
    return probe(port, pid,
                 "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers +
                     "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n",
                 chunked_size(total),
                 [total](std::uint64_t at, char* out, std::size_t room) { return fill_chunked(at, out, room, total); });
}

// A gzip stream of `inflated` zero bytes (about 1/1000 of it).
std::string gzip_zeros(std::size_t inflated) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    std::vector<unsigned char> zeros(1 << 20, 0), out(1 << 16);
    std::string gz;
    for (std::size_t done = 0; done < inflated;) {
        const std::size_t n = std::min(zeros.size(), inflated - done);
        done += n;
        z.next_in = zeros.data();
        z.avail_in = static_cast<uInt>(n);
        const int flush = done == inflated ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = out.data();
            z.avail_out = static_cast<uInt>(out.size());
            deflate(&z, flush);
            gz.append(reinterpret_cast<char*>(out.data()), out.size() - z.avail_out);
        } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    return gz;
}

// GET /health with a plain blocking socket: the status and seconds taken.
std::pair<int, double> health(int port, const std::string& extra_headers = {}) {
    const auto start = Clock::now();
    const int fd = connect_to(port, false);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "Connection: close\r\n\r\n";
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ::close(fd);
    return {n > 0 ? status_of(std::string(buf, static_cast<std::size_t>(n))) : 0, since(start)};
}

// Reads from a blocking socket into `buf` until it holds a whole response
// head from `from` on; the index just past that head, or npos when the server
// closed or went quiet first (SO_RCVTIMEO) or sent 64 kB without one.
std::size_t read_head_end(int fd, std::string& buf, std::size_t from) {
    for (;;) {
        const auto end = buf.find("\r\n\r\n", from);
        if (end != std::string::npos) return end + 4;
        if (buf.size() > 65536) return std::string::npos;
        char chunk[4096];
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return std::string::npos;
        buf.append(chunk, static_cast<std::size_t>(n));
    }
}

struct ContinueOutcome {
    int first = 0;           // status of the first answer: 100, or the final one
    int last = 0;            // status of the final answer (== first when no 100 came)
    bool body_sent = false;  // the client sent its body (only after a 100)
    std::string answer;      // all the server sent (at most ~64 kB)
};

// A client that sends `head` (with "Expect: 100-continue"), waits for the
// first answer and sends `body` only if it is 100 Continue, as curl does for
// large uploads; then reads until the server closes. Blocking socket, every
// wait bounded at 5 s.
ContinueOutcome expect_continue(int port, const std::string& head, const std::string& body) {
    ContinueOutcome o;
    const int fd = connect_to(port, false);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    (void)!::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    std::size_t at = read_head_end(fd, o.answer, 0);
    o.first = o.last = status_of(o.answer);
    if (o.first == 100 && at != std::string::npos) {
        o.body_sent = ::send(fd, body.data(), body.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(body.size());
        if (read_head_end(fd, o.answer, at) != std::string::npos) o.last = status_of(o.answer.substr(at));
    }
    char chunk[4096];
    for (ssize_t n; o.answer.size() < 65536 && (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0;)
        o.answer.append(chunk, static_cast<std::size_t>(n));
    ::close(fd);
    UNSCOPED_INFO("Expect: 100-continue: first " << o.first << ", last " << o.last << ", body sent " << o.body_sent
                                                 << "; answer: " << o.answer.substr(0, 300));
    return o;
}

// Sends `head` then trickles `body` one byte per second, while another thread
// asks /health every 0.5 s; how long until the server cut the trickler off.
void trickle(int port, pid_t pid, const std::string& head, const std::string& body, double read_timeout) {
    std::atomic<bool> done{false};
    std::vector<std::pair<int, double>> checks;
    std::thread checker([&] {
        while (!done) {
            checks.push_back(health(port));
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    });
    const long rss_before = rss_kb(pid);
    const int fd = connect_to(port, false);
    const auto start = Clock::now();
    (void)!::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    bool cut = false;
    for (std::size_t i = 0; i < body.size() && since(start) < read_timeout + 6; ++i) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 1000) > 0) {
            char buf[512];
            if (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) {
                cut = true;
                break;
            }
        }
        if (::send(fd, &body[i], 1, MSG_NOSIGNAL) < 0) {
            cut = true;
            break;
        }
    }
    const double seconds = since(start);
    ::close(fd);
    done = true;
    checker.join();
    INFO("cut after " << seconds << " s; /health checks meanwhile: " << checks.size());
    CHECK(cut);
    CHECK(seconds < read_timeout + 2);
    REQUIRE(checks.size() >= 2);
    for (const auto& [status, s] : checks) {
        CHECK(status == 200);
        CHECK(s < 1.0);
    }
    CHECK(rss_kb(pid) - rss_before < rss_slack_kb);
}

// `connections` clients connect in one burst, each sends GET /health; the
// seconds each waited for its answer (-1: none within 10 s). With
// `keep_open`, every client keeps its connection open until all are answered.
std::vector<double> burst(int port, int connections, bool keep_open) {
    std::vector<int> fds;
    std::vector<double> waited(static_cast<std::size_t>(connections), -1);
    std::vector<bool> sent(static_cast<std::size_t>(connections), false);
    const auto start = Clock::now();
    for (int i = 0; i < connections; ++i) fds.push_back(connect_to(port, true));
    const std::string req = std::string("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n") +
                            (keep_open ? "" : "Connection: close\r\n") + "\r\n";
    int left = connections;
    while (left > 0 && since(start) < 10) {
        std::vector<pollfd> p;
        for (int fd : fds) p.push_back({fd, POLLIN | POLLOUT, 0});
        ::poll(p.data(), p.size(), 20);
        for (std::size_t i = 0; i < p.size(); ++i) {
            if (waited[i] >= 0) continue;
            if (!sent[i] && (p[i].revents & POLLOUT))
                sent[i] = ::send(fds[i], req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
            if (p[i].revents & POLLIN) {
                char buf[512];
                const ssize_t n = ::recv(fds[i], buf, sizeof buf, 0);
                if (n > 0 && status_of(std::string(buf, static_cast<std::size_t>(n))) == 200) {
                    waited[i] = since(start);
                    --left;
                }
            }
        }
    }
    for (int fd : fds) ::close(fd);
    return waited;
}

}  // namespace

TEST_CASE("faceq serve: hostile clients are refused early, cut off in time, and cost no memory", "[serve]") {
    REQUIRE_MODELS();
    ServeHome home;
    const double read_timeout = 2;
    ServeProcess server(home.dir.path(),
                        {"--port", "0", "--threads", "1", "-j", "1", "--max-upload-mb", "1", "--read-timeout", "2"},
                        {"FACEQ_API_KEY=" + key});
    const int port = server.port();
    INFO("server log:\n" << server.log());
    REQUIRE(port > 0);
    const pid_t pid = server.pid();
    {
        const auto deadline = Clock::now() + std::chrono::seconds(180);
        while (health(port).first != 200 && Clock::now() < deadline && !server.exited())
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        REQUIRE(health(port).first == 200);
    }
    const std::string with_key = "X-API-Key: " + key + "\r\n";
    const std::string multipart = "Content-Type: multipart/form-data; boundary=b\r\n";

    // Bodies: refused from the head (no key), or cut at the de-chunked limit.
    {
        const auto o = chunked_upload(port, pid, "", 64ull << 20);
        CHECK(o.status == 401);
        CHECK(o.seconds < 1);
        CHECK(o.sent < (16u << 20));
        CHECK(o.rss_peak_kb - o.rss_before_kb < rss_slack_kb);
    }
    {
        const auto o = chunked_upload(port, pid, with_key, 300ull << 20);
        CHECK(o.status == 413);
        CHECK(o.seconds < 2);
        CHECK(o.sent < (16u << 20));
        CHECK(o.rss_peak_kb - o.rss_before_kb < rss_slack_kb);
    }
    {
        const std::string bomb = gzip_zeros(200u << 20);  // 200 MiB inflated
        CHECK(bomb.size() < 400 * 1024);
        for (const bool keyed : {false, true}) {
            const auto o =
                probe(port, pid,
                      "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (keyed ? with_key : std::string()) + multipart +
                          "Content-Encoding: gzip\r\nContent-Length: " + std::to_string(bomb.size()) + "\r\n\r\n",
                      bomb.size(), [&bomb](std::uint64_t at, char* out, std::size_t room) {
                          const std::size_t n = std::min<std::size_t>(room, bomb.size() - at);
                          std::memcpy(out, bomb.data() + at, n);
                          return n;
                      });
            CHECK(o.status == (keyed ? 415 : 401));
            CHECK(o.seconds < 1);
            CHECK(o.rss_peak_kb - o.rss_before_kb < rss_slack_kb);
        }
    }
    {
        const auto o = probe(port, pid,
                             "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + multipart +
                                 "Content-Length: 99999999999\r\n\r\n");
        CHECK(o.status == 413);
        CHECK(o.seconds < 1);
        CHECK(o.answer.find("\"too_large\"") != std::string::npos);
    }
    // Expect: 100-continue — the decision comes from the head: no 100 (and no
    // body) for a request that will be refused, 100 then the real answer
    // for one that will be read.
    {
        const std::string form =
            "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\nplain text, not an image\r\n--b--\r\n";
        const auto post = [&](const std::string& headers, std::uint64_t length) {
            return "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + multipart +
                   "Expect: 100-continue\r\nConnection: close\r\nContent-Length: " + std::to_string(length) +
                   "\r\n\r\n";
        };
        const auto no_key = expect_continue(port, post("", form.size()), form);
        CHECK(no_key.first == 401);
        CHECK_FALSE(no_key.body_sent);
        CHECK(no_key.answer.find(" 100 ") == std::string::npos);

        // The body reaches the handler: a file that is not an image is its 400.
        const auto keyed = expect_continue(port, post(with_key, form.size()), form);
        CHECK(keyed.first == 100);
        CHECK(keyed.body_sent);
        CHECK(keyed.last == 400);
        CHECK(keyed.answer.find("\"invalid_input\"") != std::string::npos);

        const auto too_big = expect_continue(port, post(with_key, 2u << 20), std::string(2u << 20, 'x'));
        CHECK(too_big.first == 413);
        CHECK_FALSE(too_big.body_sent);
        CHECK(too_big.answer.find(" 100 ") == std::string::npos);

        // Chunked: the size is unknown from the head, so 100, then 413 at the
        // de-chunked limit.
        std::string chunked_body;
        for (int i = 0; i < 32; ++i) chunked_body += "10000\r\n" + std::string(64 * 1024, 'x') + "\r\n";
        chunked_body += "0\r\n\r\n";
        const auto chunked = expect_continue(port,
                                             "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + multipart +
                                                 "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
                                             chunked_body);
        CHECK(chunked.first == 100);
        CHECK(chunked.last == 413);
    }
    // A request line of 64 MiB that never ends: 431 after 16 KiB.
    {
        const auto o = probe(port, pid, "GET /health?q=", 64ull << 20, [](std::uint64_t, char* out, std::size_t room) {
            std::memset(out, 'a', room);
            return room;
        });
        CHECK((o.status == 400 || o.status == 414 || o.status == 431));
        CHECK(o.seconds < 1);
        CHECK(o.sent < (16u << 20));
        CHECK(o.rss_peak_kb - o.rss_before_kb < rss_slack_kb);
    }

    // Slow clients: one deadline for head and body; /health answered meanwhile
    // (--threads 1: they hold no worker).
    trickle(port, pid,
            "POST /analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + multipart + "Content-Length: 10\r\n\r\n",
            "0123456789", read_timeout);
    trickle(port, pid, "", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            read_timeout);

    // Pipelining: three requests in one write, three answers in order.
    {
        const auto o = probe(port, pid,
                             "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key +
                                 "\r\n"
                                 "GET /no-such-route HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                                 with_key +
                                 "\r\n"
                                 "DELETE /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                                 with_key + "Connection: close\r\n\r\n");
        std::vector<int> statuses;
        for (auto at = o.answer.find("HTTP/1.1 "); at != std::string::npos; at = o.answer.find("HTTP/1.1 ", at + 1))
            statuses.push_back(std::atoi(o.answer.c_str() + at + 9));
        CHECK(statuses == std::vector<int>{200, 404, 405});
    }
    // The same without the key: /health is open, an unknown route is 401 (a
    // client without the key learns nothing about routes), a wrong method on
    // /health 405 — answered in order all the same.
    {
        const auto o = probe(port, pid,
                             "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                             "GET /no-such-route HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                             "DELETE /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        std::vector<int> statuses;
        for (auto at = o.answer.find("HTTP/1.1 "); at != std::string::npos; at = o.answer.find("HTTP/1.1 ", at + 1))
            statuses.push_back(std::atoi(o.answer.c_str() + at + 9));
        CHECK(statuses == std::vector<int>{200, 401, 405});
    }
    // Range is ignored: 2,600 ranges get the plain answer.
    {
        const auto plain = probe(port, pid, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        std::string ranges = "Range: bytes=0-";
        for (int i = 1; i < 2600; ++i) ranges += ",0-";
        const auto o =
            probe(port, pid, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + ranges + "\r\nConnection: close\r\n\r\n");
        CHECK(o.status == 200);
        CHECK(o.answer.size() <= plain.answer.size() + 1024);
    }
    // Bursts: 64 connections at once (backlog), then 64 that stay open
    // (idle keep-alive connections hold no thread). A 1 s wait would be a SYN
    // retransmit after an overflowing accept queue.
    for (const bool keep_open : {false, true}) {
        const auto waited = burst(port, 64, keep_open);
        INFO((keep_open ? "keep-alive" : "close") << " burst, seconds: " << json(waited).dump());
        CHECK(std::count_if(waited.begin(), waited.end(), [](double s) { return s >= 0; }) == 64);
        CHECK(*std::max_element(waited.begin(), waited.end()) < 1.0);
    }

    // /health says only its state without the key; nothing shows paths or SQL.
    const std::string home_path = home.root();
    {
        const auto o = probe(port, pid, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        CHECK(o.status == 200);
        const auto body = o.answer.substr(o.answer.find("\r\n\r\n") + 4);
        CHECK(json::parse(body) == json{{"status", "ok"}});
        const auto keyed =
            probe(port, pid, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + "Connection: close\r\n\r\n");
        CHECK(keyed.status == 200);
        CHECK(keyed.answer.find("\"models\"") != std::string::npos);
        CHECK(keyed.answer.find(home_path) == std::string::npos);
    }
    {
        const auto db = home.dir / "faceq.db";
        REQUIRE(std::filesystem::exists(db));
        db_exec(db, "ALTER TABLE samples RENAME TO samples_hidden");
        const auto stats =
            probe(port, pid, "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + "Connection: close\r\n\r\n");
        const auto search = probe(
            port, pid, "GET /search?name= HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + "Connection: close\r\n\r\n");
        const auto open_health =
            probe(port, pid, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        const auto keyed_health =
            probe(port, pid, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + "Connection: close\r\n\r\n");
        db_exec(db, "ALTER TABLE samples_hidden RENAME TO samples");
        CHECK(stats.status == 503);
        // /health reads the gallery through its cache, which may not notice the
        // renamed table: either state, but only the state.
        CHECK(json::parse(open_health.answer.substr(open_health.answer.find("\r\n\r\n") + 4)) ==
              json{{"status", open_health.status == 200 ? "ok" : "unavailable"}});
        for (const auto* o : {&stats, &search, &open_health, &keyed_health}) {
            CHECK(o->answer.find(home_path) == std::string::npos);
            CHECK(o->answer.find("no such") == std::string::npos);
            CHECK(o->answer.find("table") == std::string::npos);
        }
        CHECK(server.log().find("no such table") != std::string::npos);  // the operator still learns why
        CHECK(health(port).first == 200);
    }
    for (const std::string& request : std::vector<std::string>{
             "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + "Connection: close\r\n\r\n",
             "DELETE /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n" + with_key + "Connection: close\r\n\r\n",
             "NOT HTTP\r\n\r\n", "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"}) {
        const auto o = probe(port, pid, request);
        CHECK(o.status >= 400);
        CHECK(o.answer.find(home_path) == std::string::npos);
    }
    CHECK(server.stop(SIGTERM) == 0);
}

TEST_CASE("faceq serve: connections over --max-connections are closed at once, the others still answered", "[serve]") {
    REQUIRE_MODELS();
    ServeHome home;
    constexpr int cap = 4;
    // --read-timeout 10: the held connections must outlive the steps below.
    ServeProcess server(home.dir.path(), {"--port", "0", "--threads", "1", "-j", "1", "--max-connections",
                                          std::to_string(cap), "--read-timeout", "10"});
    const int port = server.port();
    INFO("server log:\n" << server.log());
    REQUIRE(port > 0);
    {
        const auto deadline = Clock::now() + std::chrono::seconds(180);
        while (health(port).first != 200 && Clock::now() < deadline && !server.exited())
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        REQUIRE(health(port).first == 200);
    }
    // The server may close those /health connections a moment after the
    // client read its answer: let them leave the count first.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const std::string keep_alive = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    // One keep-alive /health on a held connection: its status (0: none in 5 s).
    const auto ask = [&keep_alive](int fd) {
        (void)!::send(fd, keep_alive.data(), keep_alive.size(), MSG_NOSIGNAL);
        // The whole answer in one read (/health's is ~600 bytes): a rest left
        // in the socket would be taken for the next answer.
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        return n > 0 ? status_of(std::string(buf, static_cast<std::size_t>(n))) : 0;
    };
    std::vector<int> held;
    for (int i = 0; i < cap; ++i) {
        held.push_back(connect_to(port, false));
        timeval tv{5, 0};
        ::setsockopt(held.back(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        CHECK(ask(held.back()) == 200);  // answered: the server counts it
    }
    // One more: closed by the server at once, without an answer (EOF, not a
    // 5 s wait for a request that the server will never read).
    {
        const auto start = Clock::now();
        const int fd = connect_to(port, false);
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[512];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        const int error = n < 0 ? errno : 0;
        const double seconds = since(start);
        ::close(fd);
        INFO("recv " << n << " (errno " << error << ") after " << seconds << " s");
        CHECK((n == 0 || error == ECONNRESET));
        CHECK(seconds < 1.0);
    }
    // The held connections are still served.
    for (int fd : held) CHECK(ask(fd) == 200);
    // Once one closes, a new connection gets in (the server notices the
    // close on its event loop: allow it a moment).
    ::close(held.back());
    held.pop_back();
    int status = 0;
    for (const auto deadline = Clock::now() + std::chrono::seconds(2); status != 200 && Clock::now() < deadline;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        status = health(port).first;
    }
    CHECK(status == 200);
    for (int fd : held) ::close(fd);
    CHECK(server.stop(SIGTERM) == 0);
}
