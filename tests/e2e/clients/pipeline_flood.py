#!/usr/bin/env python3
"""A client that pipelines HTTP requests without reading, then reads.

    pipeline_flood.py HOST:PORT get|post|huge SECONDS GO_FILE

Its receive buffer is 4 KiB. It sends requests (GET /n/I, or POST /n/I
with a 20 KB body) as fast as the socket takes them, never reading, until
its sends have made no progress for SECONDS in a row (or 120 s passed:
then it says `never_blocked`). It prints, one `key=value` per line and
flushed, `sending` when it starts, `blocked` once a send has made no
progress for 0.5 s, and `sent=N` (whole requests) when it stops sending.
Then it waits until GO_FILE exists (so the caller can measure the server
while it is stalled), reads every response owed and checks that each is
a 200 whose body is `I:LEN` for the I-th request, in order; the request
it was in the middle of is left unfinished. Its last line is
`ok responses=N` or `fail ...`. Every wait is bounded. With `huge` the
first request asks for /huge, a response larger than the server's
max_write_queue: the server should drop the client, and the client
reports `fail responses=0 ...`.
"""
import os
import select
import socket
import sys
import time


def request(kind, i):
    if kind in ("get", "huge"):
        path = b"/huge" if kind == "huge" and i == 0 else b"/n/%d" % i
        return b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path
    body = b"p" * 20000
    return (b"POST /n/%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (i, len(body))) + body


def say(line):
    print(line, flush=True)


def flood(s, kind, seconds):
    """Sends requests until stalled for `seconds`; returns how many went
    whole. How long the server takes to stop reading depends on the
    machine, so the stall is waited for, not a fixed time."""
    s.setblocking(False)
    n, pending, blocked = 0, request(kind, 0), False
    started = last_progress = time.monotonic()
    say("sending")
    while True:
        now = time.monotonic()
        if now - last_progress >= seconds:
            return n
        if now - started > 120:
            say("never_blocked")
            return n
        _, w, _ = select.select([], [s], [], 0.05)
        sent = 0
        if w:
            try:
                sent = s.send(pending)
            except BlockingIOError:
                sent = 0
            except OSError as e:  # dropped by the server
                say("send_error=%s" % e.__class__.__name__)
                return n
        if sent:
            last_progress = time.monotonic()
            pending = pending[sent:]
            if not pending:
                n += 1
                pending = request(kind, n)
        elif not blocked and time.monotonic() - last_progress > 0.5:
            blocked = True
            say("blocked")


def read_response(f):
    status = f.readline()
    if not status:
        raise EOFError("connection closed")
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, f.read(length or 0)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    kind, seconds = sys.argv[2], float(sys.argv[3])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((host, int(port)))
    count = flood(s, kind, seconds)
    say("sent=%d" % count)
    go_file, deadline = sys.argv[4], time.monotonic() + 120
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    s.setblocking(True)
    s.settimeout(60)
    f = s.makefile("rb")
    for i in range(count):
        try:
            status, body = read_response(f)
        except (EOFError, OSError) as e:
            say("fail responses=%d error=%s" % (i, e))
            return 1
        want = b"%d:%d" % (i, 0 if kind == "get" else 20000)
        if not status.startswith(b"HTTP/1.1 200") or body != want:
            say("fail responses=%d status=%r body=%r want=%r"
                % (i, status.strip(), body[:40], want))
            return 1
    say("ok responses=%d" % count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
