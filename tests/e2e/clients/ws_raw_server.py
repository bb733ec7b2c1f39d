#!/usr/bin/env python3
"""A scripted WebSocket server on raw sockets, for testing lunet's client
(lunet.websocket.connect) against servers that misbehave on purpose.

    ws_raw_server.py --port 0 --scenario NAME [--host 127.0.0.1]

Prints "PORT <n>" on stdout once listening, then plays NAME on every
connection (each in its own thread) until killed. What the client does is
logged to stderr, one "SEEN ..." line per event, for the test to assert on:
  SEEN request GET /path version=13 key_ok=1 protocol=...
  SEEN frame op=text fin=1 rsv=0 masked=1 len=5
  SEEN message text len=5 data=<first 60 bytes, repr> [same_as_sent=1]
  SEEN pong match=1|0
  SEEN close code=1002 reason='...'     (code=none: empty payload)
  SEEN eof after=1.23                   (client closed TCP)
  SEEN timeout                          (nothing for 30 s)

Scenarios:
  echo          echo each message (text as text, binary as binary), answer
                pings, answer a close with the same code
  masked_frame  send a masked text frame: the client must close 1002
  bad_accept    answer 101 with a wrong Sec-WebSocket-Accept
  no_upgrade    answer 200 with a body, no upgrade
  rsv1          send a text frame with RSV1 set: the client must close 1002
  bad_utf8      send a text frame that is not UTF-8: the client must close 1007
  fragmented    send "fragmented hello" in three fragments, then echo
  ping          send a ping ("lunet-ping-42"), check the pong, then echo
  close_4001    send close 4001 "server bye", wait for the client's close
  silent        accept TCP and never answer (a handshake timeout)
  big           send a 1 MiB binary message, then echo
"""
import argparse
import base64
import hashlib
import socket
import struct
import sys
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
OPNAMES = {CONT: "cont", TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping", PONG: "pong"}
IDLE = 30.0
PING_PAYLOAD = b"lunet-ping-42"
BIG = (bytes(range(251)) * 4178)[:1 << 20]
log_lock = threading.Lock()


def seen(fmt, *args):
    with log_lock:
        sys.stderr.write("SEEN " + (fmt % args) + "\n")
        sys.stderr.flush()


def mask_bytes(data, key):
    if not data:
        return b""
    pad = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(data), "big")


def frame(opcode, payload=b"", fin=True, rsv=0, mask_key=None):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask_key else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask_key:
        return head + mask_key + mask_bytes(payload, mask_key)
    return head + payload


class Peer:
    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()
        self.opened = time.monotonic()
        sock.settimeout(IDLE)

    def need(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(262144)
            if not data:
                raise EOFError
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_request(self):
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return lines[0], headers

    def read_frame(self):
        b0, b1 = self.need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.need(8))[0]
        masked = bool(b1 & 0x80)
        key = self.need(4) if masked else b""
        payload = self.need(n)
        if masked:
            payload = mask_bytes(payload, key)
        fin, rsv, op = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
        seen("frame op=%s fin=%d rsv=%d masked=%d len=%d",
             OPNAMES.get(op, op), fin, rsv, masked, n)
        return fin, op, payload

    def send(self, data):
        self.sock.sendall(data)


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def key_ok(key):
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def handshake(peer, accept=None):
    line, headers = peer.read_request()
    key = headers.get("sec-websocket-key", "")
    seen("request %s version=%s key_ok=%d protocol=%s", " ".join(line.split(" ")[:2]),
         headers.get("sec-websocket-version"), key_ok(key),
         headers.get("sec-websocket-protocol", "none"))
    peer.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
               % (accept or accept_key(key))).encode())


def describe_close(payload):
    if len(payload) < 2:
        return "code=none reason=''" if not payload else "code=bad-length reason=''"
    code = struct.unpack("!H", payload[:2])[0]
    return "code=%d reason=%r" % (code, payload[2:].decode("utf-8", "replace"))


def serve_messages(peer, sent=None):
    """Echo until the client closes; a close is answered with its code."""
    opcode, parts = None, []
    while True:
        fin, op, payload = peer.read_frame()
        if op == PING:
            peer.send(frame(PONG, payload))
        elif op == PONG:
            seen("pong match=%d", payload == PING_PAYLOAD)
        elif op == CLOSE:
            seen("close %s", describe_close(payload))
            peer.send(frame(CLOSE, payload[:2]))
            return
        else:
            opcode = op if op != CONT else opcode
            parts.append(payload)
            if fin:
                message_done(peer, opcode, b"".join(parts), sent)
                opcode, parts = None, []


def message_done(peer, opcode, data, sent):
    same = "" if sent is None else " same_as_sent=%d" % (data == sent)
    seen("message %s len=%d data=%r%s", OPNAMES.get(opcode, opcode), len(data), data[:60], same)
    peer.send(frame(opcode, data))


def then_wait_close(peer, answer=True):
    """After a bad frame (or our close): report the client's close, and
    answer it unless we sent ours first."""
    while True:
        fin, op, payload = peer.read_frame()
        if op == CLOSE:
            seen("close %s", describe_close(payload))
            if answer:
                peer.send(frame(CLOSE, payload[:2]))
            return


def scenario_echo(peer):
    handshake(peer)
    serve_messages(peer)


def scenario_masked_frame(peer):
    handshake(peer)
    peer.send(frame(TEXT, "masked by the server", mask_key=b"\x01\x02\x03\x04"))
    then_wait_close(peer)


def scenario_bad_accept(peer):
    handshake(peer, accept=base64.b64encode(b"not the right hash!!").decode())
    serve_messages(peer)


def scenario_no_upgrade(peer):
    line, _ = peer.read_request()
    seen("request %s", " ".join(line.split(" ")[:2]))
    peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")


def scenario_rsv1(peer):
    handshake(peer)
    peer.send(frame(TEXT, "rsv1 set", rsv=4))
    then_wait_close(peer)


def scenario_bad_utf8(peer):
    handshake(peer)
    peer.send(frame(TEXT, b"bad \xed\xa0\x80 utf8"))
    then_wait_close(peer)


def scenario_fragmented(peer):
    handshake(peer)
    peer.send(frame(TEXT, "frag", fin=False) + frame(CONT, "mented ", fin=False)
              + frame(CONT, "hello"))
    serve_messages(peer, sent=b"fragmented hello")


def scenario_ping(peer):
    handshake(peer)
    peer.send(frame(PING, PING_PAYLOAD))
    serve_messages(peer)


def scenario_close_4001(peer):
    handshake(peer)
    peer.send(frame(CLOSE, struct.pack("!H", 4001) + b"server bye"))
    then_wait_close(peer, answer=False)


def scenario_silent(peer):
    while peer.sock.recv(65536):
        pass
    raise EOFError


def scenario_big(peer):
    handshake(peer)
    peer.send(frame(BINARY, BIG))
    serve_messages(peer, sent=BIG)


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items()
             if name.startswith("scenario_")}


def serve(sock, scenario):
    peer = Peer(sock)
    try:
        scenario(peer)
        # The server closes TCP first (RFC 6455 7.1.1); the client's EOF
        # follows.
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        while sock.recv(65536):
            pass
        seen("eof after=%.2f", time.monotonic() - peer.opened)
    except EOFError:
        seen("eof after=%.2f", time.monotonic() - peer.opened)
    except socket.timeout:
        seen("timeout")
    except OSError as e:
        seen("error %s", e.__class__.__name__)
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    args = ap.parse_args()
    listener = socket.create_server((args.host, args.port))
    print("PORT %d" % listener.getsockname()[1], flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, SCENARIOS[args.scenario]), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
