#!/usr/bin/env python3
"""A TLS client for tls_spec.lua, on Python's ssl module (an OpenSSL
build of its own kind, independent of lunet's code).

    tls_client.py MODE HOST:PORT [options]

Modes (each prints one JSON object on its last line, or as it says):
  hello     handshake, then send each --send LINE and read one reply line;
            {"ok", "version", "cipher", "alpn", "subject", "serial",
            "replies"} or {"ok": false, "stage", "error"}
  pipeline  three HTTP GETs (/n/1 /n/2 /n/3) in one write, then read the
            three responses; {"ok", "statuses", "bodies"}
  hold N GO open N conns to a line echo, check each echoes, print
            `ready` (flushed), wait for the file GO, check each echoes
            again; {"ok", "echoed", "failures", "serials"}
  stall N KINDS SECONDS [GO]
            rounds of N TCP conns that stall in the handshake, one round
            per comma-separated KIND: `none` sends nothing, `half` half a
            ClientHello. Each round prints `ready R`, waits (at most
            SECONDS) for the server to close each conn and prints
            `done R {"closed", "open", "seconds"}`; round R > 1 starts
            once the file GO.R exists. The result is the list of rounds
            (one round: its object)
  cut       send a whole ClientHello and close at once; {"ok": true}
  slow ADDR2 GO
            a conn with a 4 KiB receive buffer to HOST:PORT sends `flood`
            and never reads; meanwhile a second TLS conn to ADDR2 echoes a
            line every 20 ms until the file GO exists, then once more;
            {"ok", "echoed", "error"}

`tls_client.py batch JSON` runs a JSON list of argument lists (each as
above, e.g. [["hello", "127.0.0.1:8443", "--ca", "ca.pem"]]) one after
another in one process and prints the list of their results.

Options: --ca FILE (verify the chain and the name; without it nothing is
verified), --sni NAME (server_hostname; default localhost, `-` sends
none), --cert FILE --key FILE (client certificate), --alpn a,b,
--max-version V / --min-version V (TLSv1, TLSv1_1, TLSv1_2, TLSv1_3),
--seclevel0 (let this client offer TLS 1.0/1.1 at all). Every wait is
bounded.
"""
import argparse
import json
import os
import select
import socket
import ssl
import sys
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 names

TIMEOUT = 10


