import numpy as np
import pytest

from brainalign import cache as cache_mod
from brainalign.cache import Cache, digest


def test_digest_is_stable_and_sensitive():
    a = {"x": [1, 2, 3], "y": np.arange(4.0), "z": "text"}
    b = {"z": "text", "y": np.arange(4.0), "x": [1, 2, 3]}  # same content, other order
    assert digest(a) == digest(b)
    assert digest(a) != digest({**a, "y": np.arange(4.0) + 1e-9})
    assert digest([1, 2]) != digest([2, 1])
    with pytest.raises(TypeError):
        digest(object())


def test_miss_then_hit(tmp_path):
    c = Cache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(5), "b": np.eye(2)}

    first = c.memoize("step", 1, {"p": 1}, compute)
    second = c.memoize("step", 1, {"p": 1}, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["a"], second["a"])
    c.memoize("step", 2, {"p": 1}, compute)  # a new step version is a miss
    c.memoize("step", 1, {"p": 2}, compute)  # new parameters are a miss
    assert len(calls) == 3


def test_corrupt_entry_is_recomputed(tmp_path):
    c = Cache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(1000)}

    c.memoize("step", 1, {}, compute)
    entry = next((tmp_path / "step").glob("*.npz"))
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])  # truncated
    out = c.memoize("step", 1, {}, compute)
    assert len(calls) == 2
    np.testing.assert_array_equal(out["a"], np.arange(1000))
    # a flipped byte that keeps the file readable is caught by the checksum
    data = bytearray(entry.read_bytes())
    data[-30] ^= 0xFF
    entry.write_bytes(bytes(data))
    c.memoize("step", 1, {}, compute)
    assert len(calls) == 3


def test_a_shipped_entry_is_copied_on_a_miss_and_a_damaged_one_is_computed_and_kept(tmp_path, caplog):
    shipped = Cache(tmp_path / "shipped")
    shipped.memoize("step", 1, {"p": 1}, lambda: {"a": np.arange(3.0)})
    (entry,) = (tmp_path / "shipped" / "step").glob("*.npz")
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.zeros(3)}

    c = Cache(tmp_path / "cache")
    np.testing.assert_array_equal(c.memoize("step", 1, {"p": 1}, compute, shipped=tmp_path / "shipped")["a"], np.arange(3.0))
    assert calls == [] and (tmp_path / "cache" / "step" / entry.name).exists()  # copied: later reads are the cache's own
    c.memoize("step", 1, {"p": 2}, compute, shipped=tmp_path / "shipped")  # another key is not shipped
    assert calls == [1]
    data = bytearray(entry.read_bytes())
    data[-30] ^= 0xFF  # readable, but not what was shipped
    entry.write_bytes(bytes(data))
    fresh = Cache(tmp_path / "fresh")
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(fresh.memoize("step", 1, {"p": 1}, compute, shipped=tmp_path / "shipped")["a"],
                                      np.zeros(3))
    assert calls == [1, 1] and "unusable (checksum mismatch)" in caplog.text
    assert entry.read_bytes() == bytes(data)  # the installation's file is left as it is


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    c = Cache(tmp_path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        c.put("step", "k", {"a": np.arange(3)})
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_folder_built_once_and_rebuilt_when_damaged(tmp_path):
    c = Cache(tmp_path)
    builds = []

    def build(d):
        builds.append(1)
        (d / "w.bin").write_bytes(b"x" * 100)

    p1 = c.folder("models", "key", build)
    p2 = c.folder("models", "key", build)
    assert p1 == p2 and len(builds) == 1
    (p1 / "w.bin").write_bytes(b"x" * 10)  # truncated weights
    c.folder("models", "key", build)
    assert len(builds) == 2 and (p1 / "w.bin").stat().st_size == 100


def test_a_folder_published_between_two_looks_is_used_not_discarded(tmp_path, monkeypatch, caplog):
    """Another process publishes the folder just after this one found it absent: the published folder is
    complete, so it is read, not taken for a damaged one and thrown away."""
    c = Cache(tmp_path)
    other = Cache(tmp_path)
    original = Cache._complete
    looks = []

    def complete_then_published(dest):
        looks.append(dest)
        if len(looks) == 1:  # absent at the first look; the other process publishes right after it
            assert not original(dest)
            other.folder("models", "key", lambda d: (d / "w.bin").write_bytes(b"o" * 100))
            return False
        return original(dest)

    monkeypatch.setattr(Cache, "_complete", staticmethod(complete_then_published))
    built = []
    p = c.folder("models", "key", lambda d: built.append(1) or (d / "w.bin").write_bytes(b"m" * 100))
    assert (p / "w.bin").read_bytes() == b"o" * 100
    assert "incomplete" not in caplog.text
    assert [q.name for q in (tmp_path / "models").iterdir()] == ["key"]


def test_failed_build_leaves_no_folder(tmp_path):
    c = Cache(tmp_path)

    def build(d):
        (d / "partial").write_text("half")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError):
        c.folder("models", "key", build)
    assert not (tmp_path / "models" / "key").exists()
    assert list((tmp_path / "models").iterdir()) == []


def _race(root: str, worker: int, n_keys: int, barrier) -> list[tuple[bool, int | None, int]]:
    """One of several processes writing the same keys at the same instant (see the test below)."""
    c = Cache(root)
    seen = []
    for i in range(n_keys):
        barrier.wait()  # every process writes key i at once
        stored = c.put("race", f"k{i}", {"a": np.full(20_000, worker), "b": np.arange(i)})
        got = c.get("race", f"k{i}")
        built = c.folder("race_dirs", f"k{i}", lambda d: (d / "w.bin").write_bytes(bytes([worker]) * 1000))
        seen.append((stored, None if got is None else int(got["a"][0]), (built / "w.bin").read_bytes()[0]))
    return seen


def test_processes_racing_on_one_key_leave_one_intact_entry(tmp_path, caplog):
    """Real processes write each key at the same instant: one writer wins, the losers' writes are discarded,
    every process then reads the winner's entry, and nothing corrupt or temporary is left behind."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    n_workers, n_keys = 4, 25
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
        barrier = manager.Barrier(n_workers)
        runs = [pool.submit(_race, str(tmp_path), w, n_keys, barrier) for w in range(n_workers)]
        seen = [r.result(timeout=240) for r in runs]
    c = Cache(tmp_path)
    for i in range(n_keys):
        stored = [s[i][0] for s in seen]
        assert sum(stored) == 1, f"key {i}: {sum(stored)} writers published"
        winner = stored.index(True)
        assert {s[i][1] for s in seen} == {winner}, f"key {i}: processes read different entries"
        assert len({s[i][2] for s in seen}) == 1, f"folder {i}: processes read different folders"
        entry = c.get("race", f"k{i}")
        assert int(entry["a"][0]) == winner and len(entry["b"]) == i
    assert "corrupt" not in caplog.text
    leftovers = [p.name for p in tmp_path.rglob(".*") if p.name != ".complete.json"]
    assert not leftovers, leftovers
    assert len(list((tmp_path / "race").glob("*.npz"))) == n_keys
    assert len(list((tmp_path / "race_dirs").iterdir())) == n_keys
