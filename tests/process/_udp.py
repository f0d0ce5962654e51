"""
UDP peers for the client's process tests, in threads on loopback: an echo
(uppercasing, or plain) and a deterministic lossy forwarder that records
exactly what it did.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any, Dict, List, Tuple

__all__ = ["LossyForwarder", "UDPEcho"]


class _Thread:
    def __init__(self) -> None:
        self._wake, self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """
        Stop the thread and close its sockets.
        """
        self._waker.send(b"x")
        self._thread.join(10)
        self._wake.close()
        self._waker.close()


class UDPEcho(_Thread):
    """
    Each datagram sent back to its sender, uppercased (ASCII only), or
    unchanged if C{plain}.
    """

    def __init__(self, plain: bool = False, host: str = "127.0.0.1") -> None:
        super().__init__()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.bind((host, 0))
        self.port: int = self._socket.getsockname()[1]
        self._plain = plain
        self._thread.start()

    def _serve(self) -> None:
        sock = self._socket
        while True:
            ready, _, _ = select.select([sock, self._wake], [], [])
            if self._wake in ready:
                sock.close()
                return
            data, address = sock.recvfrom(65535)
            sock.sendto(data if self._plain else data.upper(), address)


class LossyForwarder(_Thread):
    """
    Between a client and a server: every datagram from the client, by its
    arrival number I{i} (from 1), is dropped when I{i} is a multiple of
    C{dropEvery}; otherwise held back when I{i} % C{holdEvery} is
    C{holdAt}, until C{holdFor} later datagrams were forwarded (or the
    forwarder is idle); otherwise sent twice when I{i} % C{duplicateEvery}
    is C{duplicateAt}; otherwise forwarded.  Replies are passed back as
    they come.

    @ivar record: what it did: C{received}, C{dropped}, C{duplicated},
        C{held}, C{reordered} (held ones that later datagrams overtook).
    """

    def __init__(
        self,
        serverPort: int,
        dropEvery: int = 10,
        duplicateEvery: int = 7,
        duplicateAt: int = 3,
        holdEvery: int = 11,
        holdAt: int = 5,
        holdFor: int = 2,
    ) -> None:
        super().__init__()
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(("127.0.0.1", 0))
        self.port: int = self._front.getsockname()[1]
        self._server = ("127.0.0.1", serverPort)
        self._rules = (dropEvery, duplicateEvery, duplicateAt, holdEvery, holdAt, holdFor)
        self.record: Dict[str, int] = dict.fromkeys(
            ["received", "dropped", "duplicated", "held", "reordered"], 0
        )
        self._backs: Dict[Any, socket.socket] = {}
        self._held: List[Tuple[bytes, Any, int]] = []
        self._thread.start()

    def _back(self, client: Any) -> socket.socket:
        back = self._backs.get(client)
        if back is None:
            back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            back.connect(self._server)
            self._backs[client] = back
        return back

    def _serve(self) -> None:
        dropEvery, duplicateEvery, duplicateAt, holdEvery, holdAt, holdFor = self._rules
        record = self.record
        while True:
            sockets = [self._front, self._wake, *self._backs.values()]
            ready, _, _ = select.select(sockets, [], [], 0.05 if self._held else None)
            if self._wake in ready:
                for sock in [self._front, *self._backs.values()]:
                    sock.close()
                return
            if not ready:
                self._release(all=True)  # idle: nothing will overtake them
                continue
            for back in ready:
                if back in (self._front, self._wake):
                    continue
                client = next(c for c, b in self._backs.items() if b is back)
                self._front.sendto(back.recv(65535), client)
            if self._front not in ready:
                continue
            data, client = self._front.recvfrom(65535)
            record["received"] += 1
            i = record["received"]
            back = self._back(client)
            if i % dropEvery == 0:
                record["dropped"] += 1
            elif i % holdEvery == holdAt:
                record["held"] += 1
                self._held.append((data, client, 0))
            else:
                back.send(data)
                if i % duplicateEvery == duplicateAt:
                    record["duplicated"] += 1
                    back.send(data)
                self._held = [(d, c, n + 1) for d, c, n in self._held]
                self._release()

    def _release(self, all: bool = False) -> None:
        holdFor = self._rules[-1]
        keep = []
        for data, client, overtaken in self._held:
            if all or overtaken >= holdFor:
                if overtaken:
                    self.record["reordered"] += 1
                self._back(client).send(data)
            else:
                keep.append((data, client, overtaken))
        self._held = keep
