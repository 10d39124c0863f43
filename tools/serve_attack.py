#!/usr/bin/python3
"""tools/serve_attack.py - hostile clients against a running `faceq serve`,
for tools/bench_serve_attack.sh (issue 12's load test). Python 3 stdlib only.

Every client reconnects as soon as the server drops it, for --duration
seconds, so that the attack lasts as long as the measured load:

  slow     POST /analyze with the key and Content-Length under the limit,
           then the body 1 byte every --interval seconds: held until the
           server's --read-timeout cuts it.
  chunked  POST /analyze with the key, Transfer-Encoding: chunked, 64 KiB
           chunks as fast as the socket takes them and never the last one:
           the server answers 413 at --max-upload-mb and closes.
  idle     connects and sends nothing: held until the server's deadline
           for a first byte (--read-timeout) closes it.

Prints one JSON object: per kind, the connections made, those refused
(connect failed) or reset, the answers by status, those closed by the server
without an answer, and the bytes sent; and the CPU seconds the clients used. Exit 0 unless the arguments are bad.
"""
import argparse
import json
import os
import select
import socket
import sys
import threading
import time


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.kinds = {}

    def add(self, kind, what, n=1):
        with self.lock:
            k = self.kinds.setdefault(kind, {"connections": 0, "refused": 0, "reset": 0, "closed_unanswered": 0,
                                             "answers": {}, "bytes_sent": 0})
            if what.startswith("status:"):
                k["answers"][what[7:]] = k["answers"].get(what[7:], 0) + n
            else:
                k[what] += n


def status_of(data):
    # "HTTP/1.1 413 ..." -> "413"; anything else -> "garbled"
    if data.startswith(b"HTTP/1.") and len(data) >= 12:
        return data[9:12].decode("latin-1")
    return "garbled"


def connect(args, tally, kind):
    try:
        s = socket.create_connection((args.host, args.port), timeout=5)
    except OSError:
        tally.add(kind, "refused")
        return None
    tally.add(kind, "connections")
    return s


def finish(tally, kind, s, answered, data):
    """Records how one connection ended: answered, or closed (or reset) by the server without an answer."""
    if answered is not None:
        tally.add(kind, "status:" + answered)
    elif data == b"":
        tally.add(kind, "closed_unanswered")
    else:
        tally.add(kind, "reset")
    s.close()


def slow(args, tally, stop):
    head = ("POST /analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n").format(
                args.key, args.slow_length).encode()
    while not stop.is_set():
        s = connect(args, tally, "slow")
        if s is None:
            time.sleep(0.1)
            continue
        answered, data = None, None
        try:
            s.sendall(head)
            tally.add("slow", "bytes_sent", len(head))
            s.settimeout(args.interval)
            while not stop.is_set():
                try:
                    data = s.recv(4096)
                except socket.timeout:
                    data = None
                if data == b"":
                    break
                if data:
                    answered = status_of(data)
                    break
                s.send(b"x")
                tally.add("slow", "bytes_sent")
        except OSError:
            data = None
        if stop.is_set() and answered is None and data != b"":
            s.close()  # ended by us, not by the server: not counted
            return
        finish(tally, "slow", s, answered, data)


def chunked(args, tally, stop):
    head = ("POST /analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n").format(
                args.key).encode()
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    while not stop.is_set():
        s = connect(args, tally, "chunked")
        if s is None:
            time.sleep(0.1)
            continue
        answered, eof, pending = None, False, head
        s.setblocking(False)
        started = time.monotonic()
        # Sends regardless of the answer, as a client that never reads would,
        # until the server's close makes a send fail; reads meanwhile. Bounded
        # at 30 s per connection (the server cuts far sooner).
        try:
            while not stop.is_set() and time.monotonic() - started < 30:
                readable, writable, _ = select.select([] if eof else [s], [s], [], 0.5)
                try:
                    if readable:
                        data = s.recv(65536)
                        if data == b"":
                            eof = True
                        elif answered is None:
                            answered = status_of(data)
                    if writable:
                        if not pending:
                            pending = chunk
                        n = s.send(pending)
                        tally.add("chunked", "bytes_sent", n)
                        pending = pending[n:]
                except (BlockingIOError, InterruptedError):
                    continue
        except OSError:
            pass  # the server's close: a reset or a broken pipe
        finish(tally, "chunked", s, answered, b"" if eof else None)


def idle(args, tally, stop):
    while not stop.is_set():
        s = connect(args, tally, "idle")
        if s is None:
            time.sleep(0.1)
            continue
        s.settimeout(0.5)
        data = None
        while not stop.is_set():
            try:
                data = s.recv(4096)
                break
            except socket.timeout:
                continue
            except OSError:
                data = None
                break
        if data is None and stop.is_set():
            s.close()
            return
        finish(tally, "idle", s, status_of(data) if data else None, data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True, help="the server's API key (attackers that have it are the harder case)")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--slow", type=int, default=1, help="slow-body clients")
    ap.add_argument("--chunked", type=int, default=1, help="oversize chunked clients")
    ap.add_argument("--idle", type=int, default=0, help="idle connections")
    ap.add_argument("--interval", type=float, default=3, help="seconds between two bytes of a slow body")
    ap.add_argument("--slow-length", type=int, default=500000,
                    help="the Content-Length a slow client announces (keep it under the server's limit)")
    args = ap.parse_args()
    if args.duration <= 0 or args.interval <= 0 or min(args.slow, args.chunked, args.idle) < 0:
        ap.error("--duration and --interval must be > 0, client counts >= 0")

    tally, stop = Tally(), threading.Event()
    threads = []
    for kind, count in (("slow", args.slow), ("chunked", args.chunked), ("idle", args.idle)):
        fn = {"slow": slow, "chunked": chunked, "idle": idle}[kind]
        for _ in range(count):
            threads.append(threading.Thread(target=fn, args=(args, tally, stop), daemon=True))
    for t in threads:
        t.start()
    time.sleep(args.duration)
    stop.set()
    for t in threads:
        t.join(timeout=args.interval + 5)
    times = os.times()
    tally.kinds["cpu_s"] = round(times.user + times.system, 1)  # what the attack cost the shared cores
    json.dump(tally.kinds, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
