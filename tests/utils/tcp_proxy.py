"""A loopback TCP proxy that can cut every open connection: a real dropped link for tests of
stream resumption (a mock transport would not show what a client does with a half-read
response on a socket that died)."""

from __future__ import annotations

import socket
import struct
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; `drop()` kills all current connections."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._frozen: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0  # accepted so far: a resumed stream opens a second one
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self.connections += 1
                self._open += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src not in self._frozen:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def freeze(self) -> int:
        """Silently swallow everything on the open connections, closing nothing: a link that
        died without a reset (a NAT that forgot it). New connections work normally."""
        with self._lock:
            self._frozen.update(self._open)
            return len(self._open) // 2

    def drop(self) -> int:
        """Reset every open connection (RST, like a pulled cable); returns how many."""
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            try:  # linger 0: close sends RST; shutdown first wakes the pump blocked in recv
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        return len(sockets) // 2

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.drop()
