"""The Method base class: what an unlearning method looks like to its author.

A method is one small class: a declared data access, a hyper-parameter space (default and sweep
grid side by side, as in DomainBed), optionally the name of its "intensity" hyper-parameter (the
axis that trades forgetting for utility), and `unlearn`. Everything else (splits, models,
timing, metrics, storage) is the harness's job.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from mubench.access import Access
from mubench.errors import MubenchError
from mubench.hashing import sha256_file
from mubench.registry import Registry

if TYPE_CHECKING:
    from mubench.request import Request
    from mubench.tasks.spec import TaskSpec

HParamValue = int | float | str | bool


class HParams(Mapping[str, HParamValue]):
    """Resolved hyper-parameters, read as attributes (`hp.lr`) or as a mapping."""

    def __init__(self, values: Mapping[str, HParamValue]) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> HParamValue:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no hyper-parameter {name!r} (have: {', '.join(self._values)})") from None

    def __getitem__(self, key: str) -> HParamValue:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HParams({self._values})"


class Method(ABC):
    """Base class of every unlearning method (baselines and submissions alike)."""

    name: ClassVar[str] = ""
    access: ClassVar[Access] = Access.FORGET
    space: ClassVar[dict[str, tuple[HParamValue, list[HParamValue]]]] = {}
    intensity: ClassVar[str | None] = None
    version: ClassVar[str] = "1"
    paper: ClassVar[str] = ""
    # The authors' public code the implementation was read from and checked against, as
    # "owner/repository@commit path[, path]" (or where the code lives when it is not a git
    # repository); empty when no code was public. docs/methods.md's provenance table lists it, and
    # a method that names one has a one-step faithfulness test (tests/test_one_step_*.py).
    authors_code: ClassVar[str] = ""
    # The target kinds the method is defined for (mubench.targets): a method that relabels with
    # wrong classes has no meaning for regression, one that ascends the task's loss does.
    targets: ClassVar[frozenset[str]] = frozenset({"class", "regression"})
    # Whether `unlearn` runs under bf16 autocast where the task's recipe trains in bf16 (today the
    # standard profiles of cmnist and cifar10; Engine.hosting): forward passes at the speed the
    # original was trained at, weights and losses in float32. False keeps every operation in
    # float32, for methods whose core is a numerical solve (curvature, inverse-Hessian products)
    # that bfloat16's 8-bit mantissa would spoil.
    mixed_precision: ClassVar[bool] = True
    # Defaults that differ by profile: {profile: {name: value}} on top of `space`'s defaults. The
    # space's defaults suit the `smoke` profile (small models trained for a few epochs); where the
    # paper's own setting is longer or differently configured, `standard` (paper scale) restores it,
    # e.g. fine-tuning's 10 epochs (Fan et al. 2024) against smoke's 5. Sweeps, the harness and the
    # leaderboard's `default` selection all read the defaults of the run's profile.
    profile_defaults: ClassVar[dict[str, dict[str, HParamValue]]] = {}

    @abstractmethod
    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        """Return a model of the same architecture that has forgotten `request.forget`."""

    @classmethod
    def source_digest(cls) -> str:
        """sha256 of the file that defines the class: part of every run config's identity
        (RunConfig.method_digest), so a method whose code changed is rerun, never scored with
        the records of its old code, whether or not its `version` was bumped. Empty when the
        class has no source file (defined interactively)."""
        try:
            path = inspect.getsourcefile(cls)
        except TypeError:
            return ""
        return sha256_file(Path(path)) if path and Path(path).is_file() else ""

    @classmethod
    def inapplicable(cls, spec: TaskSpec) -> str | None:
        """Why the method cannot apply to a task, or None where it can. By default a task whose
        target kind the method is not defined for; a method that needs more (sensitive attributes,
        counterfactuals) says so by overriding this. Sweeps skip such pairs and leaderboards show
        them as not applicable, not as failures."""
        if spec.target not in cls.targets:
            return f"defined for {', '.join(sorted(cls.targets))} targets; {spec.name} is a {spec.target} task"
        return None

    @classmethod
    def check(cls, hp: HParams) -> None:
        """Refuse a setting before any work (raise MubenchError naming the hyper-parameter). The
        default accepts every setting; a method whose hyper-parameters constrain each other
        (epochs and a phase length, say) overrides it, so that the board's tuning draws only
        settings the method runs and every method gets the same budget of real runs."""

    @classmethod
    def defaults(cls, profile: str | None = None) -> dict[str, HParamValue]:
        """The space's defaults, with `profile_defaults[profile]` on top (None: the space's alone),
        each of the space default's type (an int written for a float default becomes a float)."""
        values = {name: default for name, (default, _) in cls.space.items()}
        for name, value in cls.profile_defaults.get(profile, {}).items() if profile is not None else ():
            values[name] = type(values[name])(value)
        return values

    @classmethod
    def resolve(cls, overrides: Mapping[str, Any] | None = None, profile: str | None = None) -> HParams:
        """The defaults of `profile` updated with `overrides`, each cast to its default's type;
        unknown names are errors."""
        return resolve_hparams(f"method {cls.name!r}", cls.name, cls.defaults(profile), overrides)


