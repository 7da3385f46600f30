"""Socket inspection for the faults (bench/sockets.py): the kernel's sock_diag and psutil's
fallback name the same connections, those the process holds and no others."""

from __future__ import annotations

import os
import socket

import pytest

from bench.sockets import client_ports, established_by_netlink, established_by_psutil

pytestmark = pytest.mark.unit


def test_sock_diag_and_psutil_name_the_connection_this_process_holds() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            held = {client.getsockname()[1]}
            via_kernel = established_by_netlink(port)
            assert via_kernel is None or set(via_kernel.values()) == held
            assert client_ports(os.getpid(), port) == held
            assert established_by_psutil(os.getpid(), port) == held
            accepted.close()  # the client's end remains, but its local port is not `port`
            assert client_ports(os.getpid(), port) == set()
            assert established_by_psutil(os.getpid(), port) == set()
