"""LIBERO as a suite of `vla-eval`: `vla-eval suite=libero_spatial policy=<checkpoint>`.

LIBERO needs robosuite 1.4 and mujoco < 4, so its episodes run in worker processes under their own venv
(`make libero-venv`), and reach our policies through the policy server (`vla.serving`), as benchmark
containers reach model servers in the allenai vla-evaluation-harness.

    suites       the suite table: step budgets, instruction source, statistics keys (plain Python)
    conventions  OpenVLA / OpenVLA-OFT conventions (rotation, resize, crop, state, gripper) as options
    worker       the benchmark side, run with the LIBERO interpreter (`python -m sim_envs.libero.worker`)
    runner       the policy side: planning, sharding, serving, results, merging
    expert       a scripted pick-and-place expert from privileged poses (`policy=libero_expert`)
    venv         where the LIBERO interpreter is and the environment its workers get

Importing this package imports nothing heavy; user guide: docs/libero.md.
"""