def resolve_hparams(what: str, name: str, defaults: dict[str, HParamValue],
                    overrides: Mapping[str, Any] | None) -> HParams:
    """`defaults` updated with `overrides`, each cast to its default's type; an unknown name is an
    error naming `what` (e.g. "method 'finetune'") and the valid names. Shared by every kind of method."""
    values = dict(defaults)
    for key, raw in (overrides or {}).items():
        if key not in values:
            raise MubenchError(f"{what} has no hyper-parameter {key!r} (it has: {', '.join(values) or 'none'})")
        values[key] = _cast(raw, type(values[key]), f"{name}.{key}")
    return HParams(values)


def parse_hparam_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`--hparam METHOD.NAME=VALUE` options as {method: {name: raw value}}; values are cast later."""
    parsed: dict[str, dict[str, str]] = {}
    for item in items:
        target, _, value = item.partition("=")
        method_name, _, key = target.partition(".")
        if not (method_name and key and value):
            raise MubenchError(f"--hparam {item!r}: expected METHOD.NAME=VALUE, e.g. finetune.lr=0.02")
        parsed.setdefault(method_name, {})[key] = value
    return parsed


def _cast(raw: Any, kind: type, where: str) -> HParamValue:
    try:
        if kind is bool and isinstance(raw, str):
            if raw.lower() not in {"true", "false", "1", "0"}:
                raise ValueError(raw)
            return raw.lower() in {"true", "1"}
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)  # int(2.5) would silently truncate to 2
        return kind(raw)
    except (TypeError, ValueError):
        raise MubenchError(f"hyper-parameter {where}: cannot read {raw!r} as {kind.__name__}") from None


methods: Registry[type[Method]] = Registry("method", entry_point_group="mubench.methods")


def _check_profile_defaults(name: str, cls: type[Method]) -> None:
    """Each profile default names a known profile and a hyper-parameter of the space, with a value
    of its default's type (a typo would otherwise become a silently ignored or crashing run)."""
    from mubench.profiles import profiles

    for profile, values in cls.profile_defaults.items():
        if profile not in profiles:
            raise ValueError(f"method {name}: profile_defaults names unknown profile {profile!r} "
                             f"(profiles: {', '.join(profiles.names())})")
        for key, value in values.items():
            if key not in cls.space:
                raise ValueError(f"method {name}: profile_defaults[{profile!r}] names {key!r}, not in its space")
            expected = type(cls.space[key][0])
            if type(value) is not expected and not (expected is float and type(value) is int):
                raise ValueError(f"method {name}: profile_defaults[{profile!r}][{key!r}] = {value!r} is not "
                                 f"a {expected.__name__} like the space's default")


METHOD_NAME = r"^[a-z][a-z0-9_]{0,63}$"  # a method's name: lower-case letters, digits, '_'


def class_problems(cls: object) -> list[str]:
    """Every static problem of a method class, read from its attributes alone (nothing is run,
    no registry consulted): the interface, name, access level, space, docstring and plain texts.
    `mubench submit` lists them all at once; the sandbox's jail reports them for a file the
    driver does not import (mubench.orchestration.jailed_method)."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        return [f"{cls!r} is not a subclass of mubench.methods.Method"]
    problems = []
    if inspect.isabstract(cls):
        problems.append(f"{cls.__name__} does not implement unlearn(model, request, hp)")
    name = cls.name
    if not name:
        problems.append(f"{cls.__name__} has no name: decorate it with @register_method(\"my_method\")")
    elif not isinstance(name, str) or not re.fullmatch(METHOD_NAME, name):
        problems.append(f"method name {name!r} must match {METHOD_NAME} (lower-case letters, digits, '_')")
    if not isinstance(cls.access, Access):
        problems.append(f"access must be a mubench.methods.Access (FORGET, RETAIN, UNSEEN or COUNTERFACTUAL), not {cls.access!r}")
    space = cls.space if isinstance(cls.space, dict) else {}
    if not isinstance(cls.space, dict):
        problems.append(f"space must be a dict of name: (default, [sweep values]), not {type(cls.space).__name__}")
    for key, entry in space.items():
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], list)):
            problems.append(f"space[{key!r}] must be (default, [sweep values])")
    if cls.intensity is not None and cls.intensity not in space:
        problems.append(f"intensity {cls.intensity!r} is not in its space ({', '.join(map(str, space)) or 'empty'})")
    if not (cls.__doc__ or "").strip():
        problems.append(f"{cls.__name__} has no docstring: say what it does and cite its paper")
    texts = {"docstring": cls.__doc__ or "", "version": str(cls.version), "paper": str(cls.paper),
             "authors": " ".join(map(str, getattr(cls, "authors", ())))}
    problems += [f"{what} contains '<' or '>': texts are plain text, HTML is refused"
                 for what, text in texts.items() if re.search("[<>]", text)]
    return problems


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: validate a Method subclass and register it under `name`."""

    def decorate(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"{cls!r} is not a subclass of mubench.methods.Method")
        if cls.intensity is not None and cls.intensity not in cls.space:
            raise ValueError(f"method {name}: intensity {cls.intensity!r} is not in its space")
        for key, entry in cls.space.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], list)):
                raise ValueError(f"method {name}: space[{key!r}] must be (default, [sweep values])")
        _check_profile_defaults(name, cls)
        if not cls.targets or not cls.targets <= {"class", "regression"}:
            raise ValueError(f"method {name}: targets must be a non-empty subset of {{'class', 'regression'}}")
        if not isinstance(cls.access, Access):
            raise ValueError(f"method {name}: access must be an mubench.methods.Access")
        cls.name = name
        methods.add(name, cls)
        return cls

    return decorate
