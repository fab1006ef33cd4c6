"""Action-conditioned world model: rehearse a `vla.Policy` inside a learned model of the scene.

Modules: `model` (autoencoder + frame-causal latent dynamics, save/load), `train` (wm-train), `imagine`
(policy rollouts in imagination, open-loop prediction), `evaluate` and `closed_loop` (wm-eval), `metrics`,
`viz` (HTML report, interactive page; wm-viz), `policies` (the `servo` policy kind), `toy` (SquareWorld).
Importing the package is cheap: torch and friends are imported by the submodules that need them. It registers
the `servo` kind with `vla.policy`, so any spec that names it builds once world_model is imported.
"""

from world_model import policies as _policies  # noqa: F401  (registers the `servo` policy kind)
