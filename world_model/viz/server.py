"""Interactive world-model page on localhost (stdlib http.server, one rollout at a time).

Pick an episode and a start step, then drive the imagined rollout with the keyboard (arrows: x/y, W/S: z,
space: toggle the gripper), with the sliders ("step with sliders"), or let a policy act ("policy step"; a
chunk runs over successive policy steps, as in `imagine`, until a manual step drops what is left of it).
Every step returns the decoded frames of all cameras and the predicted success probability.

With a `wm-eval` result (`eval_json=`), the page also shows the policy judge, as the static report does
(`viz.judge`): the ranking chart and sim vs imagined rollouts per camera with the divergence step marked.

    wm-viz checkpoint=outputs/wm serve=true port=8765 [policy=vla:path=outputs/train/final] [eval_json=...]

API (JSON): GET /api/info; GET /api/judge ({"html": fragment, "" without a result}); POST /api/start
{"episode": i, "t": t}; POST /api/step {"action": [7 floats]} or {"policy": true}. Errors come back as
{"error": "..."} with HTTP 400.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np

from vla.core.types import ContractError, Observation, Policy, validate_action
from vla.policy import ActionQueue
from world_model.data import WMEpisode
from world_model.model import WorldModel
from world_model.viz.images import png_b64, upscale

logger = logging.getLogger(__name__)


class Session:
    """The rollout state behind the page (guarded by a lock: the server is threaded)."""

    def __init__(self, model: WorldModel, episodes: list[WMEpisode], policy: Policy | None = None,
                 policy_name: str = "", eval_results: dict | None = None):
        self.model, self.episodes, self.policy, self.policy_name = model, episodes, policy, policy_name
        self.closed_loop = (eval_results or {}).get("closed_loop")
        self._judge: str | None = None
        model.prepare(episodes)
        self.lock = threading.Lock()
        self.state = None
        self.obs: Observation | None = None
        self.step_count = 0
        self.instruction = ""
        self.queue = ActionQueue()  # the policy's pending chunk, executed open-loop as in `imagine`
        st = model.statistics.action
        self.action_scale = np.maximum(np.abs(st.q01), np.abs(st.q99))[:3].tolist()

    def info(self) -> dict:
        return {"episodes": [{"index": i, "id": e.metadata.episode_id, "length": len(e), "instruction": e.instruction}
                             for i, e in enumerate(self.episodes)],
                "cameras": self.model.cameras, "policy": self.policy_name, "action_scale": self.action_scale,
                "history": self.model.config.history}

    def judge(self) -> dict:
        """The ranking chart and sim-vs-imagined videos of the `wm-eval` result (built once, on first request)."""
        with self.lock:
            if self._judge is None:
                from world_model.viz.judge import JUDGE_CSS, judge_html

                self._judge = (f"<style>{JUDGE_CSS}</style>{judge_html(self.closed_loop, self.model.cameras)}"
                               if self.closed_loop else "")
            return {"html": self._judge}

    def _frames(self, imgs: dict[str, np.ndarray]) -> dict[str, str]:
        return {c: png_b64(upscale(imgs[c][0], max(1, 192 // imgs[c].shape[1]))) for c in self.model.cameras}

    def start(self, episode: int, t: int) -> dict:
        if not 0 <= episode < len(self.episodes):
            raise ValueError(f"episode {episode} does not exist (0..{len(self.episodes) - 1})")
        ep = self.episodes[episode]
        if not 0 <= t < len(ep):
            raise ValueError(f"start step {t} is outside episode {ep.metadata.episode_id} (0..{len(ep) - 1})")
        with self.lock:
            self.state = self.model.start_state(ep, t)
            imgs = self.model.decode(self.state.latents[:, -1], size=self.model.source_image_size,
                                     proprio=self.state.proprio[:, -1])
            self.instruction = ep.instruction
            self.obs = Observation({c: imgs[c][0] for c in self.model.cameras}, ep.proprio[t], ep.instruction)
            self.step_count = 0
            self.queue.reset()
            if self.policy is not None:
                self.policy.reset(ep.instruction)
            return {"step": 0, "frames": self._frames(imgs), "success_prob": None, "episode": ep.metadata.episode_id,
                    "start": t}

    def step(self, action=None, use_policy: bool = False) -> dict:
        with self.lock:
            if self.state is None:
                raise ValueError("start a rollout first (POST /api/start)")
            if use_policy:
                if self.policy is None:
                    raise ValueError("no policy configured; run wm-viz with policy=<spec>")
                a = self.queue.step(self.policy, self.obs)
            else:
                a = validate_action(action, allow_chunk=False)
                self.queue.reset()  # a manual step leaves the policy's plan behind
            self.state, out = self.model.step(self.state, a[None])
            imgs = self.model.decode(out.latents, size=self.model.source_image_size, proprio=out.norm_proprio)
            self.obs = Observation({c: imgs[c][0] for c in self.model.cameras}, out.proprio[0], self.instruction)
            self.step_count += 1
            return {"step": self.step_count, "frames": self._frames(imgs), "success_prob": float(out.success_prob[0]),
                    "action": [round(float(v), 4) for v in a], "proprio": [round(float(v), 4) for v in out.proprio[0]]}


def _page() -> bytes:
    return resources.files("world_model.viz").joinpath("interactive.html").read_bytes()


def make_handler(session: Session):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # route through logging instead of stderr
            logger.debug("http: " + fmt, *args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj) -> None:
            self._send(code, json.dumps(obj).encode(), "application/json")

        def do_GET(self):  # noqa: N802
            if self.path in ("/", "/index.html"):
                self._send(200, _page(), "text/html; charset=utf-8")
            elif self.path == "/api/info":
                self._json(200, session.info())
            elif self.path == "/api/judge":
                self._json(200, session.judge())
            elif self.path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            else:
                self._json(404, {"error": f"no such path {self.path}"})

        def do_POST(self):  # noqa: N802
            try:
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                if self.path == "/api/start":
                    self._json(200, session.start(int(body.get("episode", 0)), int(body.get("t", 0))))
                elif self.path == "/api/step":
                    self._json(200, session.step(body.get("action"), bool(body.get("policy", False))))
                else:
                    self._json(404, {"error": f"no such path {self.path}"})
            except (ValueError, ContractError, TypeError, KeyError) as e:
                self._json(400, {"error": str(e)})
            except Exception as e:  # noqa: BLE001 - a failing policy must not kill the server
                logger.exception("request failed")
                self._json(500, {"error": f"{type(e).__name__}: {e}"})

    return Handler


def serve(session: Session, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """Create the server (call `.serve_forever()`; port 0 picks a free port, see `.server_address`)."""
    server = ThreadingHTTPServer((host, port), make_handler(session))
    logger.info("interactive world model at http://%s:%d/", *server.server_address[:2])
    return server
