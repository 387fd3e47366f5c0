"""CIFAR-10 (mubench/data/cifar10.py, mubench/tasks/cifar10.py): both sources in their real formats,
written small into tmp_path, the restricted unpickler, checksums, the patch bias, and the real mirror."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.data import cifar10 as data
from mubench.data.cifar10 import (
    CLASSES,
    IMAGE_FOLDER_SOURCE,
    OFFICIAL,
    OFFICIAL_SOURCE,
    ArrayUnpickler,
    Cifar10Source,
    locate_cifar10,
    unpickle,
)
from mubench.data.files import FileForm
from mubench.errors import CorruptDataError, MissingDataError
from mubench.harness.models import resnet18_cifar
from mubench.tasks.cifar10 import (
    MEAN,
    PATCH,
    PATCH_CLASS,
    PATCH_FRACTION,
    PATCH_SIZE,
    PATCH_SPEC,
    SPEC,
    STD,
    TEST_PATCH_FRACTION,
    Cifar10PatchTask,
    Cifar10Task,
    build_cifar10,
    build_cifar10_patch,
)
from mubench.tasks.scenarios import scenario_kinds

HAS_REAL_COPY = (REAL_MIRROR / "cifar10-jpeg" / "cifar10-jpeg.tar.gz").is_file()

PER_BATCH, N_TEST = 4, 10  # 20 training images (2 per class) and 10 test images (1 per class)


def _md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv("MUBENCH_MIRROR", str(mirror))
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    return mirror


@pytest.fixture
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"train_images": rng.integers(0, 256, (5 * PER_BATCH, 3, 32, 32), dtype=np.uint8),
            "train_labels": np.arange(5 * PER_BATCH) % 10,
            "test_images": rng.integers(0, 256, (N_TEST, 3, 32, 32), dtype=np.uint8),
            "test_labels": np.arange(N_TEST)[::-1] % 10}


def batch_files(images: dict[str, np.ndarray], protocol: int = 4) -> dict[str, bytes]:
    """The seven files of cifar-10-batches-py/ in the official dict layout: b"data" is (N, 3072)
    uint8, each row the R, G and B planes of 32x32 in row-major order; b"labels" a list of ints."""
    def batch(x: np.ndarray, y: np.ndarray, label: str) -> bytes:
        entry = {b"batch_label": label.encode(), b"labels": [int(v) for v in y], b"data": x.reshape(len(x), 3072),
                 b"filenames": [f"img_{i}.png".encode() for i in range(len(x))]}
        return pickle.dumps(entry, protocol=protocol)

    files = {f"data_batch_{i + 1}": batch(images["train_images"][i * PER_BATCH:(i + 1) * PER_BATCH],
                                          images["train_labels"][i * PER_BATCH:(i + 1) * PER_BATCH], f"training batch {i + 1} of 5")
             for i in range(5)}
    files["test_batch"] = batch(images["test_images"], images["test_labels"], "testing batch 1 of 1")
    files["batches.meta"] = pickle.dumps({b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072,
                                          b"label_names": [c.encode() for c in CLASSES]}, protocol=protocol)
    return files


def source_for(files: dict[str, bytes], archive_sha: str = "0" * 64, copy_sha: str = "0" * 64) -> Cifar10Source:
    """A source pinning these files, as OFFICIAL pins the real ones."""
    return Cifar10Source(folder="fakecifar", archive=FileForm("cifar-10-python.tar.gz", archive_sha),
                         batch_md5={name: _md5(raw) for name, raw in files.items()}, copy_folder="fakejpeg",
                         copy=FileForm("cifar10-jpeg.tar.gz", copy_sha), counts=(5 * PER_BATCH, N_TEST))


def write_folder(mirror: Path, files: dict[str, bytes]) -> Path:
    folder = mirror / "fakecifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return folder


def write_tar(path: Path, members: dict[str, bytes], links: set[str] = frozenset()) -> Path:
    """A .tar.gz of `members`; those named in `links` become symlinks to /etc/passwd instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            if name in links:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
                continue
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_members(images: dict[str, np.ndarray]) -> dict[str, bytes]:
    """train/<class>/<nnnn>.png and test/<class>/<nnnn>.png (lossless, so pixels compare exactly)."""
    members = {}
    for split in ("train", "test"):
        for i, (x, y) in enumerate(zip(images[f"{split}_images"], images[f"{split}_labels"])):
            members[f"{split}/{CLASSES[y]}/{i:04d}.png"] = png(x)
    return members


