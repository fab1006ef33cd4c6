"""Console scripts of sim_envs: `vla-collect` (expert demonstrations to RLDS) and `vla-eval` (sim evaluation)."""
