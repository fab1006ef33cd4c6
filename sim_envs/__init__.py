"""sim_envs package."""
