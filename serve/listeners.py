"""Which TCP sockets a process tree listens on (Linux /proc), to prove loopback-only."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

_PROC = Path("/proc")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(root: int) -> set[int]:
    tree = _children()
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(tree.get(pid, ()))
    return seen


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in (_PROC / str(pid) / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _decode(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listening_sockets() -> dict[str, tuple[str, int]]:
    """inode -> (address, port) for every listening TCP socket on the machine."""
    out: dict[str, tuple[str, int]] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            addr, port = fields[1].split(":")
            out[fields[9]] = (_decode(addr), int(port, 16))
    return out


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _command(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def listeners_of(root: int) -> list[tuple[str, int, str]]:
    """(address, port, command) of every listening socket in the process tree of `root`."""
    sockets = listening_sockets()
    found = set()
    for pid in process_tree(root):
        for inode in _socket_inodes(pid):
            if inode in sockets:
                found.add((*sockets[inode], _command(pid)))
    return sorted(found)


# Serve's direct-ingress HTTP port range (RAY_SERVE_DIRECT_INGRESS_*_HTTP_PORT); it lies
# below Linux's ephemeral range, so Ray's randomly placed gRPC ports never fall in it.
# raygate enables no Serve gRPC ingress, so the gRPC range (40000+) holds no listener.
SERVING_PORT_RANGES = (range(30000, 31001),)
DASHBOARD_PORT = 8265


def is_serving(port: int, command: str, http_port: int) -> bool:
    """HTTP listeners that answer requests or control the platform (no Ray token needed)."""
    return (
        "haproxy" in command
        or port in (http_port, DASHBOARD_PORT)
        or any(port in r for r in SERVING_PORT_RANGES)
    )


def exposed_serving_listeners(root: int, http_port: int) -> list[str]:
    """``address:port`` of every serving listener of the tree beyond loopback ([] off Linux).

    Ray's own cluster ports (GCS, raylet, workers' gRPC, agents) are left out: Ray resolves
    127.0.0.1 to the node's address on purpose and protects them with its token auth.
    """
    if not (_PROC / "net" / "tcp").exists():
        return []
    return [
        f"{a}:{p}"
        for a, p, command in listeners_of(root)
        if not is_loopback(a) and is_serving(p, command, http_port)
    ]
