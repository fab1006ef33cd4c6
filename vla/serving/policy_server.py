"""Serve any `vla.Policy` over TCP, so a process without the model (a robot PC, a benchmark in its own Python
environment) can use a policy that runs elsewhere.

Server:  vla-bridge role=policy_server policy=vla policy.path=/ckpt server.host=0.0.0.0 server.port=5555
Client:  RemotePolicy("gpu-box", 5555, timeout_s=0.5) is a `vla.Policy`; the bridge uses it like any other.
Users: `robot_bridge` (the arm's node), `sim_envs.libero` (LIBERO runs in its own venv and queries the policy
through this server). Both import it from here; it needs numpy only, so any interpreter with numpy and this
package on its path can be a client.

Encoding: JSON header + raw array bytes (`vla.serving.wire`), never pickle (LeRobot's server sends
pickles over the network; unpickling runs code). Requests: `info`, `reset` (instruction), `act`
(images per camera, proprio, instruction, timestamp). Calls into the policy are serialized with a lock.
Failure mode: the client raises `PolicyServerError` on timeout, refused/closed connection or a server-side
error; the node turns that into a stop with the reason on its status topic.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time

import numpy as np

from vla.serving import wire
from vla.core.types import Observation, Policy

logger = logging.getLogger(__name__)

PROTOCOL = "vla-policy/1"


class PolicyServerError(RuntimeError):
    """The remote policy did not answer in time, the connection failed, or the server reported an error."""


def observation_to_wire(obs: Observation) -> tuple[dict, dict[str, np.ndarray]]:
    arrays = {f"image/{k}": v for k, v in obs.images.items()}
    arrays["proprio"] = obs.proprio
    return {"instruction": obs.instruction, "timestamp": float(obs.timestamp)}, arrays


def observation_from_wire(header: dict, arrays: dict[str, np.ndarray]) -> Observation:
    images = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("image/")}
    return Observation(images=images, proprio=arrays.get("proprio", np.zeros(0, np.float32)),
                       instruction=str(header.get("instruction", "")), timestamp=float(header.get("timestamp", 0.0)))


class _Handler(socketserver.BaseRequestHandler):
    server: "_TCPServer"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                header, arrays = wire.recv(sock)
            except (wire.WireError, OSError) as e:
                if not isinstance(e, wire.WireError) or "closed by peer" not in str(e):
                    logger.warning("dropping client %s: %s", self.client_address, e)
                return
            rid = header.get("id")
            try:
                reply, out = self.server.owner.handle(header, arrays)
                reply = {"ok": True, "id": rid, **reply}
            except Exception as e:  # report, keep serving
                logger.exception("request %s failed", header.get("op"))
                reply, out = {"ok": False, "id": rid, "error": f"{type(e).__name__}: {e}"}, {}
            try:
                wire.send(sock, reply, out)
            except OSError:
                return


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "PolicyServer"


class PolicyServer:
    """Example:
        with PolicyServer(policy, port=0) as srv:   # port 0 picks a free port: srv.port
            ...
    """

    def __init__(self, policy: Policy, host: str = "127.0.0.1", port: int = 0):
        self.policy = policy
        self._lock = threading.Lock()
        self._srv = _TCPServer((host, port), _Handler)
        self._srv.owner = self
        self.host, self.port = self._srv.server_address[:2]
        self._thread: threading.Thread | None = None
        self.requests = 0

    def handle(self, header: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
        op = header.get("op")
        with self._lock:
            self.requests += 1
            if op == "info":
                return {"protocol": PROTOCOL, "chunk_size": int(self.policy.chunk_size),
                        "cameras": list(self.policy.cameras)}, {}
            if op == "reset":
                self.policy.reset(str(header.get("instruction", "")))
                return {}, {}
            if op == "act":
                t0 = time.perf_counter()
                action = np.asarray(self.policy.act(observation_from_wire(header, arrays)), np.float32)
                return {"policy_s": time.perf_counter() - t0}, {"action": action}
        raise ValueError(f"unknown op {op!r}; expected info, reset or act")

    def serve_forever(self) -> None:
        logger.info("policy server listening on %s:%d (%s)", self.host, self.port, type(self.policy).__name__)
        self._srv.serve_forever(poll_interval=0.1)

    def start(self) -> "PolicyServer":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def __enter__(self) -> "PolicyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class RemotePolicy(Policy):
    """A `vla.Policy` whose `act` runs on a policy server. Raises `PolicyServerError` on any failure.

    After a timeout the connection is dropped (a late reply must never be taken for the next request) and
    the next call reconnects.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5555, timeout_s: float = 0.5, connect_timeout_s: float = 2.0):
        self.host, self.port, self.timeout_s, self.connect_timeout_s = host, int(port), timeout_s, connect_timeout_s
        self._sock: socket.socket | None = None
        self._next_id = 0
        info = self._call({"op": "info"}, {}, timeout=connect_timeout_s)[0]
        if info.get("protocol") != PROTOCOL:
            raise PolicyServerError(f"server at {host}:{port} speaks {info.get('protocol')!r}, expected {PROTOCOL!r}")
        self.chunk_size = int(info["chunk_size"])
        self.cameras = tuple(info["cameras"])

    def _connect(self) -> socket.socket:
        try:
            s = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except OSError as e:
            raise PolicyServerError(f"cannot reach policy server at {self.host}:{self.port}: {e}") from None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def _call(self, header: dict, arrays: dict, timeout: float | None = None) -> tuple[dict, dict]:
        if self._sock is None:
            self._sock = self._connect()
        self._next_id += 1
        header = {**header, "id": self._next_id}
        try:
            self._sock.settimeout(timeout or self.timeout_s)
            wire.send(self._sock, header, arrays)
            reply, out = wire.recv(self._sock)
        except socket.timeout:
            self._drop()
            raise PolicyServerError(f"policy server {self.host}:{self.port} did not answer {header['op']} "
                                    f"within {(timeout or self.timeout_s) * 1e3:.0f} ms") from None
        except (OSError, wire.WireError) as e:
            self._drop()
            raise PolicyServerError(f"policy server {self.host}:{self.port} connection failed: {e}") from None
        if reply.get("id") != self._next_id:
            self._drop()
            raise PolicyServerError(f"reply id {reply.get('id')} does not match request {self._next_id}")
        if not reply.get("ok"):
            raise PolicyServerError(f"policy server error: {reply.get('error')}")
        return reply, out

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def reset(self, instruction: str) -> None:
        self._call({"op": "reset", "instruction": instruction}, {})

    def act(self, observation: Observation) -> np.ndarray:
        header, arrays = observation_to_wire(observation)
        _, out = self._call({"op": "act", **header}, arrays)
        if "action" not in out:
            raise PolicyServerError("reply carries no 'action' array")
        return out["action"]

    def close(self) -> None:
        self._drop()
