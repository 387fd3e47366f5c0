"""The method author's API: hyper-parameter resolution, registration checks, and the Request
(declared data access, seeded paired batches)."""

from __future__ import annotations

import uuid

import pytest
import torch
from torch import nn

from mubench.errors import AccessError, DuplicateNameError, MubenchError
from mubench.methods import Access, HParams, Method, methods, register_method
from mubench.request import Request, Subset


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish afterwards (the method registry is global)."""
    methods.names()  # load entry points first, so they are in the copy and stay loaded after
    monkeypatch.setattr(methods, "_items", dict(methods._items))
    return methods


def unique_name(prefix: str = "test-api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Sample(Method):
    name = "sample"
    space = {
        "lr": (0.1, [0.1, 0.01]),
        "epochs": (2, [1, 2, 3]),
        "nesterov": (False, [False, True]),
        "optimizer": ("sgd", ["sgd", "adam"]),
    }

    def unlearn(self, model, request, hp):
        return model


class Empty(Method):
    name = "empty"

    def unlearn(self, model, request, hp):
        return model


# ---- Method.resolve ---------------------------------------------------------------------------

def test_resolve_defaults():
    hp = Sample.resolve()
    assert isinstance(hp, HParams)
    assert dict(hp) == {"lr": 0.1, "epochs": 2, "nesterov": False, "optimizer": "sgd"}
    assert hp.lr == 0.1 and hp["epochs"] == 2 and len(hp) == 4
    with pytest.raises(AttributeError, match="lr"):
        hp.momentum  # noqa: B018
    assert dict(Empty.resolve()) == {}


@pytest.mark.parametrize("key, raw, expected", [
    ("lr", "0.5", 0.5),
    ("lr", 1, 1.0),
    ("lr", "1e-3", 1e-3),
    ("epochs", "3", 3),
    ("epochs", 3.0, 3),
    ("epochs", 5, 5),
    ("optimizer", "adam", "adam"),
    ("optimizer", 5, "5"),
    ("nesterov", True, True),
])
def test_resolve_casts_to_the_defaults_type(key, raw, expected):
    hp = Sample.resolve({key: raw})
    assert hp[key] == expected
    assert type(hp[key]) is type(Sample.space[key][0])
    others = {k: v for k, v in hp.items() if k != key}
    assert others == {k: v for k, v in Sample.defaults().items() if k != key}


@pytest.mark.parametrize("raw, expected", [
    ("true", True), ("True", True), ("TRUE", True), ("1", True),
    ("false", False), ("False", False), ("0", False),
])
def test_resolve_reads_booleans_from_strings(raw, expected):
    assert Sample.resolve({"nesterov": raw}).nesterov is expected


@pytest.mark.parametrize("key, raw", [
    ("nesterov", "yes"), ("nesterov", "maybe"), ("nesterov", ""),
    ("epochs", "two"), ("epochs", "2.5"), ("epochs", 2.5),
    ("lr", "fast"), ("lr", None),
])
def test_resolve_rejects_unreadable_values(key, raw):
    with pytest.raises(MubenchError) as info:
        Sample.resolve({key: raw})
    message = str(info.value)
    assert f"sample.{key}" in message and repr(raw) in message


def test_resolve_rejects_unknown_names_listing_valid_ones():
    with pytest.raises(MubenchError) as info:
        Sample.resolve({"learning_rate": 0.1})
    message = str(info.value)
    assert "learning_rate" in message
    for valid in ("lr", "epochs", "nesterov", "optimizer"):
        assert valid in message
    with pytest.raises(MubenchError, match="none"):
        Empty.resolve({"lr": 0.1})


def test_resolve_does_not_change_the_space():
    before = {k: (v[0], list(v[1])) for k, v in Sample.space.items()}
    Sample.resolve({"lr": "0.3", "epochs": 9})
    assert Sample.space == before
    assert Sample.resolve().lr == 0.1


class PerProfile(Method):
    name = "per_profile"
    space = {"lr": (0.1, [0.1, 0.01]), "epochs": (2, [1, 2, 3])}
    profile_defaults = {"standard": {"epochs": 10, "lr": 1}}

    def unlearn(self, model, request, hp):
        return model


def test_profile_defaults_apply_in_their_profile_only():
    assert PerProfile.defaults() == PerProfile.defaults("smoke") == {"lr": 0.1, "epochs": 2}
    assert PerProfile.defaults("standard") == {"lr": 1.0, "epochs": 10}
    assert dict(PerProfile.resolve(profile="standard")) == {"lr": 1.0, "epochs": 10}
    assert isinstance(PerProfile.resolve(profile="standard").lr, float)  # cast to the space's type
    assert dict(PerProfile.resolve({"epochs": 4}, "standard")) == {"lr": 1.0, "epochs": 4}  # overrides win
    assert dict(PerProfile.resolve({"epochs": 4})) == {"lr": 0.1, "epochs": 4}
    assert PerProfile.space["epochs"][0] == 2  # the space itself is untouched


@pytest.mark.parametrize("profile_defaults, words", [
    ({"paper": {"epochs": 10}}, "unknown profile 'paper'"),
    ({"standard": {"epoch": 10}}, "'epoch', not in its space"),
    ({"standard": {"epochs": "10"}}, "'10' is not a int"),
    ({"standard": {"epochs": 2.5}}, "2.5 is not a int"),
], ids=["profile", "name", "str-for-int", "float-for-int"])
def test_register_rejects_bad_profile_defaults(scratch_registry, profile_defaults, words):
    name = unique_name()
    bad = type("BadProfileDefaults", (PerProfile,), {"profile_defaults": profile_defaults})
    with pytest.raises(ValueError, match=words):
        register_method(name)(bad)
    assert name not in scratch_registry


def test_every_baseline_profile_default_is_a_smoke_default_changed():
    """A profile default equal to the space's default would be dead text; each one must change it."""
    for name, cls in methods.items():
        for profile, values in cls.profile_defaults.items():
            base = cls.defaults()
            assert any(base[key] != value for key, value in values.items()), (name, profile)


