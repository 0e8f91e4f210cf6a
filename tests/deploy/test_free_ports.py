"""Servers started side by side get ports of their own."""

from __future__ import annotations

import socket

from deploy.embedded import free_ports


def test_ports_drawn_together_are_all_different_and_free():
    ports = free_ports([f"server {n}" for n in range(200)])

    assert len(set(ports.values())) == 200
    for port in list(ports.values())[:20]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", port))  # raises if it were taken
