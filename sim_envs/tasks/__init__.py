"""The task registry: one table, from which gymnasium ids, docs and tests are derived."""

from __future__ import annotations

from sim_envs.tasks.base import Task
from sim_envs.tasks.drawer import OpenDrawer
from sim_envs.tasks.lift import LiftCube, LiftCubeEasy
from sim_envs.tasks.lift_named import LiftNamedCube, LiftNamedShape
from sim_envs.tasks.lift_or_push import LiftOrPushCube
from sim_envs.tasks.place import PlaceCubeOnPlate
from sim_envs.tasks.place_named import PlaceCubeOnNamedPlate, PlaceSideCubeOnPlate
from sim_envs.tasks.push import PushCube
from sim_envs.tasks.stack import StackCube

#: Task name -> class. Add a task here and it is registered as `vla_sim/<name>-v0` everywhere. The second row
#: are the tasks where only the instruction says which object to act on (and how).
TASK_CLASSES: dict[str, type[Task]] = {
    cls.name: cls for cls in (LiftCube, LiftCubeEasy, PushCube, PlaceCubeOnPlate, StackCube, OpenDrawer,
                              LiftNamedCube, LiftNamedShape, PlaceCubeOnNamedPlate, PlaceSideCubeOnPlate,
                              LiftOrPushCube)
}


def make_task(name: str) -> Task:
    """A fresh task instance by name; unknown names list the registered ones."""
    try:
        return TASK_CLASSES[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(TASK_CLASSES)}") from None


__all__ = ["TASK_CLASSES", "Task", "make_task"]