# ---- register_method --------------------------------------------------------------------------

def test_register_valid_method(scratch_registry):
    name = unique_name()

    @register_method(name)
    class Good(Method):
        access = Access.RETAIN
        space = {"lr": (0.1, [0.1, 0.2])}
        intensity = "lr"

        def unlearn(self, model, request, hp):
            return model

    assert scratch_registry.get(name) is Good
    assert Good.name == name
    assert name in scratch_registry.names()

    class Other(Good):
        pass

    with pytest.raises(DuplicateNameError):
        register_method(name)(Other)
    assert scratch_registry.get(name) is Good


def test_scratch_registry_leaves_no_trace():
    assert not any(n.startswith("test-api-") for n in methods.names())


@pytest.mark.parametrize("thing", [object, dict, lambda: None, nn.Linear, "finetune"],
                         ids=["object", "dict", "function", "module", "string"])
def test_register_rejects_non_method_classes(scratch_registry, thing):
    name = unique_name()
    with pytest.raises(TypeError, match="not a subclass"):
        register_method(name)(thing)
    assert name not in scratch_registry


def test_register_rejects_intensity_not_in_space(scratch_registry):
    name = unique_name()

    class BadIntensity(Method):
        space = {"lr": (0.1, [0.1, 0.2])}
        intensity = "alpha"

        def unlearn(self, model, request, hp):
            return model

    with pytest.raises(ValueError, match="alpha"):
        register_method(name)(BadIntensity)
    assert name not in scratch_registry


