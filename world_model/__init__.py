"""Action-conditioned world model: rehearse a `vla.Policy` inside a learned model of the scene.

Modules: `model` (autoencoder + frame-causal latent dynamics, save/load), `train` (wm-train), `imagine`
(policy rollouts in imagination, open-loop prediction), `evaluate` and `closed_loop` (wm-eval), `metrics`,
`viz` (HTML report, interactive page; wm-viz), `demo_stage` (the vla-demo stage), `toy` (SquareWorld).
Importing the package is cheap: torch and friends are imported by the submodules that need them.
"""
