"""Console entry points: wm-train, wm-eval, wm-viz."""