def addr_of(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if opts.ca:
        ctx.load_verify_locations(opts.ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.cert:
        ctx.load_cert_chain(opts.cert, opts.key)
    if opts.alpn:
        ctx.set_alpn_protocols(opts.alpn.split(","))
    if opts.seclevel0:
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    if opts.min_version:
        ctx.minimum_version = getattr(ssl.TLSVersion, opts.min_version)
    if opts.max_version:
        ctx.maximum_version = getattr(ssl.TLSVersion, opts.max_version)
    return ctx


def sni(opts):
    return None if opts.sni == "-" else opts.sni


def connect(opts, addr=None, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(TIMEOUT)
    s.connect(addr_of(addr or opts.addr))
    return context(opts).wrap_socket(s, server_hostname=sni(opts))


def readline(t):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = t.recv(4096)
        if not chunk:
            raise ConnectionError("eof after %r" % buf)
        buf += chunk
    return buf[:-1].decode()


def ask(t, line):
    t.sendall(line.encode() + b"\n")
    return readline(t)


def cert_fields(t):
    cert = t.getpeercert() or {}
    cn = None
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
    return cn, cert.get("serialNumber")


def error_text(e):
    reason = getattr(e, "reason", None)
    return "%s: %s" % (reason or type(e).__name__, e)


def hello(opts):
    try:
        t = connect(opts)
    except (OSError, ssl.SSLError) as e:
        return {"ok": False, "stage": "handshake", "error": error_text(e)}
    subject, serial = cert_fields(t)
    out = {"ok": True, "version": t.version(), "cipher": t.cipher()[0],
           "alpn": t.selected_alpn_protocol(), "subject": subject,
           "serial": serial, "replies": []}
    try:
        for line in opts.send:
            out["replies"].append(ask(t, line))
    except (OSError, ssl.SSLError, ConnectionError) as e:
        return {"ok": False, "stage": "read", "error": error_text(e),
                "version": out["version"]}
    t.close()
    return out


def read_response(t, buf):
    """One HTTP/1.1 response with Content-Length: (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = t.recv(65536)
        if not chunk:
            raise ConnectionError("eof in a response head")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    length = 0
    for h in lines[1:]:
        name, _, value = h.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(buf) < length:
        chunk = t.recv(65536)
        if not chunk:
            raise ConnectionError("eof in a response body")
        buf += chunk
    return int(lines[0].split()[1]), buf[:length].decode(), buf[length:]


def pipeline(opts):
    t = connect(opts)
    t.sendall(b"".join(b"GET /n/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i
                       for i in (1, 2, 3)))
    statuses, bodies, buf = [], [], b""
    for _ in range(3):
        status, body, buf = read_response(t, buf)
        statuses.append(status)
        bodies.append(body)
    t.close()
    return {"ok": True, "statuses": statuses, "bodies": bodies}


def wait_file(path, limit=60):
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("no go file " + path)
        time.sleep(0.02)


def hold(opts):
    n = int(opts.rest[0])
    conns, failures, serials = [], [], set()
    for i in range(n):
        t = connect(opts)
        serials.add(cert_fields(t)[1])
        if ask(t, "a%d" % i) != "echo:a%d" % i:
            failures.append("a%d" % i)
        conns.append(t)
    print("ready", flush=True)
    wait_file(opts.rest[1])
    echoed = 0
    for i, t in enumerate(conns):
        try:
            if ask(t, "b%d" % i) == "echo:b%d" % i:
                echoed += 1
            else:
                failures.append("b%d" % i)
        except (OSError, ssl.SSLError, ConnectionError) as e:
            failures.append("b%d: %s" % (i, error_text(e)))
    for t in conns:
        t.close()
    return {"ok": not failures and echoed == n, "echoed": echoed,
            "failures": failures, "serials": sorted(s for s in serials if s)}


def client_hello(opts):
    """The bytes of a ClientHello this client would send."""
    ctx = context(opts)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni(opts))
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def stall_round(opts, n, kind, limit, hello_bytes):
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr_of(opts.addr), timeout=TIMEOUT)
        if kind == "half":
            s.sendall(hello_bytes[:len(hello_bytes) // 2])
        s.setblocking(False)
        socks.append(s)
    return socks


def wait_closed(socks, limit):
    """Waits (at most limit s) for the server to close each of socks."""
    start = time.monotonic()
    open_ = set(socks)
    while open_ and time.monotonic() - start < limit:
        readable, _, _ = select.select(list(open_), [], [], 0.2)
        for s in readable:
            try:
                data = s.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:  # an alert may come first; EOF ends it
                open_.discard(s)
                s.close()
    for s in open_:
        s.close()
    return {"closed": len(socks) - len(open_), "open": len(open_),
            "seconds": round(time.monotonic() - start, 3)}


def stall(opts):
    n, kinds, limit = int(opts.rest[0]), opts.rest[1].split(","), float(opts.rest[2])
    go = opts.rest[3] if len(opts.rest) > 3 else None
    hello_bytes = client_hello(opts)
    results = []
    for r, kind in enumerate(kinds, 1):
        if r > 1 and go:
            wait_file("%s.%d" % (go, r))
        socks = stall_round(opts, n, kind, limit, hello_bytes)
        print("ready %d" % r, flush=True)
        results.append(wait_closed(socks, limit))
        print("done %d %s" % (r, json.dumps(results[-1])), flush=True)
    return results if len(kinds) > 1 else results[0]


def cut(opts):
    hello_bytes = client_hello(opts)
    s = socket.create_connection(addr_of(opts.addr), timeout=TIMEOUT)
    s.sendall(hello_bytes)
    s.close()
    return {"ok": True, "bytes": len(hello_bytes)}


def slow(opts):
    other, go = opts.rest[0], opts.rest[1]
    stuck = connect(opts, rcvbuf=4096)
    stuck.sendall(b"flood\n")
    t = connect(opts, addr=other)
    echoed = 0
    print("flooding", flush=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            done = os.path.exists(go)
            if ask(t, "e%d" % echoed) != "echo:e%d" % echoed:
                return {"ok": False, "echoed": echoed, "error": "bad echo"}
            echoed += 1
            if done:
                break
            time.sleep(0.02)
    except (OSError, ssl.SSLError, ConnectionError) as e:
        return {"ok": False, "echoed": echoed, "error": error_text(e)}
    stuck.close()
    return {"ok": os.path.exists(go), "echoed": echoed, "error": None}


MODES = {"hello": hello, "pipeline": pipeline, "hold": hold, "stall": stall,
         "cut": cut, "slow": slow}


def parser():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("addr")
    p.add_argument("rest", nargs="*")
    p.add_argument("--ca")
    p.add_argument("--sni", default="localhost")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--alpn")
    p.add_argument("--min-version")
    p.add_argument("--max-version")
    p.add_argument("--seclevel0", action="store_true")
    p.add_argument("--send", action="append", default=[])
    return p


def main():
    p = parser()
    if sys.argv[1:2] == ["batch"]:
        # Several runs in one process (Python's start-up is the slow part
        # of a spec on a busy machine): a JSON list of argument lists.
        runs = [p.parse_args(argv) for argv in json.loads(sys.argv[2])]
        print(json.dumps([MODES[o.mode](o) for o in runs]), flush=True)
        return 0
    opts = p.parse_args()
    print(json.dumps(MODES[opts.mode](opts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
