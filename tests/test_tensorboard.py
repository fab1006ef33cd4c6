"""TensorBoard logging must not load TensorFlow (MuJoCo's software renderer crashes next to it)."""

import subprocess
import sys


def test_summary_writer_logs_readable_scalars_without_tensorflow(tmp_path):
    code = f"""
import sys
from vla.tensorboard import summary_writer
w = summary_writer({str(tmp_path)!r}); w.add_scalar("loss", 0.5, 3); w.close()
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator({str(tmp_path)!r}); ea.Reload()
(ev,) = ea.Scalars("loss")
assert (ev.step, ev.value) == (3, 0.5), ev
assert "tensorflow" not in sys.modules, "TensorFlow was imported by TensorBoard logging"
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
