"""Which workers run and which connections each holds, read from the kernel for the faults.

The workers are the master's children; a worker's connections are its established sockets on
the server's port (sock_diag, or psutil where that is unavailable); a worker SIGSTOPped for
counting is `stopped`. Only reads: nothing here signals a process.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import psutil

from testkit.processes import Server, children, wait_until

RESPAWN_DEADLINE = 15.0  # generous: the machine may be busy


def client_ports(pid: int, port: int) -> set[int]:
    """The client ports of the established connections that process `pid` holds on `port`.

    The kernel's sock_diag names the established sockets on `port` by inode, and a socket is
    the process's when one of its file descriptors points at that inode. Where sock_diag is
    unavailable, psutil's net_connections answers the same, slowly.
    """
    connections = established_by_netlink(port)
    if connections is None:
        return established_by_psutil(pid, port)
    inodes = socket_inodes(pid)
    return {client for inode, client in connections.items() if inode in inodes}


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets that process `pid` has open, from /proc/PID/fd; none if gone.

    psutil reads the same links but publishes no inodes: its net_connections joins them with
    the whole TCP table, the scan established_by_netlink avoids.
    """
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        return set()
    return inodes


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20  # <linux/netlink.h>, <linux/sock_diag.h>
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 0x1, 0x300, 2, 3
TCP_ESTABLISHED = 1


def established_by_netlink(port: int) -> dict[int, int] | None:
    """Socket inode -> client port of the established TCP connections on local `port`.

    Asks the kernel's sock_diag for established sockets only. /proc/net/tcp lists every recently
    closed connection too: under a load of one connection per request it grew to ~24,000
    lines and one scan took 1.4 s, long enough to miss a connection that lives 3 s.
    None where sock_diag is unavailable (some sandboxes): the caller falls back to psutil.
    """
    found: dict[int, int] = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as diag:
            for family in (socket.AF_INET, socket.AF_INET6):
                messages = _sock_diag_dump(diag, family)
                if messages is None and family == socket.AF_INET:
                    return None
                for message in messages or []:  # no IPv6 is no IPv6 sockets
                    local, remote = struct.unpack_from(">HH", message, 4)
                    (inode,) = struct.unpack_from("=I", message, 68)
                    if local == port:
                        found[inode] = remote
    except OSError:
        return None
    return found


def _sock_diag_dump(diag: socket.socket, family: int) -> list[bytes] | None:
    """The struct inet_diag_msg of every established TCP socket of `family` (ports at 4, inode
    at 68), or None if the kernel answers with an error."""
    # struct inet_diag_req_v2, with an all-zero inet_diag_sockid: dump them all
    request = struct.pack("=BBBxI48x", family, socket.IPPROTO_TCP, 0, 1 << TCP_ESTABLISHED)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, flags, 1, 0)
    diag.sendall(header + request)  # one datagram: the netlink message whole
    messages = []
    while True:
        data, offset = diag.recv(1 << 16), 0
        if not data:  # the socket closed: no answer to trust
            return None
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == NLMSG_ERROR:
                return None
            if kind == NLMSG_DONE:
                return messages
            messages.append(data[offset + 16 : offset + length])
            offset += (length + 3) & ~3


def established_by_psutil(pid: int, port: int) -> set[int]:
    """client_ports from psutil's net_connections: it reads /proc/net/tcp and tcp6 whole,
    every recently closed connection included (slow under load); none if `pid` is gone."""
    try:
        connections = psutil.Process(pid).net_connections("tcp")
    except psutil.NoSuchProcess:
        return set()
    return {
        c.raddr.port
        for c in connections
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
    }


def stopped(pid: int) -> bool:
    """Whether the process is stopped (psutil's status): a SIGSTOP has taken effect."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


def worker_holding(server: Server, client_port: int, timeout: float = 10.0) -> int | None:
    """The worker that accepted the connection from `client_port`, once one has."""
    assert server.proc is not None
    master = server.proc.pid
    found: list[int] = []

    def accepted() -> bool:
        found[:] = [w for w in children(master) if client_port in client_ports(w, server.port)]
        return bool(found)

    return found[0] if wait_until(accepted, timeout) else None


def all_workers(server: Server, count: int, timeout: float = RESPAWN_DEADLINE) -> list[int]:
    """The workers, once `count` of them run: readiness means one answered, not all forked."""
    assert server.proc is not None
    master = server.proc.pid
    if not wait_until(lambda: len(children(master)) == count, timeout):
        raise AssertionError(f"{count} workers expected, found {children(master)}")
    return children(master)
