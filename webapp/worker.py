"""gunicorn's worker for this service: requests are read whole, without blocking, then served.

gunicorn's sync worker reads a request while the process waits for it, so a client that sends
its headers or its body slowly holds a worker for as long as it likes, and a few such clients
hold them all; gunicorn assumes a buffering proxy in front, and `make run`, a plain container
or Vertex AI have none. This worker is that buffer: one selector loop per worker reads every
connection's request, within deadlines for the headers and the body, and only a complete
request reaches gunicorn's own parser and the app, one at a time as in the sync worker.

Anything this loop does not recognise as a well-framed request in progress (a malformed
request line, odd framing, a peer that stopped sending, a body over the limit) is handed to
gunicorn at once, so gunicorn and the app answer it exactly as they answer the sync worker.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from gunicorn import http, util
from gunicorn.workers.sync import SyncWorker

from .errors import error_body

# What may start a request line: a method token. Anything else goes to gunicorn at once.
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \r\n]+ HTTP/(\d)\.(\d)\r?\n")
_PARTIAL_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]* ?[!-~]* ?[HTP/0-9.]*")
_WAKEUP = "wakeup"


@dataclass(eq=False)  # compared and hashed by identity: a set holds the open ones
class Connection:
    """A client connection whose request is still arriving."""

    sock: socket.socket
    addr: Any
    listener: socket.socket
    deadline: float
    fd: int = -1  # the socket's descriptor, kept: a closed socket's fileno() is -1
    data: bytearray = field(default_factory=bytearray)
    head_end: int = -1  # where the body starts, once the headers are in
    length: int | None = None  # the body's Content-Length
    chunked: bool = False
    chunk_at: int = 0  # the next chunk-size line not yet checked
    continued: bool = False  # we answered "100 Continue" ourselves
    closing: bool = False  # answered; draining what the client still sends, then closed


def _status_line(status: int, message: str) -> bytes:
    body = error_body(status, message)
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class BufferingWorker(SyncWorker):
    """A sync worker whose requests are read by a selector loop before they are served."""

    header_timeout = 10.0  # from accept to the end of the headers
    body_timeout = 30.0  # from the end of the headers to the end of the body
    io_timeout = 10.0  # any one read or write once a request is being served
    max_body = 2 * 1024 * 1024  # the app's MAX_CONTENT_LENGTH: beyond it, the app answers 413
    budget = 64 * 1024 * 1024  # bytes buffered at once, over all of a worker's connections
    linger = 2.0  # how long an answered client may keep sending before it is cut off

    @classmethod
    def configured(cls, **settings: float) -> type[BufferingWorker]:
        """This class with other limits (gunicorn.conf.py reads them from the environment)."""
        unknown = set(settings) - set(vars(BufferingWorker))
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        return type(cls.__name__, (cls,), settings)

    def init_process(self) -> None:
        self.poller = select.epoll()
        self.watched: dict[int, Any] = {}  # descriptor -> a Connection, a listener or _WAKEUP
        self.open: set[Connection] = set()
        self.buffered = 0
        cfg = self.cfg
        self.max_head = (
            cfg.limit_request_line + cfg.limit_request_fields * (cfg.limit_request_field_size + 2)
        ) + 4
        super().init_process()

    def run(self) -> None:
        if self.cfg.is_ssl:
            raise RuntimeError("BufferingWorker serves plain HTTP; TLS ends at the front end")
        for listener in self.sockets:
            listener.setblocking(False)
            # Exclusive: a new connection wakes one idle worker, not every one of them.
            self.poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
            self.watched[listener.fileno()] = listener
        self.poller.register(self.PIPE[0], select.EPOLLIN)
        self.watched[self.PIPE[0]] = _WAKEUP
        accepting = True
        stop_by = float("inf")
        while self.alive or (self.open and time.monotonic() < stop_by):
            self.notify()
            if accepting and not self.alive:  # SIGTERM or max_requests: finish what is open
                accepting = False
                stop_by = time.monotonic() + self.cfg.graceful_timeout - 1
                for listener in self.sockets:
                    self.poller.unregister(listener.fileno())
                    del self.watched[listener.fileno()]
            listeners = []
            for fd, _ in self.poller.poll(self._wait()):
                what = self.watched.get(fd)
                if isinstance(what, Connection):  # open connections first: they came first
                    self._readable(what)
                elif what is _WAKEUP:
                    os.read(self.PIPE[0], 4096)
                elif what is not None:
                    listeners.append(what)
            for listener in listeners:
                if self.alive and len(self.open) < self.cfg.worker_connections:
                    self._accept(listener)
            self._expire()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
        for conn in list(self.open):
            self._close(conn)

    def _wait(self) -> float:
        """Seconds until the next heartbeat or deadline, whichever comes first."""
        wait = self.timeout or 0.5
        if self.open:
            wait = min(wait, min(c.deadline for c in self.open) - time.monotonic())
        return max(wait, 0.0)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        util.close_on_exec(sock)
        sock.setblocking(False)
        conn = Connection(sock, addr, listener, time.monotonic() + self.header_timeout)
        conn.fd = sock.fileno()
        self.open.add(conn)
        self.poller.register(conn.fd, select.EPOLLIN)
        self.watched[conn.fd] = conn
        self._readable(conn)  # a prompt client's request is usually here already

    def _readable(self, conn: Connection) -> None:
        try:
            chunk = conn.sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
            if not conn.closing:
                self._close(conn)
                return
        if conn.closing:  # an answered client: drain, and close at its end
            if not chunk:
                self._close(conn)
            return
        if not chunk:  # the client stopped sending: gunicorn answers what there is
            self._serve(conn)
            return
        if self.buffered + len(chunk) > self.budget:
            self._refuse(conn, 503, "The server is busy reading other requests.")
            return
        conn.data += chunk
        self.buffered += len(chunk)
        if self._complete(conn):
            self._serve(conn)

    def _complete(self, conn: Connection) -> bool:
        """Whether the request is ready for gunicorn: whole, or not ours to wait for."""
        data = conn.data
        if conn.head_end < 0:
            line_end = data.find(b"\n")
            if line_end < 0:
                return _PARTIAL_LINE.fullmatch(data) is None or len(data) > self.max_head
            line = _REQUEST_LINE.fullmatch(data, 0, line_end + 1)
            if line is None:
                return True
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return data.find(b"\n\n") >= 0 or len(data) > self.max_head
            conn.head_end = end + 4
            if not self._frame(conn, bytes(data[:end]), http11=line.groups() >= (b"1", b"1")):
                return True
        body = len(data) - conn.head_end
        if conn.length is not None:
            return body >= conn.length
        if conn.chunked:
            return body > self.max_body + 64 * 1024 or self._chunks_done(conn)
        return True

    def _frame(self, conn: Connection, head: bytes, http11: bool) -> bool:
        """Read the body's framing from the headers; False when gunicorn should decide now."""
        fields: dict[bytes, list[bytes]] = {}
        for line in head.split(b"\r\n")[1:]:
            name, colon, value = line.partition(b":")
            if not colon or name != name.strip() or not name:
                return False
            fields.setdefault(name.lower(), []).append(value.strip())
        lengths = fields.get(b"content-length", [])
        codings = fields.get(b"transfer-encoding", [])
        if lengths and codings or len(lengths) > 1 or len(codings) > 1:
            return False
        if lengths:
            if not lengths[0].isdigit():
                return False
            conn.length = int(lengths[0])
            if conn.length > self.max_body:  # the app refuses it without reading it
                return False
        elif codings:
            if codings[0].lower() != b"chunked":
                return False
            conn.chunked = True
        else:
            return True
        expect = fields.get(b"expect", [])
        if http11 and [e.lower() for e in expect] == [b"100-continue"]:
            conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.continued = True
        conn.deadline = time.monotonic() + self.body_timeout
        conn.chunk_at = conn.head_end
        return True

    @staticmethod
    def _chunks_done(conn: Connection) -> bool:
        """Whether the chunked body's last chunk and trailers are in (or it is malformed)."""
        data = conn.data
        while True:
            line_end = data.find(b"\r\n", conn.chunk_at)
            if line_end < 0:
                return len(data) - conn.chunk_at > 1024  # no size line is this long
            size = bytes(data[conn.chunk_at : line_end]).split(b";")[0].strip()
            try:
                length = int(size, 16)
            except ValueError:
                return True
            if length == 0:
                return data.find(b"\r\n\r\n", line_end) >= 0
            if line_end + 2 + length + 2 > len(data):
                return False
            conn.chunk_at = line_end + 2 + length + 2

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self.open if c.deadline <= now]:
            if conn.closing or not conn.data:  # nothing was asked: just close
                self._close(conn)
            else:
                self._refuse(conn, 408, "The request did not arrive in time.")

    def _refuse(self, conn: Connection, status: int, message: str) -> None:
        """Answer a request this loop gave up on, and close the connection."""
        try:
            conn.sock.send(_status_line(status, message))
        except OSError:
            pass
        self.log.info("refused a connection from %s: %d", conn.addr[0], status)
        self._linger(conn)

    def _serve(self, conn: Connection) -> None:
        """Hand the request to gunicorn's parser and the app, as the sync worker does."""
        self.poller.unregister(conn.fd)
        self.buffered -= len(conn.data)
        client = conn.sock
        client.setblocking(True)
        client.settimeout(self.io_timeout)
        req = None
        try:
            parser = http.get_parser(self.cfg, client, conn.addr)
            parser.unreader.unread(bytes(conn.data))
            conn.data = bytearray()
            req = next(parser)
            if conn.continued:  # gunicorn would send a second "100 Continue"
                req._expected_100_continue = False
            # gunicorn writes the head and the body separately: one segment, not two.
            # Closing the connection (_linger) sends what is corked.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            self.handle_request(conn.listener, req, client, conn.addr)
        except http.errors.NoMoreData as exc:
            self.log.debug("Ignored premature client disconnection. %s", exc)
        except StopIteration as exc:
            self.log.debug("Closing connection. %s", exc)
        except OSError as exc:  # the client went away or stalled: nobody to answer
            self.log.debug("Connection error while serving: %s", exc)
        except BaseException as exc:
            self.handle_error(req, client, conn.addr, exc)
        client.setblocking(False)
        self.poller.register(conn.fd, select.EPOLLIN)
        self._linger(conn)

    def _linger(self, conn: Connection) -> None:
        """Half-close, and drain what the client still sends for a moment, without waiting.

        Closing with unread data in the socket would reset the connection and could cut off
        the response; gunicorn lingers too, but blocking the worker for up to two seconds.
        """
        self.buffered -= len(conn.data)
        conn.data = bytearray()
        conn.closing = True
        conn.deadline = time.monotonic() + self.linger
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)

    def _close(self, conn: Connection) -> None:
        self.buffered -= len(conn.data)
        conn.data = bytearray()
        if conn in self.open:
            self.open.discard(conn)
            self.poller.unregister(conn.fd)
            del self.watched[conn.fd]
        util.close(conn.sock)
