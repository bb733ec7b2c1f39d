#!/usr/bin/env python3
"""A WebSocket server conformance suite on raw sockets, after the groups of
the Autobahn testsuite that apply to a server (RFC 6455). It shares no code
with any WebSocket library: every frame is built and parsed here, so a bug
in the server cannot be hidden by the same bug in the client.

    ws_conformance.py --url ws://127.0.0.1:PORT [--cafile F] [--only RE]
                      [--list] [--timeout S]

The server must serve these routes under the base URL:
  /echo     echo of each message, text as text and binary as binary;
            max_message 1 MiB (1048576 bytes; a longer message -> 1009)
  /big      the same echo with max_message 16 MiB
  /origins  the echo, with an Origin allow-list {"https://good.example"}
            (any other Origin -> 403)
  /proto    subprotocols {"chat.v2", "chat.v1"} (server preference first);
            on open it sends the chosen protocol as text, or "none"
  /close    closes with 4000 "bye" right after open
and answer 404 on an unknown path.

What the server must do: on a protocol error, send a close frame with the
code the case names and then close TCP; on a close from the peer, answer
with the same code (a close without payload is answered without payload or
with 1000). Each case prints PASS or FAIL with what it saw; the exit code is
0 only if every selected case passed.
"""
import argparse
import base64
import hashlib
import os
import re
import select
import socket
import ssl
import struct
import sys
import time
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
MIB = 1024 * 1024
ECHO_MAX = MIB
BIG_MAX = 16 * MIB


class Fail(Exception):
    pass


class Frame:
    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.payload, self.masked = payload, masked

    def close_code(self):
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def describe(self):
        if self.opcode == CLOSE:
            code = self.close_code()
            reason = self.payload[2:]
            return "close %s%s" % ("(empty)" if code is None else code,
                                   " %r" % reason.decode("utf-8", "replace") if reason else "")
        names = {CONT: "continuation", TEXT: "text", BINARY: "binary", PING: "ping", PONG: "pong"}
        return "%s%s of %d bytes" % (names.get(self.opcode, "opcode %d" % self.opcode),
                                     "" if self.fin else " (fin=0)", len(self.payload))


def mask_bytes(data, key):
    if not data:
        return b""
    # One big-integer XOR: fast enough for 16 MiB without numpy.
    pad = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(data), "big")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


