"""gunicorn's worker for this service: requests are read whole, without blocking, then served.

gunicorn's sync worker reads a request while the process waits for it, so a client that sends
its headers or its body slowly holds a worker for as long as it likes, and a few such clients
hold them all; gunicorn assumes a buffering proxy in front, and `make run`, a plain container
or Vertex AI have none. This worker is that buffer: one selector loop per worker reads every
connection's requests, within deadlines for the headers and the body, frames them
(webapp/framing.py), and only a complete request reaches gunicorn's own parser and the app, one
at a time as in the sync worker. After an answer, a connection the client keeps alive goes back
to the loop for its next request (pipelined ones are answered in order), until it idles past
the keep-alive deadline or reaches its request cap.

Whatever one connection sends or does, only that connection is closed: malformed framing gets
its 4xx, a reset or a half-closed socket ends that connection, and any unexpected error while
handling one connection is logged and closes it; the worker and its other connections go on.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any

from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.workers.base import Worker

from .errors import error_body
from .framing import Framer, Limits, Refused

_WAKEUP = "wakeup"
# What gunicorn's parser refuses beyond the framing, answered with these statuses (else 400).
_REFUSED = {
    http.errors.LimitRequestLine: (414, "The request line is too long."),
    http.errors.LimitRequestHeaders: (431, "The request's header fields are too large."),
    http.errors.ExpectationFailed: (417, "Only the 100-continue expectation is understood."),
    http.errors.UnsupportedTransferCoding: (
        501,
        "Transfer-Encoding other than chunked is not supported.",
    ),
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_RECV = 256 * 1024


@dataclass(eq=False)  # compared and hashed by identity: a set holds the open ones
class Connection:
    """A client connection: the bytes it sent that no answer has used yet, and its state."""

    sock: socket.socket
    addr: Any
    listener: socket.socket
    deadline: float  # when the loop gives up on what it is waiting for
    framer: Framer
    fd: int = -1  # the socket's descriptor, kept: a closed socket's fileno() is -1
    data: bytearray = field(default_factory=bytearray)
    served: int = 0  # requests answered on this connection
    eof: bool = False  # the client has stopped sending
    closing: bool = False  # answered for the last time; draining what the client sends


def _refusal(status: int, message: str, request: bytes | bytearray) -> bytes:
    """A JSON error answer that closes the connection: in the Open Inference Protocol's shape
    where the request's bytes so far are for a /v2 path, only its head for a HEAD request."""
    target = bytes(request[: request.find(b"\n")]).split(b" ")[1:2]
    v2 = bool(target) and (target[0] == b"/v2" or target[0].startswith((b"/v2/", b"/v2?")))
    body = error_body(status, message, v2=v2)
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + (b"" if request.startswith(b"HEAD ") else body)


