"""The one index build job, for both branches: build, add, the atomic switch, the
previous folder kept until the next build, interrupted builds resumed, refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from seislens.index import builder
from seislens.index.builder import ITEMS, BuildConfig, build
from seislens.index.bundle import BundleError, read_manifest, write_manifest
from seislens.index.event_items import EventItemOptions
from seislens.index.library import LoadedLibrary
from seislens.models.branches import BRANCHES, EVENTS, VELOCITY
from seislens.models.contract import EVENT_CLASSES
from seislens.models.embedders import VelocityEmbedder
from seislens.models.manifest import Manifest


def _index_folders(bundle, branch):
    return sorted(p.name for p in (bundle / "index").glob(f"{branch.index_name}-*"))


def test_every_registry_branch_has_its_items():
    assert set(ITEMS) == set(BRANCHES)
    for name, items in ITEMS.items():
        assert items.arrays and items.unit and items.options_type(), name


def test_event_build_records_its_entry(event_bundle, events):
    entry = build(event_bundle, EVENTS, [events], progress=False)
    manifest = read_manifest(event_bundle)
    assert manifest.indexes["events"] == entry
    assert entry.branch == "events" and entry.encoder == "spectrum" and entry.count == 32
    assert entry.encoder_sha256 == manifest.events.encoders["spectrum"].sha256
    extra = entry.model_extra
    assert extra["per_class"] == dict.fromkeys(EVENT_CLASSES, 8) and extra["refused"] == 0
    assert extra["window"] == "catalog" and extra["preprocessing"] == manifest.events.preprocessing
    assert extra["sources"] == [{"folder": str(events), "split": "train", "traces": 32}]
    assert entry.path.startswith("index/events-") and (event_bundle / entry.path).is_dir()
    Manifest.model_validate_json(manifest.to_json())  # the manifest stays valid JSON


def test_velocity_add_appends_without_reembedding(velocity_bundle, tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    models = np.full((3, 70, 70), 2500.0, np.float32)
    models[:, 40:] = 3500.0
    np.save(extra / "models.npy", models)
    calls = []
    real = VelocityEmbedder.embed_velocity_models
    monkeypatch.setattr(
        VelocityEmbedder,
        "embed_velocity_models",
        lambda self, m: calls.append(len(m)) or real(self, m),
    )
    before = read_manifest(velocity_bundle).indexes["velocity"]
    entry = build(velocity_bundle, VELOCITY, [extra], BuildConfig(add=True), progress=False)
    assert entry.count == 27 and calls == [3]  # only the new models were embedded
    assert entry.model_extra["sources"][0] == str(extra)
    lib = LoadedLibrary.open(velocity_bundle, read_manifest(velocity_bundle), VELOCITY)
    try:
        assert lib.records([26])[0].family == "extra"
        assert np.allclose(lib.array("models")[25], models[1], atol=2)
        assert lib.records([0])[0] is not None  # the previous items are kept
    finally:
        lib.close()
    # the previous index stays (a running service may hold it) until the next build
    assert _index_folders(velocity_bundle, VELOCITY) == sorted(
        [before.path.split("/")[1], entry.path.split("/")[1]]
    )


def test_event_add_then_rebuilds_keep_only_the_previous_folder(event_bundle, events):
    first = build(event_bundle, EVENTS, [events], progress=False)
    dev = BuildConfig(add=True, options=EventItemOptions(split="dev"))
    added = build(event_bundle, EVENTS, [events], dev, progress=False)
    assert added.count == 32 + 4
    assert [s["split"] for s in added.model_extra["sources"]] == ["dev", "train"]
    assert (event_bundle / first.path).exists()  # the previous one, kept
    lib = LoadedLibrary.open(event_bundle, read_manifest(event_bundle), EVENTS)
    assert {r.metadata["split"] for r in lib.records(np.arange(36))} == {"train", "dev"}
    lib.close()
    every = BuildConfig(options=EventItemOptions(split=None))
    rebuilt = build(event_bundle, EVENTS, [events], every, progress=False)
    assert rebuilt.count == 40
    assert not (event_bundle / first.path).exists()  # older than the previous: pruned
    assert (event_bundle / added.path).exists() and (event_bundle / rebuilt.path).exists()
    assert not list((event_bundle / "index").glob(".work-*"))


def test_builds_of_one_branch_leave_the_others_index(tiny_event_bundle, tmp_path):
    bundle = tmp_path / "both"
    shutil.copytree(tiny_event_bundle.bundle, bundle)
    events_before = read_manifest(bundle).indexes["events"]
    lib_paths = read_manifest(bundle).indexes["velocity"].path
    entry = build(bundle, EVENTS, [tiny_event_bundle.events], progress=False)
    after = read_manifest(bundle)
    assert after.indexes["velocity"].path == lib_paths
    assert after.indexes["events"] == entry != events_before
    assert (bundle / events_before.path).exists() and (bundle / lib_paths).exists()


@pytest.mark.parametrize("branch", [VELOCITY, EVENTS], ids=lambda b: b.name)
def test_interrupted_build_keeps_the_old_index_and_resumes(
    branch, velocity_bundle, event_bundle, events, tiny_velocity_data, monkeypatch
):
    bundle, library = (
        (velocity_bundle, tiny_velocity_data) if branch is VELOCITY else (event_bundle, events)
    )
    if branch is EVENTS:
        build(bundle, EVENTS, [events], BuildConfig(options=EventItemOptions("dev")), False)
    old = read_manifest(bundle).indexes[branch.index_name]
    real = builder._assemble

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(builder, "_assemble", boom)
    config = BuildConfig(part_size=10)
    with pytest.raises(KeyboardInterrupt):
        build(bundle, branch, [library], config, progress=False)
    assert read_manifest(bundle).indexes[branch.index_name] == old  # still the old one
    LoadedLibrary.open(bundle, read_manifest(bundle), branch).close()
    [work] = list((bundle / "index").glob(".work-*"))
    assert len(list(work.glob("part-*.npz"))) >= 3
    monkeypatch.setattr(builder, "_assemble", real)
    entry = build(bundle, branch, [library], config, progress=False)
    assert entry.path != old.path and entry.count in (24, 32) and not work.exists()


_real_switch = builder._switch


def test_resume_reuses_parts_and_no_resume_embeds_again(
    velocity_bundle, tiny_velocity_data, monkeypatch
):
    calls = []

    class Counting(type(ITEMS["velocity"])):
        def embed(self, *args):
            calls.append(1)
            return super().embed(*args)

    monkeypatch.setitem(ITEMS, "velocity", Counting())
    real = builder._assemble
    config = BuildConfig(part_size=6)
    monkeypatch.setattr(builder, "_assemble", _interrupted)
    with pytest.raises(RuntimeError, match="interrupted"):
        build(velocity_bundle, VELOCITY, [tiny_velocity_data], config, progress=False)
    assert len(calls) == 4
    monkeypatch.setattr(builder, "_assemble", real)
    monkeypatch.setattr(builder, "_switch", _interrupted)
    with pytest.raises(RuntimeError, match="interrupted"):
        build(velocity_bundle, VELOCITY, [tiny_velocity_data], config, progress=False)
    assert len(calls) == 4  # every part was reused
    monkeypatch.setattr(builder, "_switch", _real_switch)
    build(velocity_bundle, VELOCITY, [tiny_velocity_data], config, progress=False, resume=False)
    assert len(calls) == 8  # embedded again


def _interrupted(*args, **kwargs):
    raise RuntimeError("interrupted")


def test_add_closes_the_library_it_opens(velocity_bundle, tiny_velocity_data, monkeypatch):
    closed = []
    real_close = LoadedLibrary.close
    monkeypatch.setattr(LoadedLibrary, "close", lambda self: closed.append(1) or real_close(self))
    build(velocity_bundle, VELOCITY, [tiny_velocity_data], BuildConfig(add=True), progress=False)
    assert closed == [1]
    monkeypatch.setattr(builder, "_assemble", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build(velocity_bundle, VELOCITY, [tiny_velocity_data], BuildConfig(add=True), False)
    assert closed == [1, 1]
    folders = [velocity_bundle / "index" / p for p in _index_folders(velocity_bundle, VELOCITY)]
    assert all((f / "vectors.faiss").exists() for f in folders)  # no half-written folder


def test_bad_requests_refused(velocity_bundle, event_bundle, events, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "models.npy", np.zeros((2, 50, 50), np.float32))
    with pytest.raises(BundleError, match="expected velocity models"):
        build(velocity_bundle, VELOCITY, [bad], progress=False)
    with pytest.raises(BundleError, match="does not exist"):
        build(velocity_bundle, VELOCITY, [tmp_path / "missing"], progress=False)
    with pytest.raises(BundleError, match="no events index to add to"):
        build(event_bundle, EVENTS, [events], BuildConfig(add=True), progress=False)
    with pytest.raises(BundleError, match="does not exist"):
        build(event_bundle, EVENTS, [tmp_path / "nope"], progress=False)
    test_only = BuildConfig(max_per_folder=0, options=EventItemOptions(split="test"))
    with pytest.raises(BundleError, match=r"no labelled traces in split .test."):
        build(event_bundle, EVENTS, [events], test_only, progress=False)
    with pytest.raises(TypeError, match="EventItemOptions"):
        build(velocity_bundle, VELOCITY, [bad], BuildConfig(options=EventItemOptions()))
    bare = tmp_path / "bare"
    bare.mkdir()
    write_manifest(bare, Manifest(schema_version=1))
    with pytest.raises(BundleError, match="no events encoders"):
        build(bare, EVENTS, [events], progress=False)


def test_threads_set_the_embedders_onnx_threads_and_not_the_index(
    velocity_bundle, tiny_velocity_data, monkeypatch
):
    seen = []
    real = VELOCITY.build_embedder

    def spy(root, section, providers, threads):
        seen.append(threads)
        return real(root, section, providers, threads)

    monkeypatch.setattr(type(VELOCITY), "build_embedder", lambda self, *a: spy(*a))
    vectors = {}
    for threads in (1, 0):
        build(velocity_bundle, VELOCITY, [tiny_velocity_data], BuildConfig(threads=threads),
              resume=False, progress=False)  # fmt: skip
        lib = LoadedLibrary.open(velocity_bundle, read_manifest(velocity_bundle), VELOCITY)
        try:
            q = np.random.default_rng(0).standard_normal((2, lib.index.dim)).astype(np.float32)
            vectors[threads] = lib.search(q, len(lib))
        finally:
            lib.close()
    assert seen == [1, 0]
    np.testing.assert_array_equal(vectors[1][1], vectors[0][1])  # the same ids in order
    np.testing.assert_allclose(vectors[1][0], vectors[0][0], atol=1e-5)
