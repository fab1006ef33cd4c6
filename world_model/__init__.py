"""world_model package."""