class BufferingWorker(Worker):
    """A worker whose requests are read and framed by a selector loop before they are served."""

    header_timeout = 10.0  # from a request's first byte (or the accept) to its blank line
    body_timeout = 30.0  # from the end of the headers to the end of the body
    io_timeout = 10.0  # any one write once a request is being answered
    max_body = 2 * 1024 * 1024  # the app's MAX_CONTENT_LENGTH: beyond it, a 413
    budget = 64 * 1024 * 1024  # bytes buffered at once, over all of a worker's connections
    linger = 2.0  # how long an answered client may keep sending before it is cut off
    requests_per_connection = 1000  # then the connection closes: no client holds a worker's ear

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
        self.ready: deque[Connection] = deque()  # holding the bytes of a next request
        self.buffered = 0
        self.next_deadline = float("inf")  # no connection's deadline comes before this
        self.listening = False  # whether the listeners are watched (run() starts them)
        cfg = self.cfg
        self.limits = Limits(
            head=cfg.limit_request_line
            + cfg.limit_request_fields * (cfg.limit_request_field_size + 2)
            + 4,
            body=int(self.max_body),
        )
        self.keepalive = float(cfg.keepalive)  # idle seconds between requests; 0: none
        super().init_process()

    def run(self) -> None:
        if self.cfg.is_ssl:
            raise RuntimeError("BufferingWorker serves plain HTTP; TLS ends at the front end")
        for listener in self.sockets:
            listener.setblocking(False)
        self._listen(True)
        self.poller.register(self.PIPE[0], select.EPOLLIN)
        self.watched[self.PIPE[0]] = _WAKEUP
        accepting = True
        stop_by = float("inf")
        beat = 0.0
        while self.alive or (self.open and time.monotonic() < stop_by):
            if time.monotonic() - beat >= 1.0:  # the arbiter's heartbeat, a syscall: once a second
                self.notify()
                beat = time.monotonic()
            if accepting and not self.alive:  # SIGTERM or max_requests: finish what is open
                accepting = False
                stop_by = time.monotonic() + self.cfg.graceful_timeout - 1
                self._stop_accepting()
            listeners = []
            for fd, _ in self.poller.poll(self._wait()):
                what = self.watched.get(fd)
                if isinstance(what, Connection):  # open connections first: they came first
                    self._guarded(self._readable, what)
                elif what is _WAKEUP:
                    os.read(self.PIPE[0], 4096)
                elif what is not None:
                    listeners.append(what)
            for _ in range(len(self.ready)):  # one request each, then the others' turn
                conn = self.ready.popleft()
                if conn in self.open:
                    self._guarded(self._frame, conn)
            for listener in listeners:
                if self.alive:
                    self._accept(listener)
            self._expire()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
        for conn in list(self.open):
            self._close(conn)

    def _guarded(self, step: Any, conn: Connection) -> None:
        """Run one step for one connection; whatever goes wrong closes that connection only.

        Exception, not BaseException: gunicorn ends a worker past its timeout with SystemExit.
        """
        try:
            step(conn)
        except Exception:
            self.log.exception("closed a connection from %s after an unexpected error", conn.addr)
            self._close(conn)

    def _wait(self) -> float:
        """Seconds until the next heartbeat or deadline, whichever comes first; none if a
        connection holds a request ready to frame."""
        if self.ready:
            return 0.0
        wait = min(self.timeout or 0.5, self.next_deadline - time.monotonic())
        return max(wait, 0.0)

    def _wait_until(self, conn: Connection, seconds: float) -> None:
        """Give `conn` until `seconds` from now for what the loop waits for next."""
        conn.deadline = time.monotonic() + seconds
        self.next_deadline = min(self.next_deadline, conn.deadline)

    def _stop_accepting(self) -> None:
        """Leave the listeners to the other workers, and close the kept-alive connections idle
        between requests (a new connection's first request is still awaited)."""
        self._listen(False)
        for conn in [c for c in self.open if c.served and not c.data and not c.closing]:
            self._close(conn)

    def _listen(self, listening: bool) -> None:
        """Watch the listeners, or leave new connections in the backlog (for other workers)."""
        if listening == self.listening:
            return
        self.listening = listening
        for listener in self.sockets:
            if listening:  # exclusive: a new connection wakes one idle worker, not all of them
                self.poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
                self.watched[listener.fileno()] = listener
            else:
                self.poller.unregister(listener.fileno())
                del self.watched[listener.fileno()]

    def _accept(self, listener: socket.socket) -> None:
        if len(self.open) >= self.cfg.worker_connections and not self._evict_idle():
            self._listen(False)  # until a connection closes (_close)
            return
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                self.log.warning("accept failed: %s", exc)
            return
        util.close_on_exec(sock)
        sock.setblocking(False)
        conn = Connection(sock, addr, listener, 0.0, Framer(self.limits), sock.fileno())
        self._wait_until(conn, self.header_timeout)
        self.open.add(conn)
        self.poller.register(conn.fd, select.EPOLLIN)
        self.watched[conn.fd] = conn
        self._guarded(self._readable, conn)  # a prompt client's request is usually here already

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest, to make room for a new one: kept-alive
        connections must not lock others out."""
        idle = [c for c in self.open if c.served and not c.data and not c.closing]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.deadline))
        return True

    def _readable(self, conn: Connection) -> None:
        try:
            chunk = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset: nobody left to answer
            self._close(conn)
            return
        if conn.closing:  # an answered client: drain, and close at its end
            if not chunk:
                self._close(conn)
            return
        if not chunk:
            conn.eof = True
            self._unwatch(conn)  # a closed stream stays readable: stop asking
            if conn not in self.ready:
                self._frame(conn)
            return
        if self.buffered + len(chunk) > self.budget:
            self._refuse(conn, 503, "The server is busy reading other requests.")
            return
        if not conn.data and conn.served:  # a kept-alive connection's next request begins
            self._wait_until(conn, self.header_timeout)
        conn.data += chunk
        self.buffered += len(chunk)
        if conn not in self.ready:  # else its turn comes after the request before it
            self._frame(conn)

    def _frame(self, conn: Connection) -> None:
        """Serve the request at the start of the connection's bytes once they are all in."""
        framer = conn.framer
        had_head = framer.head is not None
        try:
            end = framer.end(conn.data)
        except Refused as refusal:
            self._refuse(conn, refusal.status, refusal.reason)
            return
        head = framer.head
        if head is not None and not had_head:  # the headers are in: the body's turn
            self._wait_until(conn, self.body_timeout)
            if head.expect_continue and end is None and not conn.eof:
                try:
                    conn.sock.send(_CONTINUE)
                except OSError:
                    self._close(conn)
                    return
        if end is not None:
            self._serve(conn, end)
        elif conn.eof:  # nothing more will come
            if conn.data:
                self._refuse(conn, 400, "The request ended before it was complete.")
            else:
                self._close(conn)

    def _serve(self, conn: Connection, end: int) -> None:
        """Answer the request in the connection's first `end` bytes; keep the connection for
        the next one if both sides may."""
        request = bytes(conn.data[:end])
        del conn.data[:end]
        self.buffered -= end
        head = conn.framer.head
        conn.framer.reset()
        conn.served += 1
        keep = (
            head is not None
            and head.keep_alive
            and self.keepalive > 0
            and conn.served < self.requests_per_connection
            and not conn.eof
        )
        if not self._respond(conn, request, keep):
            self._linger(conn)
        elif conn.data:  # pipelined: its next request is (at least partly) here
            self._wait_until(conn, self.header_timeout)
            self.ready.append(conn)
        else:
            self._wait_until(conn, self.keepalive)

    def _respond(self, conn: Connection, request: bytes, keep: bool) -> bool:
        """gunicorn's parser and the app, as the sync worker runs them, over exactly this
        request's bytes; whether the connection stays open for another request."""
        sock = conn.sock
        sock.settimeout(self.io_timeout)
        # gunicorn writes the head and the body separately: one segment, not two.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        req = None
        try:
            req = next(http.get_parser(self.cfg, [request], conn.addr))
            req._expected_100_continue = False  # the loop answered it, or the body was in
            kept = self._handle(conn, req, keep)
        except (http.errors.ParseException, http.errors.NoMoreData) as exc:
            # gunicorn's own refusals, and NoMoreData: its reading of the framing differed
            status, message = _REFUSED.get(type(exc), (400, "The request is malformed."))
            self._send(conn, _refusal(status, message, request))
            kept = False
        except OSError as exc:  # the client went away or stalled: nobody to answer
            self.log.debug("Connection error while serving: %s", exc)
            kept = False
        except Exception as exc:
            self.handle_error(req, sock, conn.addr, exc)
            kept = False
        if kept:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)  # send what is corked
            sock.settimeout(0.0)
        return kept

    def _handle(self, conn: Connection, req: Any, keep: bool) -> bool:
        """Run the app for a parsed request and write its answer (gunicorn's sync worker's
        handle_request, without forcing the connection closed)."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            started = datetime.now()
            resp, environ = wsgi.create(
                req, conn.sock, conn.addr, conn.listener.getsockname(), self.cfg
            )
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            if not keep or not self.alive:
                resp.force_close()
            body = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(body, environ["wsgi.file_wrapper"]):
                    resp.write_file(body)
                else:
                    for item in body:
                        resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - started)
                if hasattr(body, "close"):
                    body.close()
        except Exception:
            if resp is not None and resp.headers_sent:  # a second answer would corrupt this one
                self.log.exception("Error handling request")
                return False
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return not resp.should_close()

    def _send(self, conn: Connection, data: bytes) -> None:
        try:
            conn.sock.sendall(data)
        except OSError:
            pass

    def _expire(self) -> None:
        """Close or refuse the connections past their deadline (looked for only once the
        earliest deadline has passed: not a scan of every connection per request)."""
        now = time.monotonic()
        if now < self.next_deadline:
            return
        expired = [c for c in self.open if c.deadline <= now]
        later = (c.deadline for c in self.open if c.deadline > now)
        self.next_deadline = min(later, default=float("inf"))
        for conn in expired:
            if conn.closing or not conn.data:  # nothing was asked, or an idle keep-alive
                self._close(conn)
            else:
                self._refuse(conn, 408, "The request did not arrive in time.")

    def _refuse(self, conn: Connection, status: int, message: str) -> None:
        """Answer a request this loop gave up on, and close the connection."""
        try:
            conn.sock.send(_refusal(status, message, conn.data))
        except OSError:
            pass
        self.log.info("refused a connection from %s: %d", conn.addr[0], status)
        self._linger(conn)

    def _linger(self, conn: Connection) -> None:
        """Half-close, and drain what the client still sends for a moment, without waiting.

        Closing with unread data in the socket would reset the connection and could cut off
        the response; gunicorn lingers too, but blocking the worker for up to two seconds.
        """
        self.buffered -= len(conn.data)
        conn.data = bytearray()
        if conn.eof:  # the client sent all it will: nothing to drain
            self._close(conn)
            return
        conn.closing = True
        self._wait_until(conn, self.linger)
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)

    def _unwatch(self, conn: Connection) -> None:
        if self.watched.pop(conn.fd, None) is not None:
            self.poller.unregister(conn.fd)

    def _close(self, conn: Connection) -> None:
        self.buffered -= len(conn.data)
        conn.data = bytearray()
        if conn in self.open:
            self.open.discard(conn)
            self._unwatch(conn)
            if self.alive and len(self.open) < self.cfg.worker_connections:
                self._listen(True)
        util.close(conn.sock)
