"""Deterministic, checksummed splits (mubench/harness/splits.py) and scenario kinds (mubench/tasks/scenarios.py)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.errors import SplitMismatchError, UnknownNameError
from mubench.harness.splits import PARTS, Split, load_or_make_split, make_split, read_split, split_path, write_split
from mubench.hashing import sha256_arrays
from mubench.tasks import Pool, TaskData, tasks
from mubench.tasks.scenarios import attribute_subgroup, random_instances, scenario_kinds, whole_class

HAS_REAL_MNIST = (REAL_MIRROR / "mnist").is_dir()
needs_real_mnist = pytest.mark.skipif(not HAS_REAL_MNIST, reason=f"{MIRROR_SKIP}mnist/ in {REAL_MIRROR}")

# Golden ids: a change in the partition or forget generators (or in the debug data) changes these.
GOLDEN_DEBUG_SMOKE_SEED0 = {
    "random_10": "420cf5aaba7c47a1d2494e82cfe9c629780e769e9f7844fed0663bff03a6cc7f",
    "class_0": "bddd3b8997f919161cc291d729e89ad802f072d29447180985a84d484416f203",
}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MUBENCH_HOME", str(home))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "empty-mirror"))
    return home


@pytest.fixture(scope="module")
def debug():
    task = tasks.get("debug")
    return task, task.load()


def check_invariants(split: Split, data: TaskData, scenario_kind: str, params: dict) -> None:
    for part in PARTS:
        values = getattr(split, part)
        assert values.ndim == 1 and np.issubdtype(values.dtype, np.integer), part
        assert np.all(np.diff(values) > 0), f"{part} is not sorted and unique"
    n_train, n_test = len(data.train), len(data.test)
    assert split.train.min() >= 0 and split.train.max() < n_train
    assert split.val.min() >= 0 and split.val.max() < n_train
    assert split.test.min() >= 0 and split.test.max() < n_test
    assert np.isin(split.forget, split.train).all()  # forget within train
    np.testing.assert_array_equal(split.retain, np.setdiff1d(split.train, split.forget))  # retain = train minus forget
    assert len(split.forget) + len(split.retain) == len(split.train)
    assert not np.intersect1d(split.train, split.val).size  # train and val are disjoint
    assert np.isin(split.heldout, split.val).all()  # heldout within val
    labels = data.train.y.numpy()
    if scenario_kind == "class":
        k = params["label"]
        assert set(labels[split.forget].tolist()) == {k}
        assert set(labels[split.heldout].tolist()) == {k}
        # the whole class, not part of it
        np.testing.assert_array_equal(split.forget, split.train[labels[split.train] == k])
        np.testing.assert_array_equal(split.heldout, split.val[labels[split.val] == k])
        assert not np.isin(split.retain, np.flatnonzero(labels == k)).any()
    if scenario_kind == "random":
        assert len(split.forget) == round(params["fraction"] * len(split.train))
        # a random draw's population is all of val: half of it are the attacks' non-members, the
        # other half stays unseen for Access.UNSEEN methods
        assert len(split.heldout) == len(split.val) // 2 and len(np.unique(split.heldout)) == len(split.heldout)


# ---- debug task (no files) ------------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["random_10", "class_0"])
def test_debug_split_invariants(debug, scenario):
    task, data = debug
    spec = task.spec.scenario(scenario)
    split = make_split(task, data, scenario, seed=0, profile="smoke")
    check_invariants(split, data, spec.kind, spec.params)
    assert len(split.val) == 200
    assert len(split.train) == 1200 - 200
    assert len(split.test) == 400  # test_size None: the whole test pool
    np.testing.assert_array_equal(split.test, np.arange(400))


def test_debug_random_10_has_100_samples(debug):
    task, data = debug
    split = make_split(task, data, "random_10", seed=0, profile="smoke")
    assert len(split.forget) == 100  # round(0.1 * 1000)
    assert len(split.retain) == 900
    assert len(split.heldout) == 100  # half of the 200 val samples; the other half is `unseen`


@pytest.mark.parametrize("scenario", sorted(GOLDEN_DEBUG_SMOKE_SEED0))
def test_debug_golden_split_ids(debug, scenario):
    task, data = debug
    split = make_split(task, data, scenario, seed=0, profile="smoke")
    assert split.id == GOLDEN_DEBUG_SMOKE_SEED0[scenario]
    assert split.id == sha256_arrays(split.arrays())


def test_split_ids_are_stable_across_processes(debug):
    task, data = debug
    here = {s: make_split(task, data, s, seed=0, profile="smoke").id for s in ("random_10", "class_0")}
    here["random_10/seed7"] = make_split(task, data, "random_10", seed=7, profile="smoke").id
    code = (
        "import json\n"
        "from mubench.tasks import tasks\n"
        "from mubench.harness.splits import make_split\n"
        "t = tasks.get('debug'); d = t.load()\n"
        "ids = {s: make_split(t, d, s, seed=0, profile='smoke').id for s in ('random_10', 'class_0')}\n"
        "ids['random_10/seed7'] = make_split(t, d, 'random_10', seed=7, profile='smoke').id\n"
        "print(json.dumps(ids))\n"
    )
    # a different hash seed in the child: the ids must not depend on Python's str hashing
    env = dict(os.environ, PYTHONHASHSEED="12345")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == here


def test_seeds_change_the_random_forget_set_but_not_the_partition(debug):
    task, data = debug
    splits = [make_split(task, data, "random_10", seed=s, profile="smoke") for s in (0, 1, 2)]
    forgets = {tuple(s.forget.tolist()) for s in splits}
    assert len(forgets) == 3
    assert len({s.id for s in splits}) == 3
    for other in splits[1:]:
        np.testing.assert_array_equal(other.train, splits[0].train)
        np.testing.assert_array_equal(other.val, splits[0].val)
        np.testing.assert_array_equal(other.test, splits[0].test)


def test_same_seed_same_split_and_class_scenario_ignores_the_seed(debug):
    task, data = debug
    a = make_split(task, data, "random_10", seed=3, profile="smoke")
    b = make_split(task, data, "random_10", seed=3, profile="smoke")
    assert a.id == b.id
    c0 = make_split(task, data, "class_0", seed=0, profile="smoke")
    c1 = make_split(task, data, "class_0", seed=1, profile="smoke")
    assert c0.id == c1.id  # a whole class has nothing random in it


def test_scenarios_share_the_partition(debug):
    task, data = debug
    r = make_split(task, data, "random_10", seed=0, profile="smoke")
    c = make_split(task, data, "class_0", seed=0, profile="smoke")
    np.testing.assert_array_equal(r.train, c.train)
    np.testing.assert_array_equal(r.val, c.val)


def test_profile_changes_the_partition(debug):
    task, data = debug
    smoke = make_split(task, data, "random_10", seed=0, profile="smoke")
    standard = make_split(task, data, "random_10", seed=0, profile="standard")
    assert len(standard.val) == len(smoke.val) == 200
    assert not np.array_equal(smoke.val, standard.val)


def test_unknown_scenario_gets_did_you_mean(debug):
    task, data = debug
    with pytest.raises(UnknownNameError, match="Did you mean 'random_10'"):
        make_split(task, data, "random_01", seed=0, profile="smoke")


def _tiny_data(train_labels, n_test=10):
    y = torch.as_tensor(train_labels, dtype=torch.int64)
    return TaskData(train=Pool(torch.zeros(len(y), 16), y),
                    test=Pool(torch.zeros(n_test, 16), torch.zeros(n_test, dtype=torch.int64)))


def test_val_size_leaving_no_training_data_is_refused(debug):
    task, _ = debug
    from mubench.errors import MubenchError

    with pytest.raises(MubenchError, match=r"val_size 200 leaves no training data \(the training pool holds 200 samples"):
        make_split(task, _tiny_data([0, 1] * 100), "random_10", seed=0, profile="smoke")


def test_empty_forget_set_is_refused(debug):
    task, _ = debug
    with pytest.raises(ValueError, match="forget set has 0 of 36"):
        make_split(task, _tiny_data([1, 2] * 118), "class_0", seed=0, profile="smoke")


# ---- storing and re-reading ----------------------------------------------------------------

def test_load_or_make_split_writes_then_rereads(debug, home, monkeypatch):
    task, data = debug
    split = load_or_make_split(task, data, "random_10", seed=0, profile="smoke")
    path = split_path("debug", "random_10", 0, "smoke", task.spec.version)
    assert path == home / "splits" / "debug" / f"v{task.spec.version}" / "smoke" / "random_10" / "seed0.npz"
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["seed0.npz", "seed0.npz.lock"]  # no temporary left behind
    stored = read_split(path)
    assert stored.id == split.id == GOLDEN_DEBUG_SMOKE_SEED0["random_10"]
    for part in PARTS:
        np.testing.assert_array_equal(getattr(stored, part), getattr(split, part))
    with np.load(path) as raw:
        assert str(raw["id"]) == split.id

    def no_write(*args, **kwargs):
        raise AssertionError("an existing split was rewritten")

    monkeypatch.setattr("mubench.harness.splits.write_split", no_write)
    again = load_or_make_split(task, data, "random_10", seed=0, profile="smoke")
    assert again.id == split.id


def test_a_version_bump_stores_new_splits_beside_the_old_ones(debug, home):
    """A bump redraws every split (the generators are seeded by the version); the old version's
    stored files neither block the new draw nor get overwritten."""
    task, data = debug
    old = load_or_make_split(task, data, "random_10", seed=0, profile="smoke")
    bumped = copy.copy(task)
    bumped.spec = task.spec.model_copy(update={"version": task.spec.version + ".1"})
    new = load_or_make_split(bumped, data, "random_10", seed=0, profile="smoke")
    assert new.id != old.id
    assert read_split(split_path("debug", "random_10", 0, "smoke", task.spec.version)).id == old.id
    assert read_split(split_path("debug", "random_10", 0, "smoke", bumped.spec.version)).id == new.id


def _tamper(path: Path, keep_id: bool) -> None:
    with np.load(path) as stored:
        arrays = {part: stored[part].copy() for part in PARTS}
        recorded = str(stored["id"])
    # swap one forget sample for a retained one: still a valid-looking split
    swapped_in, swapped_out = arrays["retain"][0], arrays["forget"][0]
    arrays["forget"] = np.sort(np.append(arrays["forget"][1:], swapped_in))
    arrays["retain"] = np.sort(np.append(arrays["retain"][1:], swapped_out))
    new_id = recorded if keep_id else sha256_arrays(arrays)
    np.savez(path, id=np.array(new_id), **arrays)


def test_tampered_indices_are_refused_naming_the_file(debug):
    task, data = debug
    load_or_make_split(task, data, "random_10", seed=0, profile="smoke")
    path = split_path("debug", "random_10", 0, "smoke", task.spec.version)
    _tamper(path, keep_id=True)
    with pytest.raises(SplitMismatchError) as info:
        load_or_make_split(task, data, "random_10", seed=0, profile="smoke")
    assert str(path) in str(info.value)
    assert "indices hash to" in str(info.value)


def test_tampered_indices_with_a_matching_id_still_differ_from_a_fresh_draw(debug):
    task, data = debug
    load_or_make_split(task, data, "random_10", seed=0, profile="smoke")
    path = split_path("debug", "random_10", 0, "smoke", task.spec.version)
    _tamper(path, keep_id=False)
    read_split(path)  # self-consistent now...
    with pytest.raises(SplitMismatchError) as info:  # ...but not what the generators draw
        load_or_make_split(task, data, "random_10", seed=0, profile="smoke")
    message = str(info.value)
    assert str(path) in message and "differs from the one drawn now" in message
    assert GOLDEN_DEBUG_SMOKE_SEED0["random_10"][:12] in message


@pytest.mark.parametrize("damage", ["truncate", "empty", "missing-part"])
def test_unreadable_split_file_is_refused_naming_the_file(debug, damage):
    task, data = debug
    split = load_or_make_split(task, data, "class_0", seed=0, profile="smoke")
    path = split_path("debug", "class_0", 0, "smoke", task.spec.version)
    if damage == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        arrays = split.arrays()
        del arrays["heldout"]
        np.savez(path, id=np.array(split.id), **arrays)
    with pytest.raises(SplitMismatchError) as info:
        load_or_make_split(task, data, "class_0", seed=0, profile="smoke")
    assert str(path) in str(info.value)


def test_write_split_round_trip(tmp_path, debug):
    task, data = debug
    split = make_split(task, data, "class_0", seed=0, profile="smoke")
    path = tmp_path / "deep" / "dir" / "s.npz"
    write_split(path, split)
    assert read_split(path).id == split.id


# ---- scenario kinds --------------------------------------------------------------------------

def test_scenario_kinds_registered():
    import mubench.tasks  # noqa: F401  (tasks may register kinds of their own, e.g. CelebA's identity)

    generic = {"class", "fgsm_poison", "one_group", "random", "stuck_sensor", "subgroup"}
    assert generic <= set(scenario_kinds.names())
    assert set(scenario_kinds.names()) - generic == {"celeba_identity"}
    assert scenario_kinds.get("random").population_defined is False
    assert scenario_kinds.get("class").population_defined is True


def test_random_instances_size_and_bounds():
    rng = np.random.default_rng(0)
    candidates = np.arange(100, 200)
    chosen = random_instances(np.zeros(200, int), {}, candidates, {"fraction": 0.25}, rng)
    assert len(chosen) == 25 and len(set(chosen.tolist())) == 25
    assert np.isin(chosen, candidates).all()
    # at least one, even where the fraction rounds to zero
    assert len(random_instances(np.zeros(10, int), {}, np.arange(10), {"fraction": 0.01}, rng)) == 1
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction must be in"):
            random_instances(np.zeros(10, int), {}, np.arange(10), {"fraction": bad}, rng)


def test_whole_class_and_subgroup_by_hand():
    labels = np.array([0, 1, 0, 2, 0, 1, 2, 0])
    colour = np.array([0, 0, 3, 2, 0, 1, 5, 0])
    candidates = np.array([0, 1, 2, 3, 4, 5, 6])  # index 7 is not a candidate
    rng = np.random.default_rng(0)
    assert whole_class(labels, {}, candidates, {"label": 0}, rng).tolist() == [0, 2, 4]
    aligned = {"bias_aligned": (colour == labels).astype(np.int64)}
    assert attribute_subgroup(labels, aligned, candidates, {"attribute": "bias_aligned", "value": 1}, rng).tolist() \
        == [0, 3, 4, 5]
    assert attribute_subgroup(labels, aligned, candidates,
                              {"attribute": "bias_aligned", "value": 1, "labels": [0]}, rng).tolist() == [0, 4]
    with pytest.raises(ValueError, match="no attribute 'colour'.*bias_aligned"):
        attribute_subgroup(labels, aligned, candidates, {"attribute": "colour", "value": 1}, rng)


# ---- cmnist smoke (real mirror) --------------------------------------------------------------

@pytest.fixture(scope="module")
def cmnist(tmp_path_factory):
    if not HAS_REAL_MNIST:
        pytest.skip(f"{MIRROR_SKIP}mnist/ in {REAL_MIRROR}")
    home = tmp_path_factory.mktemp("splits-cmnist-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUBENCH_HOME", str(home))
        mp.setenv("MUBENCH_OFFLINE", "1")
        mp.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
        task = tasks.get("cmnist")
        yield task, task.load()
    shutil.rmtree(home, ignore_errors=True)


@needs_real_mnist
@pytest.mark.parametrize("scenario", ["random_10", "random_1", "class_3", "bias_aligned"])
def test_cmnist_smoke_split_invariants(cmnist, scenario):
    task, data = cmnist
    spec = task.spec.scenario(scenario)
    split = make_split(task, data, scenario, seed=0, profile="smoke")
    check_invariants(split, data, spec.kind, spec.params)
    assert (len(split.train), len(split.val), len(split.test)) == (10_000, 1_000, 2_000)
    if scenario == "random_10":
        assert len(split.forget) == 1_000
    if scenario == "random_1":
        assert len(split.forget) == 100
    if scenario == "bias_aligned":
        labels = data.train.y.numpy()
        aligned = data.train.attributes["bias_aligned"].numpy()
        for part, pool in (("forget", split.train), ("heldout", split.val)):
            chosen = getattr(split, part)
            assert set(labels[chosen].tolist()) == {0} and aligned[chosen].all()
            np.testing.assert_array_equal(chosen, pool[(labels[pool] == 0) & (aligned[pool] == 1)])


@needs_real_mnist
def test_cmnist_seeds_share_val_and_test(cmnist):
    task, data = cmnist
    a = make_split(task, data, "random_10", seed=0, profile="smoke")
    b = make_split(task, data, "random_10", seed=1, profile="smoke")
    assert not np.array_equal(a.forget, b.forget)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    np.testing.assert_array_equal(a.test, b.test)


def test_drivers_drawing_the_same_new_split_at_once_agree_and_never_crash(tmp_path, monkeypatch):
    """Eight drawers of one new split at the same moment (threads: each takes the file lock as a
    process would): one writes it, the others read it; all get the same split, none fails."""
    import threading

    from mubench.harness.splits import load_or_make_split, split_path
    from mubench.tasks import tasks

    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    task = tasks.get("debug")
    data = task.load()
    barrier, ids, errors = threading.Barrier(8), [], []

    def draw() -> None:
        barrier.wait()
        try:
            ids.append(load_or_make_split(task, data, "class_0", 3, "smoke").id)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(ids)) == 1 and len(ids) == 8
    folder = split_path("debug", "class_0", 3, "smoke", task.spec.version).parent
    assert sorted(p.name for p in folder.iterdir()) == ["seed3.npz", "seed3.npz.lock"]  # no temporary left behind
