"""Console scripts of robot_bridge: `vla-bridge` (bridge.py) and `vla-convert` (convert.py)."""