@pytest.mark.parametrize("entry", [
    0.1,
    [0.1, [0.1, 0.2]],
    (0.1,),
    (0.1, [0.1], "extra"),
    (0.1, (0.1, 0.2)),
    (0.1, 0.2),
    (0.1, {0.1, 0.2}),
], ids=["bare", "list", "1-tuple", "3-tuple", "tuple-grid", "scalar-grid", "set-grid"])
def test_register_rejects_malformed_space_entries(scratch_registry, entry):
    name = unique_name()

    class BadSpace(Method):
        space = {"lr": entry}

        def unlearn(self, model, request, hp):
            return model

    with pytest.raises(ValueError, match="lr"):
        register_method(name)(BadSpace)
    assert name not in scratch_registry


def test_register_rejects_access_that_is_not_an_access(scratch_registry):
    name = unique_name()

    class BadAccess(Method):
        access = "forget"

        def unlearn(self, model, request, hp):
            return model

    with pytest.raises(ValueError, match="access"):
        register_method(name)(BadAccess)
    assert name not in scratch_registry


# ---- Request: declared access -----------------------------------------------------------------

def numbered(n: int, offset: int = 0) -> Subset:
    """Samples whose input and label carry their index, so batches can be traced back."""
    ids = torch.arange(offset, offset + n)
    return Subset(torch.stack([ids.float(), -ids.float()], dim=1), ids)


def make_request(access=Access.RETAIN, retain=10, forget=3, seed=0, **kwargs) -> Request:
    subsets = {"forget": numbered(forget, offset=1000)}
    if access is Access.RETAIN:
        subsets["retain"] = numbered(retain)
    return Request(subsets, access, num_classes=2, device=torch.device("cpu"), seed=seed, **kwargs)


def test_access_subsets():
    assert Access.FORGET.subsets == {"forget"}
    assert Access.RETAIN.subsets == {"forget", "retain"}


def test_forget_request_refuses_retain_data_at_construction():
    with pytest.raises(AccessError, match="retain"):
        Request({"forget": numbered(3), "retain": numbered(5)}, Access.FORGET, 2, torch.device("cpu"), seed=0)
    with pytest.raises(AccessError, match="test"):
        Request({"forget": numbered(3), "test": numbered(5)}, Access.RETAIN, 2, torch.device("cpu"), seed=0)


def test_forget_request_has_no_retain():
    request = make_request(Access.FORGET)
    assert request.available() == ["forget"]
    assert len(request.forget) == 3
    with pytest.raises(AccessError, match="retain"):
        request.retain  # noqa: B018
    with pytest.raises(AccessError):
        request.subset("heldout")
    with pytest.raises(AccessError):
        list(request.batches("retain", "forget", batch_size=2))
    with pytest.raises(AccessError):
        request.train_from_scratch("retain")


def test_retain_request_hands_both():
    request = make_request(Access.RETAIN)
    assert request.available() == ["forget", "retain"]
    assert torch.equal(request.retain.y, torch.arange(10))
    assert torch.equal(request.forget.y, torch.arange(1000, 1003))


def test_train_from_scratch_uses_the_trainer():
    seen = []
    model = nn.Linear(2, 2)
    request = make_request(Access.RETAIN, trainer=lambda subset: seen.append(subset) or model)
    assert request.train_from_scratch() is model
    assert seen == [request.retain]
    with pytest.raises(AccessError, match="trainer"):
        make_request(Access.RETAIN).train_from_scratch()


# ---- Request.batches --------------------------------------------------------------------------