def assert_arrays(arrays: data.Cifar10Arrays, images: dict[str, np.ndarray]) -> None:
    for key, expected in images.items():
        np.testing.assert_array_equal(getattr(arrays, key), expected)
        assert getattr(arrays, key).dtype == (np.uint8 if "images" in key else np.int64)


# -- source 1: pickle batches -------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [4, 5])
def test_batches_folder_is_read_exactly(mirror, images, protocol):
    files = batch_files(images, protocol)
    write_folder(mirror, files)
    located = locate_cifar10(source_for(files))
    assert located.kind == OFFICIAL_SOURCE
    arrays = located.read()
    assert_arrays(arrays, images)
    row = pickle.loads(files["data_batch_2"])[b"data"][1]  # image 5: the second of batch 2
    assert arrays.train_images[5, 1, 3, 7] == row[1024 + 3 * 32 + 7]  # green plane, row 3, column 7


def python2_batch(data_bytes: bytes, rows: int, labels: list[int]) -> bytes:
    """A batch as CPython 2 pickled it (protocol 2, str keys as SHORT_BINSTRING, numpy.core path)."""
    head = b"\x80\x02}q\x00(U\x06labelsq\x01]q\x02(" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    array = (b"U\x04dataq\x03cnumpy.core.multiarray\n_reconstruct\nq\x04cnumpy\nndarray\nq\x05K\x00\x85U\x01b\x87Rq\x06"
             b"(K\x01M" + rows.to_bytes(2, "little") + b"M\x00\x0c\x86cnumpy\ndtype\nq\x07U\x02u1K\x00K\x01\x87Rq\x08"
             b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + len(data_bytes).to_bytes(4, "little")
             + data_bytes + b"tbu.")
    return head + array


def test_python2_pickle_of_the_official_files_is_read():
    x = np.random.default_rng(0).integers(0, 256, (2, 3072), dtype=np.uint8)
    entry = unpickle(python2_batch(x.tobytes(), 2, [3, 9]), "py2 batch")
    images, labels = data.parse_batch(entry, "py2 batch")
    np.testing.assert_array_equal(images, x.reshape(2, 3, 32, 32))
    assert labels.tolist() == [3, 9]


def test_archive_of_batches_is_read_when_no_folder(mirror, images):
    files = batch_files(images)
    archive = write_tar(mirror / "fakecifar" / "cifar-10-python.tar.gz",
                        {f"cifar-10-batches-py/{name}": raw for name, raw in files.items()})
    located = locate_cifar10(source_for(files, archive_sha=_sha(archive)))
    assert located.kind == OFFICIAL_SOURCE and located.path == archive
    assert_arrays(located.read(), images)


def test_archive_with_wrong_sha256_is_refused(mirror, images):
    files = batch_files(images)
    archive = write_tar(mirror / "fakecifar" / "cifar-10-python.tar.gz",
                        {f"cifar-10-batches-py/{name}": raw for name, raw in files.items()})
    with pytest.raises(CorruptDataError, match="sha256") as info:
        locate_cifar10(source_for(files, archive_sha="f" * 64))
    assert str(archive) in str(info.value)


def test_batch_with_wrong_md5_is_refused_before_unpickling(mirror, images, monkeypatch):
    files = batch_files(images)
    source = source_for(files)
    folder = write_folder(mirror, files)
    damaged = bytearray(files["data_batch_3"])
    damaged[-20] ^= 0xFF
    (folder / "data_batch_3").write_bytes(bytes(damaged))
    unpickled = []
    monkeypatch.setattr(data, "unpickle", lambda raw, where: unpickled.append(where) or data.ArrayUnpickler(
        io.BytesIO(raw), encoding="bytes").load())
    with pytest.raises(CorruptDataError, match="md5") as info:
        locate_cifar10(source).read()
    assert str(folder / "data_batch_3") in str(info.value)
    assert not any(where.endswith("data_batch_3") for where in unpickled)


