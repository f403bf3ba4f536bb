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


def listeners_of(root: int) -> list[tuple[str, int]]:
    sockets = listening_sockets()
    found = set()
    for pid in process_tree(root):
        for inode in _socket_inodes(pid):
            if inode in sockets:
                found.add(sockets[inode])
    return sorted(found)


def non_loopback_listeners(root: int) -> list[str]:
    """``address:port`` of every socket the tree listens on beyond loopback ([] off Linux)."""
    if not (_PROC / "net" / "tcp").exists():
        return []
    return [f"{a}:{p}" for a, p in listeners_of(root) if not is_loopback(a)]