@pytest.mark.parametrize("retain, forget, batch_size, epochs", [
    (10, 3, 4, 2),   # the brief's case: forget smaller than a batch
    (10, 6, 4, 2),   # forget spans two batches, cycled
    (12, 5, 4, 3),   # retain divides evenly
    (7, 7, 3, 1),
])
def test_batches_cover_retain_once_per_epoch_and_cycle_forget(retain, forget, batch_size, epochs):
    request = make_request(retain=retain, forget=forget)
    pairs = list(request.batches("retain", "forget", batch_size=batch_size, epochs=epochs))
    per_epoch = -(-retain // batch_size)
    assert len(pairs) == per_epoch * epochs
    forget_stream = []
    for epoch in range(epochs):
        epoch_pairs = pairs[epoch * per_epoch:(epoch + 1) * per_epoch]
        seen = torch.cat([xr_yr[1] for xr_yr, _ in epoch_pairs])
        assert sorted(seen.tolist()) == list(range(retain))  # every retain sample exactly once
        assert [len(y) for (_, y), _ in epoch_pairs] == [batch_size] * (retain // batch_size) + (
            [retain % batch_size] if retain % batch_size else [])
    for (xr, yr), (xf, yf) in pairs:
        assert torch.equal(xr[:, 0].long(), yr) and torch.equal(xf[:, 0].long(), yf)  # x and y stay paired
        assert 0 < len(yf) <= min(batch_size, forget)
        forget_stream += yf.tolist()
    # the forget set is cycled: each pass over it is a permutation of all its samples
    full = len(forget_stream) - len(forget_stream) % forget
    for start in range(0, full, forget):
        assert sorted(forget_stream[start:start + forget]) == list(range(1000, 1000 + forget))


def test_batches_same_seed_same_batches_other_seed_other_batches():
    def run(seed):
        request = make_request(retain=10, forget=3, seed=seed)
        return [(yr.tolist(), yf.tolist()) for (_, yr), (_, yf) in
                request.batches("retain", "forget", batch_size=4, epochs=2)]

    assert run(5) == run(5)
    assert run(5) != run(6)
    order = run(5)
    first_epoch = sum((yr for yr, _ in order[:3]), [])
    second_epoch = sum((yr for yr, _ in order[3:]), [])
    assert first_epoch != second_epoch  # reshuffled every epoch


def test_batches_take_one_size_per_subset():
    """NegGrad+'s notebook pairs retain batches of 32 with forget batches of 64: with a size per
    subset, the first sets the epoch's batches and the others cycle at their own size."""
    request = make_request(retain=10, forget=7, seed=0)
    pairs = list(request.batches("retain", "forget", batch_size=(4, 3), epochs=1))
    assert [len(yr) for (_, yr), _ in pairs] == [4, 4, 2]
    assert [len(yf) for _, (_, yf) in pairs] == [3, 3, 1]  # 7 = 3 + 3 + 1, then reshuffled
    for bad in [(4,), (4, 3, 2), (4, 0)]:
        with pytest.raises(MubenchError, match="one per subset"):
            list(request.batches("retain", "forget", batch_size=bad))


def test_single_subset_batches_are_one_tuples():
    request = make_request(Access.FORGET, forget=5)
    batches = list(request.batches("forget", batch_size=2, epochs=3))
    assert len(batches) == 9
    assert all(len(b) == 1 for b in batches)
    for epoch in range(3):
        ys = torch.cat([b[0][1] for b in batches[epoch * 3:(epoch + 1) * 3]])
        assert sorted(ys.tolist()) == list(range(1000, 1005))


def test_request_generators_are_seeded():
    a, b = make_request(seed=3), make_request(seed=3)
    assert torch.equal(torch.rand(4, generator=a.generator), torch.rand(4, generator=b.generator))
    assert a.rng.integers(0, 1 << 30) == b.rng.integers(0, 1 << 30)


def test_forgets_whole_classes_reads_the_labels_of_both_sets():
    whole = make_request(retain=10, forget=3)  # retain labels 0..9, forget labels 1000..1002
    assert whole.forgets_whole_classes()
    shared = Request({"forget": Subset(torch.zeros(2, 1), torch.tensor([1, 2])),
                      "retain": Subset(torch.zeros(3, 1), torch.tensor([0, 2, 3]))},
                     Access.RETAIN, 4, torch.device("cpu"), seed=0)
    assert not shared.forgets_whole_classes()  # label 2 is on both sides
    with pytest.raises(AccessError):
        make_request(Access.FORGET, forget=3).forgets_whole_classes()  # needs the retain set
