"""The generic registry (mubench/registry.py): helpful errors, duplicates, names, entry points."""

from __future__ import annotations

import types

import pytest

from mubench import registry as registry_module
from mubench.errors import DuplicateNameError, UnknownNameError
from mubench.registry import Registry, unknown_name_message


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


@pytest.fixture
def widgets():
    reg: Registry[object] = Registry("widget")
    for name in ("alpha", "beta", "gamma_ray"):
        reg.add(name, object())
    return reg


def test_lookup_and_listing(widgets):
    obj = object()
    widgets.add("delta", obj)
    assert widgets.get("delta") is obj
    assert widgets.names() == ["alpha", "beta", "delta", "gamma_ray"]
    assert [name for name, _ in widgets.items()] == widgets.names()
    assert "delta" in widgets and "epsilon" not in widgets
    assert len(widgets) == 4


def test_near_miss_gets_did_you_mean_and_the_valid_names(widgets):
    with pytest.raises(UnknownNameError) as info:
        widgets.get("alpah")
    message = str(info.value)
    assert message == "unknown widget 'alpah'. Did you mean 'alpha'? Valid widgets: alpha, beta, gamma_ray"
    assert isinstance(info.value, KeyError)  # a KeyError, but printed without KeyError's quotes


def test_far_miss_lists_the_valid_names_without_a_guess(widgets):
    with pytest.raises(UnknownNameError) as info:
        widgets.get("zzzzzz")
    message = str(info.value)
    assert "Did you mean" not in message
    assert message.endswith("Valid widgets: alpha, beta, gamma_ray")


def test_several_close_matches_are_all_offered():
    message = unknown_name_message("task", "cmnst", ["cmnist", "cmnist2", "debug"])
    assert "Did you mean 'cmnist' or 'cmnist2'?" in message
    assert message.endswith("Valid tasks: cmnist, cmnist2, debug")


def test_built_in_task_registry_near_miss():
    from mubench.tasks import tasks

    with pytest.raises(UnknownNameError, match="Did you mean 'cmnist'") as info:
        tasks.get("cmnst")
    assert "cmnist" in str(info.value) and "debug" in str(info.value)


def test_duplicate_registration_of_a_different_object_is_refused(widgets):
    original = widgets.get("alpha")
    with pytest.raises(DuplicateNameError, match="widget 'alpha' is already registered"):
        widgets.add("alpha", object())
    assert widgets.get("alpha") is original  # the first registration stands


def test_re_adding_the_same_object_is_allowed(widgets):
    obj = widgets.get("beta")
    widgets.add("beta", obj)
    assert widgets.get("beta") is obj
    assert len(widgets) == 3


def test_register_decorator_returns_the_object_and_refuses_duplicates(widgets):
    @widgets.register("made")
    def made():
        return 1

    assert widgets.get("made") is made and made() == 1
    with pytest.raises(DuplicateNameError):
        @widgets.register("made")
        def other():
            return 2


@pytest.mark.parametrize("name", ["", "has space", "-leading-dash", "/abs", ".hidden", "tab\t", "semi;colon", "ü"])
def test_invalid_names_are_rejected(widgets, name):
    with pytest.raises(ValueError, match="invalid widget name"):
        widgets.add(name, object())
    assert name not in widgets


@pytest.mark.parametrize("name", ["a", "_private", "with-dash", "org/method", "v1.2", "UPPER9"])
def test_valid_names_are_accepted(widgets, name):
    widgets.add(name, object())
    assert name in widgets


class _FakeEntryPoint:
    def __init__(self, name, obj, calls):
        self.name, self._obj, self._calls = name, obj, calls

    def load(self):
        self._calls.append(self.name)
        return self._obj


def test_entry_points_are_loaded_once_on_first_lookup(monkeypatch):
    calls: list[str] = []
    plugin_obj, module = object(), types.ModuleType("plugin_module")
    reg: Registry[object] = Registry("gadget", entry_point_group="mubench.test_gadgets")
    pre_registered = object()
    points = [_FakeEntryPoint("from_ep", plugin_obj, calls),
              _FakeEntryPoint("a_module", module, calls),  # a module registers on import; not itself added
              _FakeEntryPoint("dup_alias", pre_registered, calls)]  # already registered under another name

    def fake_entry_points(group):
        assert group == "mubench.test_gadgets"
        return points

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    reg.add("own", pre_registered)
    assert calls == []  # adding does not load plugins
    assert reg.get("from_ep") is plugin_obj
    assert reg.names() == ["from_ep", "own"]
    assert calls == ["from_ep", "a_module", "dup_alias"]
    reg.names()
    assert calls == ["from_ep", "a_module", "dup_alias"]  # not loaded twice


def test_unknown_name_loads_entry_points_before_failing(monkeypatch):
    reg: Registry[object] = Registry("gadget", entry_point_group="mubench.test_gadgets")
    monkeypatch.setattr(registry_module, "entry_points",
                        lambda group: [_FakeEntryPoint("plugged", object(), [])])
    with pytest.raises(UnknownNameError, match="Did you mean 'plugged'"):
        reg.get("pluged")
