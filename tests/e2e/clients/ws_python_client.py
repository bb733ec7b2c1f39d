#!/usr/bin/python3
"""A WebSocket client on python3-websockets (Debian's 10.x, asyncio API),
a third implementation to check lunet's server with.

    ws_python_client.py MODE URL [N COUNT] [--cafile F] [--timeout S]

(URL MODE also works.) Modes:
  echo_sizes  text and binary messages of 0 B .. 16 MiB; each echo must be
              byte-equal (the 16 MiB ones need a route that allows them)
  ping        three pings; each must be answered by its pong
  close       close 1000 "done"; the server must answer 1000
  subscribers N COUNT
              open N connections; print READY (flushed) once all are
              open; each must then receive the text messages "1".."COUNT"
              in order before the timeout
Prints "ok ..." lines, or "FAIL ..." lines and exits 1.
"""
import argparse
import asyncio
import os
import ssl
import sys

try:
    import websockets
except ImportError:
    # Debian installs websockets for its own python3 only; a python3 found
    # first on PATH (pyenv) lacks it.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

MIB = 1024 * 1024
SIZES = [0, 1, 125, 126, 65535, 65536, MIB, 16 * MIB]
OPEN_BATCH = 100


class Failed(Exception):
    pass


def text_of(n):
    unit = "lunet-ws-0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (unit * (n // len(unit) + 1))[:n]


async def echo_sizes(ws, args):
    for n in SIZES:
        for sent in (text_of(n), os.urandom(n)):
            kind = "binary" if isinstance(sent, bytes) else "text"
            await ws.send(sent)
            got = await ws.recv()
            if type(got) is not type(sent):
                raise Failed("%s of %d bytes came back as %s" % (kind, n, type(got).__name__))
            if got != sent:
                raise Failed("%s of %d bytes: echo of %d differs" % (kind, n, len(got)))
            print("ok %s %d" % (kind, n), flush=True)


async def ping(ws, args):
    for payload in (b"", b"lunet", b"x" * 125):
        pong = await ws.ping(payload)
        await asyncio.wait_for(pong, args.timeout)
        print("ok pong %d" % len(payload), flush=True)


async def close(ws, args):
    await ws.close(1000, "done")
    if ws.close_code != 1000:
        raise Failed("server answered close %s, expected 1000" % ws.close_code)
    print("ok close 1000", flush=True)


async def one_subscriber(ws, count):
    for want in range(1, count + 1):
        got = await ws.recv()
        if got != str(want):
            raise Failed("got %r, expected %r" % (got, str(want)))


async def subscribers(url, args, opts):
    conns = []
    try:
        for start in range(0, args.n, OPEN_BATCH):
            batch = range(start, min(args.n, start + OPEN_BATCH))
            conns += await asyncio.gather(*(websockets.connect(url, **opts) for _ in batch))
        print("READY", flush=True)
        results = await asyncio.gather(
            *(asyncio.wait_for(one_subscriber(ws, args.count), args.timeout) for ws in conns),
            return_exceptions=True)
        bad = [(i, r) for i, r in enumerate(results) if r is not None]
        for i, r in bad[:10]:
            print("FAIL subscriber %d: %s" % (i, r if str(r) else type(r).__name__), flush=True)
        if bad:
            raise Failed("%d of %d subscribers failed" % (len(bad), args.n))
        print("ok %d subscribers got %d messages in order" % (args.n, args.count), flush=True)
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


MODES = {"echo_sizes": echo_sizes, "ping": ping, "close": close}


async def run(args):
    opts = {"max_size": None, "open_timeout": args.timeout, "close_timeout": args.timeout}
    if args.url.startswith("wss:"):
        opts["ssl"] = ssl.create_default_context(cafile=args.cafile)
    if args.mode == "subscribers":
        return await subscribers(args.url, args, opts)
    async with websockets.connect(args.url, **opts) as ws:
        await asyncio.wait_for(MODES[args.mode](ws, args), args.timeout * 4)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("n", nargs="?", type=int)
    ap.add_argument("count", nargs="?", type=int)
    ap.add_argument("--cafile")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    args.mode, args.url = args.first, args.second
    if "://" in args.mode:
        args.mode, args.url = args.url, args.mode
    if args.mode not in MODES and args.mode != "subscribers":
        ap.error("unknown mode %r" % args.mode)
    if args.mode == "subscribers" and (args.n is None or args.count is None):
        ap.error("subscribers needs N COUNT")
    return args


def main():
    args = parse()
    try:
        asyncio.run(run(args))
    except (Failed, OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        print("FAIL %s: %s" % (args.mode, e or type(e).__name__), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