class _Shell:
    def __reduce__(self):
        return os.system, ("touch hacked",)


def test_restricted_unpickler_refuses_os_system(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile = pickle.dumps({b"data": _Shell(), b"labels": []}, protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        ArrayUnpickler(io.BytesIO(hostile), encoding="bytes").load()
    for name in ("builtins eval", "numpy load", "numpy.lib.npyio load", "subprocess Popen"):
        module, attribute = name.split()
        with pytest.raises(pickle.UnpicklingError):
            ArrayUnpickler(io.BytesIO(b"")).find_class(module, attribute)
    assert not (tmp_path / "hacked").exists()


def test_hostile_batch_passing_its_md5_is_refused_naming_it(mirror, images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = batch_files(images)
    files["data_batch_1"] = pickle.dumps({b"data": _Shell(), b"labels": [0]}, protocol=4)
    folder = write_folder(mirror, files)
    with pytest.raises(CorruptDataError, match="os.system|posix.system") as info:
        locate_cifar10(source_for(files)).read()
    assert str(folder / "data_batch_1") in str(info.value)
    assert not (tmp_path / "hacked").exists()


@pytest.mark.parametrize("damage", ["garbage", "shape", "labels", "meta"])
def test_corrupt_batch_is_named(mirror, images, damage):
    files = batch_files(images)
    name = "batches.meta" if damage == "meta" else "test_batch"
    files[name] = {
        "garbage": b"\x80\x04not a pickle at all",
        "shape": pickle.dumps({b"data": np.zeros((N_TEST, 3000), np.uint8), b"labels": [0] * N_TEST}),
        "labels": pickle.dumps({b"data": np.zeros((N_TEST, 3072), np.uint8), b"labels": [12] * N_TEST}),
        "meta": pickle.dumps({b"label_names": [c.encode() for c in reversed(CLASSES)]}),
    }[damage]
    folder = write_folder(mirror, files)
    with pytest.raises(CorruptDataError) as info:
        locate_cifar10(source_for(files)).read()
    assert str(folder / name) in str(info.value)


# -- source 2: the image-folder copy ------------------------------------------------------------

def test_image_archive_is_read_in_label_order(mirror, images):
    archive = write_tar(mirror / "fakejpeg" / "cifar10-jpeg.tar.gz", image_members(images))
    before = sorted(p.relative_to(mirror) for p in mirror.rglob("*"))
    located = locate_cifar10(source_for(batch_files(images), copy_sha=_sha(archive)))
    assert located.kind == IMAGE_FOLDER_SOURCE == "image-folder copy (lossy JPEG, cifar10-jpeg.tar.gz)"
    arrays = located.read()
    order = {split: np.argsort(images[f"{split}_labels"], kind="stable") for split in ("train", "test")}
    np.testing.assert_array_equal(arrays.train_images, images["train_images"][order["train"]])
    np.testing.assert_array_equal(arrays.test_images, images["test_images"][order["test"]])
    assert arrays.train_labels.tolist() == sorted(images["train_labels"].tolist())
    assert sorted(p.relative_to(mirror) for p in mirror.rglob("*")) == before  # the mirror is never written


def test_official_batches_are_preferred_over_the_copy(mirror, images):
    files = batch_files(images)
    write_folder(mirror, files)
    archive = write_tar(mirror / "fakejpeg" / "cifar10-jpeg.tar.gz", image_members(images))
    assert locate_cifar10(source_for(files, copy_sha=_sha(archive))).kind == OFFICIAL_SOURCE


@pytest.mark.parametrize("damage", ["size", "missing_class", "not_an_image", "unsafe", "link", "deep"])
def test_bad_image_archive_is_named(mirror, images, damage):
    members = image_members(images)
    bad = {"size": "train/cat/0003.png", "missing_class": "test/ship/", "not_an_image": "test/dog/0004.png",
           "unsafe": "../evil.png", "link": "train/cat/0005.png", "deep": "train/cat/extra/0003.png"}[damage]
    if damage == "size":
        members[bad] = png(np.zeros((3, 32, 31), np.uint8))
    elif damage == "missing_class":
        members = {k: v for k, v in members.items() if not k.startswith(bad)}
    elif damage == "not_an_image":
        members[bad] = b"GIF89a broken"
    else:
        members[bad] = png(np.zeros((3, 32, 32), np.uint8))
    archive = write_tar(mirror / "fakejpeg" / "cifar10-jpeg.tar.gz", members, links={bad} if damage == "link" else set())
    with pytest.raises(CorruptDataError) as info:
        locate_cifar10(source_for(batch_files(images), copy_sha=_sha(archive))).read()
    message = str(info.value)
    assert str(archive) in message and bad.strip("/").lstrip("./") in message
    if damage == "size":
        assert "31x32" in message


def test_nothing_found_names_every_source(mirror, images):
    status = Cifar10Task(source_for(batch_files(images))).data_status()
    assert not status.complete and status.missing == ["cifar-10-python.tar.gz"] and status.found == {}
    with pytest.raises(MissingDataError) as info:
        locate_cifar10(source_for(batch_files(images)))
    message = str(info.value)
    assert "cifar-10-python.tar.gz" in message and "cifar-10-batches-py" in message
    assert "cifar10-jpeg.tar.gz" in message


# -- the patch bias -------------------------------------------------------------------------------

def _arrays(per_class_train: int = 40, per_class_test: int = 11) -> data.Cifar10Arrays:
    rng = np.random.default_rng(3)
    y_train = rng.permutation(np.repeat(np.arange(10), per_class_train))
    y_test = rng.permutation(np.repeat(np.arange(10), per_class_test))
    return data.Cifar10Arrays(rng.integers(0, 256, (len(y_train), 3, 32, 32), dtype=np.uint8), y_train,
                              rng.integers(0, 256, (len(y_test), 3, 32, 32), dtype=np.uint8), y_test)


def test_the_clean_task_keeps_every_image_as_it_is():
    arrays = _arrays()
    built = build_cifar10(arrays)
    for part in ("train", "test"):
        assert np.array_equal(getattr(built, part).x.numpy(), getattr(arrays, f"{part}_images"))
        assert np.array_equal(getattr(built, part).y.numpy(), getattr(arrays, f"{part}_labels"))
        assert getattr(built, part).attributes == {}


def test_patch_marks_exactly_the_declared_fraction_of_the_declared_class():
    arrays = _arrays()
    built = build_cifar10_patch(arrays)
    patched = built.train.attributes["patched"].numpy()
    labels = arrays.train_labels
    assert patched[labels == PATCH_CLASS].sum() == int(40 * PATCH_FRACTION)
    assert patched[labels != PATCH_CLASS].sum() == 0
    test_patched = built.test.attributes["patched"].numpy()
    for k in range(10):
        assert test_patched[arrays.test_labels == k].sum() == int(11 * TEST_PATCH_FRACTION)  # 5 of 11 per class
    conflicting = (test_patched == 1) & (arrays.test_labels != PATCH_CLASS)
    np.testing.assert_array_equal(built.test.attributes["bias_aligned"].numpy(), 1 - conflicting)
    assert built.train.attributes["bias_aligned"].min() == 1


def test_patch_changes_pixels_only_in_the_corner():
    arrays = _arrays()
    built = build_cifar10_patch(arrays)
    for part in ("train", "test"):
        before, after = getattr(arrays, f"{part}_images"), getattr(built, part).x.numpy()
        patched = getattr(built, part).attributes["patched"].numpy().astype(bool)
        changed = (before != after).any(axis=1)  # (N, 32, 32)
        assert not changed[~patched].any()  # unpatched images untouched
        assert not changed[:, :-PATCH_SIZE, :].any() and not changed[:, :, :-PATCH_SIZE].any()
        corner = after[patched][:, :, -PATCH_SIZE:, -PATCH_SIZE:]
        assert (corner == PATCH).all()
    assert PATCH.tolist()[0] == [255, 0, 255, 0] and PATCH.tolist()[1] == [0, 255, 0, 255]


def test_patch_choice_is_fixed_and_the_scenario_forgets_the_patched():
    arrays = _arrays()
    first, again = build_cifar10_patch(arrays), build_cifar10_patch(arrays)
    assert torch.equal(first.train.attributes["patched"], again.train.attributes["patched"])
    assert not torch.equal(first.test.attributes["patched"],
                           build_cifar10_patch(arrays, seed=1).test.attributes["patched"])
    scenario = PATCH_SPEC.scenario("patch_bias")
    candidates = np.arange(len(arrays.train_labels))
    forget = scenario_kinds.get(scenario.kind).forget(
        arrays.train_labels, {k: v.numpy() for k, v in first.train.attributes.items()}, candidates,
        scenario.params, np.random.default_rng(0))
    np.testing.assert_array_equal(forget, np.flatnonzero(first.train.attributes["patched"].numpy()))


# -- the task -------------------------------------------------------------------------------------

def test_task_loads_caches_and_says_its_source(mirror, images, monkeypatch):
    files = batch_files(images)
    archive = write_tar(mirror / "fakejpeg" / "cifar10-jpeg.tar.gz", image_members(images))
    task = Cifar10Task(source_for(files, copy_sha=_sha(archive)))
    status = task.data_status()
    assert status.complete and status.found == {"cifar10-jpeg.tar.gz": str(archive)}
    assert [f.name for f in task.data_files()] == ["cifar-10-python.tar.gz", "cifar10-jpeg.tar.gz"]
    loaded = task.load()
    assert task.data_source() == IMAGE_FOLDER_SOURCE
    assert tuple(loaded.train.x.shape) == (20, 3, 32, 32) and loaded.train.x.dtype == torch.uint8
    assert loaded.test.attributes == {} and SPEC.sensitive_attributes == ()
    patched = Cifar10PatchTask(task.source).load()  # the same arrays, its own cache entry, the patch pasted
    assert set(patched.test.attributes) == {"patched", "bias_aligned"} >= set(PATCH_SPEC.sensitive_attributes)
    assert torch.equal(patched.train.y, loaded.train.y) and not torch.equal(patched.train.x, loaded.train.x)
    monkeypatch.setattr(data, "read_image_archive", lambda *args: pytest.fail("the cache should answer"))
    again = Cifar10Task(task.source)
    assert torch.equal(again.load().train.x, loaded.train.x) and again.data_source() == IMAGE_FOLDER_SOURCE
    assert torch.equal(Cifar10PatchTask(task.source).load().train.x, patched.train.x)
    write_folder(mirror, files)  # the official batches appear: a separate cache, the official source
    official = Cifar10Task(task.source)
    assert official.data_status().found["cifar-10-batches-py/"].endswith("fakecifar/cifar-10-batches-py")
    assert [f.name for f in official.data_files()] == ["cifar-10-python.tar.gz"]  # what `data fetch` gets
    official.load()
    assert official.data_source() == OFFICIAL_SOURCE


def test_to_inputs_normalises_by_the_channel_statistics():
    task = Cifar10Task()
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    x[:, 0] = 255
    out = task.to_inputs(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor((1 - MEAN[0]) / STD[0]))
    assert torch.allclose(out[0, 2, 5, 5], torch.tensor(-MEAN[2] / STD[2]))
    assert x.max() == 255  # the stored tensor is untouched


def test_spec_scenarios_profiles_and_pins():
    assert [s.name for s in SPEC.scenarios] == ["random_1", "random_10", *[f"class_{k}" for k in range(10)], "fgsm_poison_5"]
    assert [s.name for s in PATCH_SPEC.scenarios] == ["patch_bias"]
    assert PATCH_SPEC.scenario("patch_bias").params == {"attribute": "patched", "value": 1, "labels": [PATCH_CLASS]}
    assert PATCH_SPEC.profiles == SPEC.profiles and PATCH_SPEC.sensitive_attributes == ("patched",)
    standard = SPEC.profile("standard")
    assert standard.model == "resnet18_cifar" and standard.recipe.augment == "crop_flip"
    assert (standard.recipe.optimizer, standard.recipe.momentum, standard.recipe.weight_decay,
            standard.recipe.schedule, standard.recipe.batch_size) == ("sgd", 0.9, 5e-4, "onecycle", 512)
    assert standard.recipe.precision == "bf16" and standard.recipe.nesterov
    assert SPEC.profile("smoke").model == "small_cnn"
    assert OFFICIAL.archive.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert OFFICIAL.batch_md5["test_batch"] == "40351d587109b95175f43aff81a1287e"  # torchvision's pin
    assert [s.name for s in SPEC.source] == ["cifar-10-python.tar.gz", "cifar10-jpeg.tar.gz"]


def test_resnet18_cifar_keeps_the_resolution():
    model = resnet18_cifar((3, 32, 32), 10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962  # the CIFAR ResNet-18 of kuangliu/pytorch-cifar
    model.eval()
    x = torch.randn(2, 3, 8, 8)  # small inputs keep the test fast; the network is fully convolutional
    with torch.no_grad():
        stem = model.relu(model.bn1(model.conv1(x)))
        assert stem.shape == (2, 64, 8, 8) and model.maxpool(stem).shape == (2, 64, 8, 8)
        assert model(x).shape == (2, 10) and torch.equal(model(x), model(x))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_REAL_COPY, reason=f"{MIRROR_SKIP}cifar10-jpeg/ in {REAL_MIRROR}")
@pytest.mark.slow
def test_real_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    task = Cifar10Task()
    loaded = task.load()
    assert "JPEG" in task.data_source()
    assert tuple(loaded.train.x.shape) == (50_000, 3, 32, 32) and tuple(loaded.test.x.shape) == (10_000, 3, 32, 32)
    assert torch.bincount(loaded.train.y).tolist() == [5_000] * 10
    assert torch.bincount(loaded.test.y).tolist() == [1_000] * 10
    patched = Cifar10PatchTask().load()
    assert int(patched.train.attributes["patched"].sum()) == 2_500
    assert int(patched.test.attributes["patched"].sum()) == 5_000
    mean = loaded.train.x.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(MEAN), atol=0.01)  # lossy, but close to the official statistics


def test_the_counterfactual_toggles_the_patch_on_model_ready_inputs():
    """FMD's counterfactual on CIFAR-10 (fair/counterfactual_bias and fmd's pairs): a clean image
    gets exactly the pasted patch's normalised pixels; a patched one loses the patch, its corner
    filled with the border mean; nothing outside the corner changes."""
    from mubench.tasks.cifar10 import PATCH_SIZE, paste_patch

    task = Cifar10PatchTask()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)
    clean = task.to_inputs(torch.from_numpy(images))
    with_patch = task.to_inputs(torch.from_numpy(paste_patch(images, np.array([1, 1]))))
    flags = {"patched": torch.tensor([0, 1])}
    out = task.counterfactual(torch.stack([clean[0], with_patch[1]]), flags, torch.Generator())
    assert torch.allclose(out[0], with_patch[0], atol=1e-6)  # the patch pasted, as paste_patch does
    k = PATCH_SIZE
    corner = out[1][:, -k:, -k:]
    border = torch.cat([with_patch[1][:, -k - 1, -k - 1:], with_patch[1][:, -k:, -k - 1]], dim=1).mean(dim=1)
    assert torch.allclose(corner, border[:, None, None].expand(-1, k, k))
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[-k:, -k:] = False
    assert torch.equal(out[1][:, outside], with_patch[1][:, outside])