def parse_frame(buf):
    """A whole frame at the start of buf and its size, or (None, 0)."""
    if len(buf) < 2:
        return None, 0
    b0, b1 = buf[0], buf[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None, 0
        n, pos = struct.unpack_from("!H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None, 0
        n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None, 0
        key, pos = bytes(buf[pos:pos + 4]), pos + 4
    if len(buf) < pos + n:
        return None, 0
    payload = bytes(buf[pos:pos + n])
    if masked:
        payload = mask_bytes(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload, masked), pos + n


class Conn:
    """One TCP (or TLS) connection; reads go to a buffer while sending, so a
    server that answers early (a close mid-message) is seen, not reset."""

    def __init__(self, sock, deadline):
        self.sock, self.deadline = sock, deadline
        self.buf = bytearray()
        self.frames = []
        self.eof = False
        self.reset = False

    def remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Fail("timed out")
        return left

    def pull(self):
        try:
            self.sock.settimeout(self.remaining())
            data = self.sock.recv(262144)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        except socket.timeout:
            raise Fail("timed out")
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            self.eof = self.reset = True
            return
        if not data:
            self.eof = True
            return
        self.buf += data
        self.parse()

    def parse(self):
        while True:
            f, size = parse_frame(self.buf)
            if f is None:
                return
            del self.buf[:size]
            self.frames.append(f)

    def readable(self, wait):
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        r, _, _ = select.select([self.sock], [], [], wait)
        return bool(r)

    def saw_close(self):
        return self.eof or any(f.opcode == CLOSE for f in self.frames)

    def send(self, data):
        """Sends data unless the server closes first; True if all went."""
        view, off = memoryview(data), 0
        while off < len(data):
            if self.saw_close():
                return False
            r, w, _ = select.select([self.sock], [self.sock], [], self.remaining())
            if r:
                self.pull()
                continue
            if w:
                try:
                    self.sock.settimeout(self.remaining())
                    off += self.sock.send(view[off:off + 65536])
                except (ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except OSError:
                    return False
        return True

    def send_chunks(self, data, size, pause=0.0):
        for i in range(0, len(data), size):
            if not self.send(data[i:i + size]):
                return False
            if pause:
                time.sleep(pause)
        return True

    def read_frame(self):
        while not self.frames:
            if self.eof:
                return None
            self.pull()
        f = self.frames.pop(0)
        if f.masked:
            raise Fail("server sent a masked frame (%s)" % f.describe())
        return f

    def quiet_for(self, seconds):
        """True if nothing arrives (and TCP stays open) for seconds."""
        end = min(time.monotonic() + seconds, self.deadline)
        while not self.frames and not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                return True
            if self.readable(left):
                self.pull()
        return False

    def wait_eof(self):
        """After a close: the server must close TCP before the deadline."""
        while not self.eof:
            self.frames.clear()
            self.pull()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Target:
    def __init__(self, url, cafile, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("ws", "wss"):
            raise SystemExit("--url must be ws:// or wss://")
        self.tls = u.scheme == "wss"
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        self.base = u.path.rstrip("/")
        self.hostport = "%s:%d" % (self.host, self.port)
        self.cafile, self.timeout = cafile, timeout
        self.deadline = 0
        self.last_headers = {}

    def tcp(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cafile)
            sock = ctx.wrap_socket(sock, server_hostname=self.host)
        return Conn(sock, self.deadline)

    def request(self, path, key=None, version="13", method="GET", extra=None, drop=()):
        """The raw text of an upgrade request; extra adds or replaces headers."""
        headers = {
            "Host": self.hostport, "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": version,
        }
        headers.update(extra or {})
        lines = ["%s %s%s HTTP/1.1" % (method, self.base, path)]
        lines += ["%s: %s" % (k, v) for k, v in headers.items() if k not in drop]
        return ("\r\n".join(lines) + "\r\n\r\n").encode(), headers["Sec-WebSocket-Key"]

    def handshake(self, raw, first=b""):
        """Sends raw (and first, in the same write); the status, headers and conn."""
        c = self.tcp()
        c.sock.settimeout(c.remaining())
        c.sock.sendall(raw + first)
        head = bytearray()
        while b"\r\n\r\n" not in head:
            try:
                c.sock.settimeout(c.remaining())
                data = c.sock.recv(65536)
            except socket.timeout:
                raise Fail("timed out waiting for the handshake answer")
            except OSError as e:
                raise Fail("handshake: %s" % e)
            if not data:
                raise Fail("TCP closed before an HTTP answer (%d bytes)" % len(head))
            head += data
        text, rest = bytes(head).split(b"\r\n\r\n", 1)
        lines = text.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise Fail("bad status line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            headers[k] = (headers[k] + ", " if k in headers else "") + v.strip()
        c.buf += rest
        return int(parts[1]), headers, c

    def open(self, path="/echo", extra=None):
        raw, key = self.request(path, extra=extra)
        status, headers, c = self.handshake(raw)
        if status != 101:
            c.close()
            raise Fail("handshake answered %d, not 101" % status)
        check_accept(key, headers)
        self.last_headers = headers
        c.parse()
        return c


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def check_accept(key, headers):
    if headers.get("upgrade", "").lower() != "websocket":
        raise Fail("101 without Upgrade: websocket (%r)" % headers.get("upgrade"))
    tokens = [t.strip().lower() for t in headers.get("connection", "").split(",")]
    if "upgrade" not in tokens:
        raise Fail("101 without Connection: Upgrade")
    if headers.get("sec-websocket-accept") != accept_for(key):
        raise Fail("Sec-WebSocket-Accept %r, expected %r"
                   % (headers.get("sec-websocket-accept"), accept_for(key)))


# --- expectations -----------------------------------------------------------

def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def read_message(c):
    """The next data message, reassembled; pings are answered on the way."""
    opcode, parts = None, []
    while True:
        f = c.read_frame()
        if f is None:
            raise Fail("TCP closed, no message" + (" (reset)" if c.reset else ""))
        if f.rsv:
            raise Fail("server frame with RSV bits %d" % f.rsv)
        if f.opcode == PING:
            c.send(frame(PONG, f.payload))
            continue
        if f.opcode == PONG:
            continue
        if f.opcode == CLOSE:
            raise Fail("got %s, expected a message" % f.describe())
        if (opcode is None) != (f.opcode != CONT):
            raise Fail("server broke fragmentation: %s" % f.describe())
        opcode = opcode if f.opcode == CONT else f.opcode
        parts.append(f.payload)
        if f.fin:
            return opcode, b"".join(parts)


def expect_echo(c, opcode, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    got_op, got = read_message(c)
    kind = {TEXT: "text", BINARY: "binary"}
    if got_op != opcode:
        raise Fail("echo came as %s, sent %s" % (kind.get(got_op, got_op), kind[opcode]))
    if got != payload:
        raise Fail("echo of %d bytes differs from the %d sent at byte %d"
                   % (len(got), len(payload), first_difference(got, payload)))
    return "%s echo of %d bytes" % (kind[opcode], len(got))


def expect_pong(c, payload):
    f = c.read_frame()
    if f is None:
        raise Fail("TCP closed, no pong")
    if f.opcode != PONG:
        raise Fail("got %s, expected a pong" % f.describe())
    if f.payload != payload:
        raise Fail("pong payload of %d bytes differs from the ping's %d"
                   % (len(f.payload), len(payload)))
    return "pong of %d bytes" % len(payload)


def expect_close(c, codes, reason=None):
    """The server's next frame is a close with one of codes (None: empty);
    we answer it and the server must then close TCP."""
    codes = codes if isinstance(codes, (set, tuple, list)) else (codes,)
    f = c.read_frame()
    if f is None:
        raise Fail("TCP closed without a close frame" + (" (reset)" if c.reset else ""))
    if f.opcode != CLOSE:
        raise Fail("got %s, expected close %s" % (f.describe(), "/".join(map(str, codes))))
    code = f.close_code()
    if code not in codes:
        raise Fail("got %s, expected close %s" % (f.describe(), "/".join(map(str, codes))))
    if len(f.payload) == 1:
        raise Fail("server close payload of 1 byte")
    if reason is not None and f.payload[2:] != reason:
        raise Fail("close reason %r, expected %r" % (f.payload[2:], reason))
    try:
        f.payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise Fail("server close reason is not UTF-8")
    c.send(frame(CLOSE, close_payload(code)))
    try:
        c.wait_eof()
    except Fail:
        raise Fail("got %s, but the server did not close TCP" % f.describe())
    return f.describe() + ", then TCP closed"


def expect_nothing_then_echo(c, seconds=0.3):
    if not c.quiet_for(seconds):
        f = c.read_frame()
        raise Fail("got %s, expected nothing" % (f.describe() if f else "TCP close"))


# --- the cases --------------------------------------------------------------

CASES = []


def case(name, path="/echo", factor=1):
    """Registers fn(c) run on a fresh connection to path; path None gives
    fn(target) instead, for handshake cases. factor scales the timeout."""
    def register(fn):
        CASES.append((name, path, factor, fn))
        return fn
    return register


def echo_case(name, opcode, payload, chunk=None, path="/echo", factor=1):
    @case(name, path, factor)
    def run(c):
        body = payload() if callable(payload) else payload
        data = frame(opcode, body)
        if chunk:
            c.send_chunks(data, chunk)
        else:
            c.send(data)
        return expect_echo(c, opcode, body)


def error_case(name, code, frames, before=(), path="/echo", chunk=None):
    """Sends each message of before (and checks its echo), then frames;
    the server must close with code. frames may be a function (big ones
    are built only when run)."""
    @case(name, path)
    def run(c):
        for opcode, payload in before:
            c.send(frame(opcode, payload))
            expect_echo(c, opcode, payload)
        data = b"".join(frames() if callable(frames) else frames)
        if chunk:
            c.send_chunks(data, chunk)
        else:
            c.send(data)
        return expect_close(c, code)


LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]
for i, n in enumerate(LENGTHS, 1):
    echo_case("1.1.%d text of %d bytes" % (i, n), TEXT, "*" * n)
    echo_case("1.2.%d binary of %d bytes" % (i, n), BINARY, bytes([0xFE]) * n)
echo_case("1.1.8 text of 65536 bytes in 997-byte chunks", TEXT, "*" * 65536, chunk=997)
echo_case("1.2.8 binary of 65536 bytes in 997-byte chunks", BINARY, bytes(range(256)) * 256,
          chunk=997)
echo_case("1.2.9 binary of 300 bytes sent one byte at a time", BINARY, os.urandom(300), chunk=1)


def ping_case(name, payload, chunk=None):
    @case(name)
    def run(c):
        data = frame(PING, payload)
        c.send_chunks(data, chunk) if chunk else c.send(data)
        return expect_pong(c, payload)


ping_case("2.1 ping without payload", b"")
ping_case("2.2 ping with 125-byte text payload", b"p" * 125)
ping_case("2.3 ping with binary payload", bytes([0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF]))
ping_case("2.4 ping with 125-byte binary payload", bytes(range(125)))
error_case("2.5 ping with 126-byte payload", 1002, [frame(PING, b"p" * 126)])
ping_case("2.6 ping of 125 bytes sent one byte at a time", b"q" * 125, chunk=1)


@case("2.7 unsolicited pong without payload is ignored")
def unsolicited_pong(c):
    c.send(frame(PONG))
    expect_nothing_then_echo(c)
    c.send(frame(TEXT, "after pong"))
    return expect_echo(c, TEXT, "after pong")


@case("2.8 unsolicited pong with payload is ignored")
def unsolicited_pong_payload(c):
    c.send(frame(PONG, b"unsolicited"))
    expect_nothing_then_echo(c)
    c.send(frame(TEXT, "after pong"))
    return expect_echo(c, TEXT, "after pong")


@case("2.9 unsolicited pong, then ping: the pong answers the ping")
def pong_then_ping(c):
    c.send(frame(PONG, b"unsolicited") + frame(PING, b"solicited"))
    return expect_pong(c, b"solicited")


@case("2.10 ten pings answered in order")
def ten_pings(c):
    payloads = [("ping %d" % i).encode() for i in range(10)]
    c.send(b"".join(frame(PING, p) for p in payloads))
    for p in payloads:
        expect_pong(c, p)
    return "10 pongs in order"


@case("2.11 ten pings in one-byte chunks answered in order")
def ten_pings_chunked(c):
    payloads = [("ping %d" % i).encode() for i in range(10)]
    c.send_chunks(b"".join(frame(PING, p) for p in payloads), 1)
    for p in payloads:
        expect_pong(c, p)
    return "10 pongs in order"


error_case("3.1 RSV1 on text without extension", 1002, [frame(TEXT, "rsv1", rsv=4)])
error_case("3.2 RSV2 on text after a valid message", 1002, [frame(TEXT, "rsv2", rsv=2)],
           before=[(TEXT, "valid")])
error_case("3.3 RSV3 on text after a valid message", 1002, [frame(TEXT, "rsv3", rsv=1)],
           before=[(TEXT, "valid")])
error_case("3.4 RSV1|RSV3 on text in one-byte chunks", 1002, [frame(TEXT, "rsv5", rsv=5)], chunk=1)
error_case("3.5 RSV2|RSV3 on binary", 1002, [frame(BINARY, b"\x00\xff", rsv=3)])
error_case("3.6 all RSV bits on ping", 1002, [frame(PING, b"rsv", rsv=7)])
error_case("3.7 RSV1 on close", 1002, [frame(CLOSE, close_payload(1000), rsv=4)])

for i, op in enumerate([3, 4, 5, 6, 7], 1):
    error_case("4.1.%d reserved non-control opcode %d" % (i, op), 1002, [frame(op, b"reserved")])
for i, op in enumerate([11, 12, 13, 14, 15], 1):
    error_case("4.2.%d reserved control opcode %d" % (i, op), 1002, [frame(op, b"reserved")])
error_case("4.1.6 opcode 3 after a valid message", 1002, [frame(3)], before=[(TEXT, "valid")])
error_case("4.2.6 opcode 11 after a valid message", 1002, [frame(11)], before=[(TEXT, "valid")])

error_case("5.1 fragmented ping", 1002,
           [frame(PING, b"frag", fin=False), frame(CONT, b"ment")])
error_case("5.2 fragmented pong", 1002,
           [frame(PONG, b"frag", fin=False), frame(CONT, b"ment")])


def fragments_case(name, opcode, parts, chunk=None, between=None):
    """A message in len(parts) fragments; between is a control frame sent
    after the first fragment (a ping must be answered before the echo)."""
    @case(name)
    def run(c):
        frames = []
        for i, p in enumerate(parts):
            frames.append(frame(opcode if i == 0 else CONT, p, fin=i == len(parts) - 1))
        if between is not None:
            frames.insert(1, between)
        data = b"".join(frames() if callable(frames) else frames)
        c.send_chunks(data, chunk) if chunk else c.send(data)
        if between is not None and between[0] & 0x0F == PING:
            expect_pong(c, b"between")
        whole = b"".join(p if isinstance(p, bytes) else p.encode() for p in parts)
        return expect_echo(c, opcode, whole)


fragments_case("5.3 text in two fragments", TEXT, ["frag", "ment"])
fragments_case("5.4 text in two fragments, one-byte chunks", TEXT, ["frag", "ment"], chunk=1)
fragments_case("5.5 binary in three fragments", BINARY, [b"\x00\x01", b"\xfe", b"\xff\x00"])
fragments_case("5.6 text in two fragments with a ping between", TEXT, ["frag", "ment"],
               between=frame(PING, b"between"))
fragments_case("5.7 the same in one-byte chunks", TEXT, ["frag", "ment"], chunk=1,
               between=frame(PING, b"between"))
fragments_case("5.8 text in two fragments with a pong between", TEXT, ["frag", "ment"],
               between=frame(PONG, b"unsolicited"))
error_case("5.9 continuation without start", 1002, [frame(CONT, "orphan")])
error_case("5.10 continuation (fin=0) without start", 1002, [frame(CONT, "orphan", fin=False)])
error_case("5.11 continuation without start after a valid message", 1002,
           [frame(CONT, "orphan")], before=[(TEXT, "valid")])
error_case("5.12 new text message during a fragmented one", 1002,
           [frame(TEXT, "first", fin=False), frame(TEXT, "second")])
error_case("5.13 new binary message (fin=0) during a fragmented one", 1002,
           [frame(BINARY, b"first", fin=False), frame(BINARY, b"second", fin=False)])
error_case("5.14 fragmented close", 1002,
           [frame(CLOSE, close_payload(1000), fin=False), frame(CONT, b"")])
fragments_case("5.15 text with empty first and last fragments", TEXT, ["", "middle", ""])
fragments_case("5.16 text of three empty fragments", TEXT, ["", "", ""])

VALID_UTF8 = [
    ("kosme", "\u03ba\u1f79\u03c3\u03bc\u03b5"),
    ("first of each length", "\x00\u0080\u0800\U00010000"),
    ("last of each length", "\x7f\u07ff\uffff\U0010ffff"),
    ("around the surrogates", "\ud7ff\ue000\ufffd"),
]
for i, (label, text) in enumerate(VALID_UTF8, 1):
    echo_case("6.1.%d valid UTF-8: %s" % (i, label), TEXT, text)


@case("6.2.1 valid UTF-8 split inside every multi-byte character")
def utf8_split_everywhere(c):
    data = "\u03ba\u1f79\u03c3\u03bc\u03b5\U0001f600".encode()
    parts = [data[i:i + 1] for i in range(len(data))]
    c.send(b"".join(frame(TEXT if i == 0 else CONT, p, fin=i == len(parts) - 1)
                    for i, p in enumerate(parts)))
    return expect_echo(c, TEXT, data)


echo_case("6.2.2 binary that is not UTF-8 is echoed", BINARY, b"\xff\xfe\xc0\x80\xed\xa0\x80")

INVALID_UTF8 = [
    ("lone continuation byte", b"a\x80b"),
    ("overlong NUL in 2 bytes", b"\xc0\x80"),
    ("overlong 2-byte (C1 BF)", b"\xc1\xbf"),
    ("overlong '/' in 3 bytes", b"\xe0\x80\xaf"),
    ("overlong U+07FF in 3 bytes", b"\xe0\x9f\xbf"),
    ("overlong '/' in 4 bytes", b"\xf0\x80\x80\xaf"),
    ("overlong U+FFFF in 4 bytes", b"\xf0\x8f\xbf\xbf"),
    ("surrogate U+D800", b"\xed\xa0\x80"),
    ("surrogate U+DFFF", b"\xed\xbf\xbf"),
    ("surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("U+110000 (above U+10FFFF)", b"\xf4\x90\x80\x80"),
    ("byte F5", b"\xf5\x80\x80\x80"),
    ("5-byte form", b"\xf8\x88\x80\x80\x80"),
    ("byte FE", b"\xfe"),
    ("byte FF", b"\xff"),
    ("2-byte start then ASCII", b"\xce\x41"),
    ("message ends inside a 2-byte character", b"abc\xce"),
    ("message ends inside a 3-byte character", b"abc\xe1\xbd"),
    ("message ends inside a 4-byte character", b"abc\xf0\x9f\x98"),
    ("kosme then a surrogate", "\u03ba\u1f79\u03c3\u03bc\u03b5".encode() + b"\xed\xa0\x80edited"),
]
for i, (label, data) in enumerate(INVALID_UTF8, 1):
    error_case("6.3.%d invalid UTF-8: %s" % (i, label), 1007, [frame(TEXT, data)])

error_case("6.4.1 invalid UTF-8 split across fragments", 1007,
           [frame(TEXT, "\u03ba\u1f79".encode() + b"\xce", fin=False), frame(CONT, b"\x41")])
error_case("6.4.2 fragmented text ends inside a character", 1007,
           [frame(TEXT, "valid", fin=False), frame(CONT, b"\xe1\xbd")])
error_case("6.4.3 invalid UTF-8 in the last of three fragments", 1007,
           [frame(TEXT, "a", fin=False), frame(CONT, "b", fin=False), frame(CONT, b"\xc0\x80")])


@case("6.5.1 fail fast: 1007 arrives before the rest of the message is sent")
def utf8_fail_fast(c):
    c.send(frame(TEXT, b"hello \xf4\x90\x80\x80 world", fin=False))
    f = c.read_frame()
    if f is None or f.opcode != CLOSE or f.close_code() != 1007:
        raise Fail("got %s before the rest was sent, expected close 1007"
                   % (f.describe() if f else "TCP close"))
    c.send(frame(CONT, "the rest"))
    c.send(frame(CLOSE, close_payload(1007)))
    c.wait_eof()
    return "close 1007 after the first fragment, then TCP closed"


@case("6.5.2 fail fast: an invalid prefix in an unfinished fragment")
def utf8_fail_fast_prefix(c):
    c.send(frame(TEXT, b"\xc0\x80 then valid text", fin=False))
    f = c.read_frame()
    if f is None or f.opcode != CLOSE or f.close_code() != 1007:
        raise Fail("got %s before the rest was sent, expected close 1007"
                   % (f.describe() if f else "TCP close"))
    c.wait_eof()
    return "close 1007 after the first fragment, then TCP closed"


PEER_CLOSE = (None, 1000)


def close_case(name, payload, codes, then=b""):
    @case(name)
    def run(c):
        c.send(frame(CLOSE, payload) + then)
        return expect_close(c, codes)


close_case("7.1.1 close 1000 is echoed", close_payload(1000), 1000)
close_case("7.1.2 close without payload", b"", PEER_CLOSE)
close_case("7.1.3 text after close is ignored", close_payload(1000), 1000,
           then=frame(TEXT, "ignored"))
close_case("7.1.4 ping after close is ignored", close_payload(1000), 1000,
           then=frame(PING, b"ignored"))


@case("7.1.5 close during a fragmented message")
def close_mid_message(c):
    c.send(frame(TEXT, "unfinished", fin=False) + frame(CLOSE, close_payload(1000)))
    return expect_close(c, 1000)


@case("7.1.6 echo, then close 1000")
def echo_then_close(c):
    c.send(frame(TEXT, "before close"))
    expect_echo(c, TEXT, "before close")
    c.send(frame(CLOSE, close_payload(1000)))
    return expect_close(c, 1000)


close_case("7.3.1 close payload of 1 byte", b"\x03", 1002)
close_case("7.3.2 close 1000 with a 123-byte reason (125 in all)",
           close_payload(1000, b"r" * 123), 1000)
error_case("7.3.3 close with a 124-byte reason (126 in all)", 1002,
           [frame(CLOSE, close_payload(1000, b"r" * 124))])
close_case("7.5.1 close reason that is not UTF-8",
           close_payload(1000, b"\xce\xba\xed\xa0\x80"), 1007)
close_case("7.5.2 close reason of valid UTF-8",
           close_payload(1000, "\u03ba\u1f79\u03c3".encode()), 1000)

for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                          3000, 3999, 4000, 4999], 1):
    close_case("7.7.%d valid close code %d is echoed" % (i, code),
               close_payload(code, b"why"), code)
for i, code in enumerate([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535], 1):
    close_case("7.9.%d invalid close code %d" % (i, code), close_payload(code), 1002)

echo_case("9.1.1 text of exactly max_message (1 MiB) on /echo", TEXT, b"m" * ECHO_MAX, factor=2)
error_case("9.1.2 text of max_message + 1 on /echo", 1009,
           lambda: [frame(TEXT, "m" * (ECHO_MAX + 1))])
error_case("9.1.3 binary over max_message in two fragments on /echo", 1009,
           lambda: [frame(BINARY, b"f" * (600 * 1024), fin=False),
                    frame(CONT, b"f" * (600 * 1024))])


@case("9.2.1 a frame header announcing 1 GiB: 1009 without the payload")
def gib_header(c):
    c.send(gib_head())
    return expect_close(c, 1009)


def gib_head():
    """Only the header (with its mask key): the payload never follows."""
    return struct.pack("!BBQ", 0x82, 0xFF, 1 << 30) + os.urandom(4)


@case("9.2.2 a frame header announcing 1 GiB on /big", path="/big")
def gib_header_big(c):
    c.send(gib_head())
    return expect_close(c, 1009)


echo_case("9.3.1 binary of 16 MiB on /big", BINARY, lambda: os.urandom(BIG_MAX),
          path="/big", factor=6)
error_case("9.3.2 binary of 16 MiB + 1 on /big", 1009,
           lambda: [frame(BINARY, b"\x00" * (BIG_MAX + 1))], path="/big")


@case("9.4.1 a 10000-byte text message in 10000 one-byte fragments", factor=2)
def tiny_fragments(c):
    data = bytes(ord("a") + i % 26 for i in range(10000))
    c.send(b"".join(frame(TEXT if i == 0 else CONT, data[i:i + 1], fin=i == 9999)
                    for i in range(10000)))
    return expect_echo(c, TEXT, data)


error_case("10.1 unmasked text frame", 1002, [frame(TEXT, "unmasked", mask=False)])
error_case("10.2 unmasked ping", 1002, [frame(PING, b"unmasked", mask=False)])
error_case("10.3 unmasked frame after a valid message", 1002,
           [frame(BINARY, b"unmasked", mask=False)], before=[(TEXT, "valid")])


def status_case(name, path, statuses, header=None, **request):
    """A handshake the server must refuse with a status in statuses."""
    @case(name, path=None)
    def run(t):
        raw, _ = t.request(path, **request)
        status, headers, c = t.handshake(raw)
        c.close()
        if status not in statuses:
            wanted = "4xx" if len(statuses) == 100 else "/".join(map(str, statuses))
            raise Fail("answered %d, expected %s" % (status, wanted))
        if header:
            k, v = header
            if headers.get(k.lower(), "").replace(" ", "") != v:
                raise Fail("answered %d with %s: %r, expected %r"
                           % (status, k, headers.get(k.lower()), v))
            return "%d with %s: %s" % (status, k, v)
        return "answered %d" % status


@case("11.1 Sec-WebSocket-Accept of the RFC's sample key", path=None)
def rfc_sample_key(t):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    raw, _ = t.request("/echo", key=key)
    status, headers, c = t.handshake(raw)
    c.close()
    if status != 101:
        raise Fail("answered %d, expected 101" % status)
    if headers.get("sec-websocket-accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=":
        raise Fail("Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept"))
    check_accept(key, headers)
    return "101 with s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@case("11.2 header names and values in mixed case, Connection with two tokens", path=None)
def mixed_case_headers(t):
    key = base64.b64encode(os.urandom(16)).decode()
    raw = ("GET %s/echo HTTP/1.1\r\nhost: %s\r\nUPGRADE: WebSocket\r\n"
           "connection: keep-alive, upgrade\r\nsec-websocket-key: %s\r\n"
           "SEC-WEBSOCKET-VERSION: 13\r\n\r\n" % (t.base, t.hostport, key)).encode()
    status, headers, c = t.handshake(raw)
    try:
        if status != 101:
            raise Fail("answered %d, expected 101" % status)
        check_accept(key, headers)
        c.parse()
        c.send(frame(TEXT, "mixed"))
        return expect_echo(c, TEXT, "mixed")
    finally:
        c.close()


@case("11.3 first frame in the same packet as the handshake", path=None)
def frame_with_handshake(t):
    raw, key = t.request("/echo")
    status, headers, c = t.handshake(raw, first=frame(TEXT, "eager"))
    try:
        if status != 101:
            raise Fail("answered %d, expected 101" % status)
        check_accept(key, headers)
        c.parse()
        return expect_echo(c, TEXT, "eager")
    finally:
        c.close()


status_case("11.4 missing Sec-WebSocket-Key", "/echo", (400,), drop=("Sec-WebSocket-Key",))
status_case("11.5 Sec-WebSocket-Key not base64", "/echo", (400,), key="not a key!")
status_case("11.6 Sec-WebSocket-Key of 15 bytes", "/echo", (400,),
            key=base64.b64encode(b"x" * 15).decode())
status_case("11.7 Sec-WebSocket-Version 8", "/echo", (426,),
            header=("Sec-WebSocket-Version", "13"), version="8")
status_case("11.8 Sec-WebSocket-Version 14", "/echo", (426,),
            header=("Sec-WebSocket-Version", "13"), version="14")
status_case("11.9 POST instead of GET", "/echo", tuple(range(400, 500)), method="POST")
status_case("11.10 missing Upgrade header", "/echo", tuple(range(400, 500)), drop=("Upgrade",))
status_case("11.11 unknown path", "/no-such-route", (404,))
status_case("11.12 Origin not allowed on /origins", "/origins", (403,),
            extra={"Origin": "https://evil.example"})


@case("11.13 allowed Origin on /origins", path=None)
def origin_allowed(t):
    c = t.open("/origins", extra={"Origin": "https://good.example"})
    try:
        c.send(frame(TEXT, "good origin"))
        return expect_echo(c, TEXT, "good origin")
    finally:
        c.close()


def proto_case(name, offered, chosen):
    @case(name, path=None)
    def run(t):
        extra = {"Sec-WebSocket-Protocol": offered} if offered else {}
        c = t.open("/proto", extra=extra)
        try:
            got = t.last_headers.get("sec-websocket-protocol")
            if got != chosen:
                raise Fail("Sec-WebSocket-Protocol %r, expected %r" % (got, chosen))
            op, msg = read_message(c)
            if (op, msg) != (TEXT, (chosen or "none").encode()):
                raise Fail("first message %r, expected %r" % (msg, chosen or "none"))
            return "protocol %s" % (chosen or "none")
        finally:
            c.close()


proto_case("12.1 subprotocol: both offered in the server's order", "chat.v2, chat.v1", "chat.v2")
proto_case("12.2 subprotocol: only chat.v1 offered", "chat.v1", "chat.v1")
proto_case("12.3 subprotocol: an unknown one, then chat.v1", "x-unknown, chat.v1", "chat.v1")
proto_case("12.4 subprotocol: none known, no header in the answer", "x-unknown", None)
proto_case("12.5 subprotocol: none offered", None, None)


@case("13.1 /close: the server closes with 4000 \"bye\" after open", path="/close")
def server_closes(c):
    return expect_close(c, 4000, reason=b"bye")


# --- running ----------------------------------------------------------------

def run_case(target, path, factor, fn):
    target.deadline = time.monotonic() + target.timeout * factor
    if path is None:
        return fn(target)
    c = target.open(path)
    try:
        return fn(c)
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="ws://HOST:PORT or wss://HOST:PORT")
    ap.add_argument("--cafile", help="CA certificate for wss://")
    ap.add_argument("--only", help="run only cases whose name matches this regex")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per case (default 5)")
    args = ap.parse_args()
    selected = [c for c in CASES if not args.only or re.search(args.only, c[0])]
    if args.list:
        for name, *_ in selected:
            print(name)
        return 0
    target = Target(args.url, args.cafile, args.timeout)
    failed = []
    for name, path, factor, fn in selected:
        start = time.monotonic()
        try:
            seen = run_case(target, path, factor, fn)
            print("PASS %s: %s (%.2fs)" % (name, seen, time.monotonic() - start), flush=True)
        except Fail as e:
            failed.append(name)
            print("FAIL %s: %s (%.2fs)" % (name, e, time.monotonic() - start), flush=True)
        except OSError as e:
            failed.append(name)
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
    passed = len(selected) - len(failed)
    print("%d cases, %d passed, %d failed" % (len(selected), passed, len(failed)))
    return 1 if failed or not selected else 0


if __name__ == "__main__":
    sys.exit(main())
