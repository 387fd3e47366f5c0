"""Rows for `mubench list` and `mubench data status`: plain dicts, printable or JSON."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mubench.methods import methods
from mubench.tasks.base import tasks

Row = dict[str, object]


def task_rows() -> list[Row]:
    """Unlearning tasks, then continual learn/unlearn stream tasks (whose scenarios are streams)."""
    from mubench.continual.task import continual_tasks

    rows = [{"task": name, "version": task.spec.version, "title": task.spec.title, "modality": task.spec.modality,
             "classes": task.spec.num_classes, "scenarios": len(task.spec.scenarios),
             "profiles": sorted(task.spec.profiles), "citation": task.spec.citation}
            for name, task in tasks.items()]
    rows += [{"task": name, "version": task.spec.version, "title": task.spec.title, "modality": "stream",
              "classes": task.spec.num_classes, "scenarios": len(task.spec.streams),
              "profiles": sorted(task.spec.profiles), "citation": task.spec.citation}
             for name, task in continual_tasks.items()]
    return rows


def scenario_rows() -> list[Row]:
    from mubench.continual.task import continual_tasks

    rows = [{"task": name, "scenario": s.name, "kind": s.kind, "domain": s.domain, "description": s.description}
            for name, task in tasks.items() for s in task.spec.scenarios]
    rows += [{"task": name, "scenario": s.name, "kind": "stream " + s.codes, "domain": "adaptability",
              "description": s.description}
             for name, task in continual_tasks.items() for s in task.spec.streams]
    return rows


def method_rows() -> list[Row]:
    """Each method with its data access and the tasks it applies to (Method.inapplicable), then
    the continual methods, which serve every stream task: their access is the current task's
    data only, or every retained task's data for methods that keep it (`keeps_data`)."""
    from mubench.continual.methods import continual_methods
    from mubench.continual.task import continual_tasks

    rows = [{"method": name, "kind": "unlearning", "access": cls.access.value, "targets": sorted(cls.targets),
             "tasks": [t for t, task in tasks.items() if cls.inapplicable(task.spec) is None],
             "version": cls.version, "intensity": cls.intensity, "defaults": cls.defaults(),
             "profile_defaults": {profile: ", ".join(f"{k}={v}" for k, v in values.items())
                                  for profile, values in cls.profile_defaults.items()}, "paper": cls.paper}
            for name, cls in methods.items()]
    rows += [{"method": name, "kind": "stream", "access": "stream: retained tasks' data" if cls.keeps_data else "stream: current task's data",
              "targets": ["class"], "tasks": list(continual_tasks.names()), "version": cls.version,
              "intensity": getattr(cls, "intensity", None), "defaults": cls.defaults(), "profile_defaults": {},
              "paper": cls.paper}
             for name, cls in continual_methods.items()]
    return rows


def not_applicable(task_names: list[str], method_names: list[str] | None = None) -> list[Row]:
    """(task, method, reason) for each registered method (or each of `method_names`) that does not
    apply to one of the tasks (Method.inapplicable): shown as "not applicable", never as a failure
    or a gap in the table."""
    names = method_names or methods.names()
    rows = []
    for task_name in task_names:
        if task_name not in tasks:
            continue
        spec = tasks.get(task_name).spec
        for name in names:
            if name in methods and (reason := methods.get(name).inapplicable(spec)) is not None:
                rows.append({"task": task_name, "method": name, "reason": reason})
    return rows


def every_task() -> dict[str, object]:
    """Every registered task by name: unlearning tasks, then continual stream tasks."""
    from mubench.continual.task import continual_tasks

    return {**dict(tasks.items()), **dict(continual_tasks.items())}


def any_task(name: str) -> object:
    """The unlearning or continual task `name`; an unknown name gets one "did you mean" over both."""
    from mubench.errors import UnknownNameError
    from mubench.registry import unknown_name_message

    every = every_task()
    if name not in every:
        raise UnknownNameError(unknown_name_message("task", name, sorted(every)))
    return every[name]


def data_status_rows() -> list[Row]:
    rows = []
    for name, task in every_task().items():
        files = task.data_files()
        status = task.data_status()
        state = "generated" if not files else ("found" if status.complete else "missing")
        rows.append({"task": name, "status": state, "found": status.found, "missing": status.missing})
    return rows


def print_rows(rows: list[Row], title: str, console: Console) -> None:
    if not rows:
        console.print(f"no {title}")
        return
    table = Table(title=title)
    for i, column in enumerate(rows[0]):
        table.add_column(column, no_wrap=i == 0)  # the name column: never broken across lines
    for row in rows:
        table.add_row(*[_cell(v) for v in row.values()])
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items()) or "–"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "–"
    return "–" if value is None else str(value)
