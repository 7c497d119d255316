"""Room grid, RIR physics, and the on-disk RIR bank (one small room, few azimuths: seconds)."""

import json

import numpy as np
import pyroomacoustics as pra
import pytest

from spatial_clap_hf.spatial import rir_bank as rb
from spatial_clap_hf.spatial.geometry import is_centred_stereo_pair, source_position, stereo_pair, tetrahedral_array
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig
from spatial_clap_hf.spatial.simulation import schroeder_rt60, simulate_rirs
from spatial_clap_hf.spatial.rooms import canonical_split, room_grid, sabine_rt60, split_rooms

FS = 16000
C = 340.0


# --- rooms -------------------------------------------------------------------------------------


def test_room_grid_is_the_papers_720_rooms():
    grid = room_grid()
    assert len(grid) == 720
    assert [r.room_id for r in grid] == list(range(720))
    dims = np.array([r.dims_m for r in grid])
    assert sorted(set(dims[:, 0])) == [7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 10.5]
    assert sorted(set(dims[:, 1])) == [6.0, 6.5, 7.0, 7.5, 8.0, 8.5]
    assert sorted(set(dims[:, 2])) == [2.5, 3.0, 3.5, 4.0, 4.5]
    assert sorted({r.absorption for r in grid}) == [0.4, 0.5, 0.6]
    assert len({(r.dims_m, r.absorption) for r in grid}) == 720


def test_split_is_seeded_disjoint_360_60_60():
    a, b, other = split_rooms(0), split_rooms(0), split_rooms(1)
    assert {k: len(v) for k, v in a.items()} == {"train": 360, "validation": 60, "test": 60}
    ids = {k: {r.room_id for r in v} for k, v in a.items()}
    assert not (ids["train"] & ids["validation"] or ids["train"] & ids["test"] or ids["validation"] & ids["test"])
    assert a == b
    assert [r.room_id for r in a["test"]] != [r.room_id for r in other["test"]]
    assert canonical_split("val") == "validation" and canonical_split("validation") == "validation"
    with pytest.raises(ValueError, match="Unknown split"):
        canonical_split("dev-clean")


def test_max_order_comes_from_sabine_rt60():
    room = room_grid()[0]  # 7 x 6 x 2.5 m, r = 0.4
    v, s = 7 * 6 * 2.5, 2 * (7 * 6 + 7 * 2.5 + 6 * 2.5)
    assert room.rt60(C) == pytest.approx(24 * np.log(10) * v / (C * s * 0.4))
    assert room.rt60(C) == pytest.approx(sabine_rt60((7.0, 6.0, 2.5), 0.4, C))
    orders = [r.max_order(C) for r in room_grid()[::37]]
    assert min(orders) >= 20  # pyroomacoustics' default order 1 would be far too low
    assert room.max_order(C) == pra.inverse_sabine(room.rt60(C), [7.0, 6.0, 2.5], c=C)[1]


# --- physics -----------------------------------------------------------------------------------

ROOM = room_grid()[2]  # 7 x 6 x 2.5 m, r = 0.6: the shortest RIRs of the grid
PHYSICS_AZIMUTHS = [90.0, -90.0, 0.0, 30.0, -30.0, 150.0, 30.0]


@pytest.fixture(scope="module")
def physics_rirs():
    rirs = simulate_rirs(ROOM, PHYSICS_AZIMUTHS, mic_positions=stereo_pair(), sample_rate=FS, speed_of_sound=C)
    return dict(zip(["left", "right", "front", "p30", "m30", "p150", "p30_again"], rirs))


def _direct_peak(channel: np.ndarray, search: int = 400) -> float:
    """Sub-sample position of the direct-path peak (parabolic interpolation)."""
    seg = np.abs(channel[:search])
    k = int(np.argmax(seg))
    a, b, c = seg[k - 1], seg[k], seg[k + 1]
    return k + 0.5 * (a - c) / (a - 2 * b + c)


def test_interaural_delay_matches_geometry(physics_rirs):
    itd = 0.15 / C * FS  # 7.06 samples
    left, right, front = physics_rirs["left"], physics_rirs["right"], physics_rirs["front"]
    assert _direct_peak(left[1]) - _direct_peak(left[0]) == pytest.approx(itd, abs=1.0)  # left reaches ch0 first
    assert _direct_peak(right[0]) - _direct_peak(right[1]) == pytest.approx(itd, abs=1.0)
    assert _direct_peak(front[0]) - _direct_peak(front[1]) == pytest.approx(0.0, abs=1.0)


def test_direct_path_arrives_after_two_metres(physics_rirs):
    latency = pra.constants.get("frac_delay_length") // 2  # centre of pyroomacoustics' fractional-delay filter
    mic0 = stereo_pair()[0]
    expected = np.linalg.norm(source_position(0.0, 0.0, 2.0) - mic0) / C * FS + latency
    assert _direct_peak(physics_rirs["front"][0]) == pytest.approx(expected, abs=1.0)


def test_schroeder_rt60_within_25_percent_of_sabine(physics_rirs):
    target = ROOM.rt60(C)
    for channel in physics_rirs["p30"]:
        assert schroeder_rt60(channel, FS, decay_db=20) == pytest.approx(target, rel=0.25)


def test_schroeder_rt60_recovers_a_known_decay():
    rng = np.random.default_rng(0)
    t = np.arange(int(1.2 * FS)) / FS
    h = rng.standard_normal(t.size) * 10 ** (-3 * t / 0.4)  # amplitude -60 dB after 0.4 s
    assert schroeder_rt60(h, FS, decay_db=30) == pytest.approx(0.4, rel=0.05)
    with pytest.raises(ValueError, match="all zeros"):
        schroeder_rt60(np.zeros(100), FS)


def test_simulation_is_deterministic(physics_rirs):
    np.testing.assert_array_equal(physics_rirs["p30"], physics_rirs["p30_again"])


def test_stereo_symmetry_holds_numerically(physics_rirs):
    """RIR(−θ) = RIR(θ) with channels swapped; RIR(180° − θ) = RIR(θ) (image-source round-off only)."""
    ref = physics_rirs["p30"]
    scale = np.abs(ref).max()
    for simulated, derived in ((physics_rirs["m30"], ref[::-1]), (physics_rirs["p150"], ref)):
        assert simulated.shape == derived.shape
        assert np.abs(simulated - derived).max() <= 1e-4 * scale
    # and the difference is not trivially zero for a non-symmetric case
    assert np.abs(physics_rirs["m30"] - ref).max() > 0.1 * scale


def test_symmetry_only_for_centred_stereo_pair_at_elevation_zero():
    assert RirBankConfig().uses_symmetry
    assert not RirBankConfig(elevation_deg=10.0).uses_symmetry
    assert not RirBankConfig(mic_positions=tuple(map(tuple, tetrahedral_array()))).uses_symmetry
    assert not is_centred_stereo_pair(stereo_pair()[::-1])  # channel 0 must be the left (+y) microphone
    shifted = stereo_pair() + np.array([0.1, 0.0, 0.0])
    assert not RirBankConfig(mic_positions=tuple(map(tuple, shifted))).uses_symmetry
    assert list(RirBankConfig(azimuth_step_deg=30).simulated_azimuths()) == [0, 30, 60, 90]


# --- the bank ----------------------------------------------------------------------------------

TINY = RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=45)


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bank")
    RirBank.build(directory, TINY, splits=["test", "validation"], num_workers=1, show_progress=False)
    return directory


@pytest.fixture(scope="module")
def bank(bank_dir):
    return RirBank.load(bank_dir)


def test_bank_columns_and_rows(bank_dir, bank):
    import datasets

    ds = datasets.load_from_disk(str(bank_dir / "test"))
    assert set(ds.column_names) == {
        "rir", "sample_rate", "room_dim", "absorption", "rt60", "max_order", "azimuth_deg",
        "elevation_deg", "distance_m", "mic_positions", "split", "room_id",
    }
    assert ds.features["rir"].feature.feature.dtype == "float32"
    assert sorted(ds["azimuth_deg"]) == [0.0, 45.0, 90.0]  # only 0..90 simulated (symmetry)
    room = TINY.rooms("test")[0]
    row = ds[0]
    assert row["split"] == "test" and row["room_id"] == room.room_id
    assert row["rt60"] == pytest.approx(room.rt60(C)) and row["max_order"] == room.max_order(C)
    assert row["room_dim"] == list(room.dims_m) and row["absorption"] == room.absorption
    assert row["sample_rate"] == FS and row["distance_m"] == 2.0 and row["elevation_deg"] == 0.0
    np.testing.assert_allclose(row["mic_positions"], room.centre_m + stereo_pair())
    assert np.asarray(row["rir"]).shape[0] == 2
    assert json.loads((bank_dir / "bank_config.json").read_text())["cache_key"] == TINY.cache_key()


def test_bank_lookup_and_symmetry(bank):
    assert bank.splits == ["validation", "test"]
    test_room, val_room = bank.rooms("test")[0], bank.rooms("validation")[0]
    assert [test_room] == [r.room_id for r in TINY.rooms("test")] and val_room != test_room
    assert bank.split_of(test_room) == "test" and bank.room(test_room).room_id == test_room
    assert list(bank.azimuths()) == [-180, -135, -90, -45, 0, 45, 90, 135]
    h45 = bank.get(test_room, 45)
    assert h45.dtype == np.float32 and h45.ndim == 2 and h45.shape[0] == 2
    np.testing.assert_array_equal(bank.get(test_room, -45), h45[::-1])
    np.testing.assert_array_equal(bank.get(test_room, 135), h45)
    np.testing.assert_array_equal(bank.get(test_room, -135), h45[::-1])
    np.testing.assert_array_equal(bank.get(test_room, 405), h45)  # any range of degrees
    np.testing.assert_array_equal(bank.get(test_room, -180), bank.get(test_room, 0))
    direct = simulate_rirs(bank.room(test_room), [-135.0], sample_rate=FS)[0]
    assert np.abs(direct - bank.get(test_room, -135)).max() <= 1e-4 * np.abs(direct).max()
    with pytest.raises(ValueError, match="not on this bank's 45° grid"):
        bank.get(test_room, 30)
    with pytest.raises(KeyError, match="not in this RIR bank"):
        bank.get(99999, 0)
    with pytest.raises(KeyError, match="no 'train' split"):
        bank.rooms("train")


def test_get_batch_pads_to_the_longest(bank):
    import torch

    keys = [(bank.rooms("test")[0], 90), (bank.rooms("validation")[0], -45), (bank.rooms("test")[0], 0)]
    rirs = [bank.get(*k) for k in keys]
    batch = bank.get_batch(keys)
    assert batch.dtype == torch.float32 and batch.shape == (3, 2, max(r.shape[1] for r in rirs))
    for i, r in enumerate(rirs):
        np.testing.assert_array_equal(batch[i, :, : r.shape[1]].numpy(), r)
        assert not batch[i, :, r.shape[1] :].any()
    cut = bank.get_batch(keys, max_length=100)
    assert cut.shape == (3, 2, 100)
    np.testing.assert_array_equal(cut[0].numpy(), rirs[0][:, :100])


def test_in_memory_bank_matches(bank_dir, bank):
    mem = RirBank.load(bank_dir, in_memory=True)
    room = bank.rooms("test")[0]
    for az in bank.azimuths():
        np.testing.assert_array_equal(mem.get(room, az), bank.get(room, az))


def test_rebuild_reuses_cache_without_simulating(bank_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a complete split was simulated again")

    monkeypatch.setattr(rb, "simulate_rirs", fail)
    again = RirBank.build(bank_dir, TINY, splits=["test"], show_progress=False)
    assert again.rooms("test") == [r.room_id for r in TINY.rooms("test")]


def test_different_parameters_are_refused(bank_dir):
    with pytest.raises(ValueError, match="different parameters.*azimuth_step_deg"):
        RirBank.build(bank_dir, RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30), splits=["test"])
    with pytest.raises(ValueError, match="not supported"):
        RirBankConfig(azimuth_step_deg=7)


def test_interrupted_build_is_never_taken_as_complete_and_resumes(tmp_path, monkeypatch):
    config = RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=90)
    calls = []
    real = rb.simulate_rirs

    def interrupting(room, *args, **kwargs):
        calls.append(room.room_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(room, *args, **kwargs)

    monkeypatch.setattr(rb, "simulate_rirs", interrupting)
    with pytest.raises(KeyboardInterrupt):
        RirBank.build(tmp_path, config, splits=["validation"], show_progress=False)
    assert not (tmp_path / "validation").exists()
    with pytest.raises(FileNotFoundError, match="no complete split"):
        RirBank.load(tmp_path)

    finished = calls[0]
    calls.clear()
    monkeypatch.setattr(rb, "simulate_rirs", lambda room, *a, **k: calls.append(room.room_id) or real(room, *a, **k))
    resumed = RirBank.build(tmp_path, config, splits=["validation"], show_progress=False)
    rooms = [r.room_id for r in config.rooms("validation")]
    assert sorted(calls + [finished]) == sorted(rooms)  # the finished room is not simulated again
    assert resumed.rooms("validation") == rooms
    assert not (tmp_path / ".partial").exists()


def test_parallel_build_equals_serial_and_float16(tmp_path):
    config = RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=90)
    parallel = RirBank.build(tmp_path / "par", config, splits=["test"], num_workers=2, show_progress=False)
    half = RirBank.build(
        tmp_path / "f16", RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=90, dtype="float16"), splits=["test"]
    )
    half_in_memory = RirBank.load(tmp_path / "f16", in_memory=True)
    for room in parallel.rooms("test"):
        np.testing.assert_array_equal(half_in_memory.get(room, -90), half.get(room, -90))
        serial = simulate_rirs(parallel.room(room), [0.0, 90.0], sample_rate=FS)
        np.testing.assert_array_equal(parallel.get(room, 0), serial[0])
        np.testing.assert_array_equal(parallel.get(room, 90), serial[1])
        h16 = half.get(room, 90)
        assert h16.dtype == np.float32
        np.testing.assert_allclose(h16, serial[1], atol=2e-3 * np.abs(serial[1]).max())


def test_tetrahedral_array_simulates_every_azimuth(tmp_path):
    config = RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=90, mic_positions=tuple(map(tuple, tetrahedral_array())))
    bank = RirBank.build(tmp_path, config, splits=["test"], show_progress=False)
    room = bank.rooms("test")[0]
    assert bank.num_channels == 4
    left = bank.get(room, 90)  # source on the left (+y): capsules 0 (FLU) and 2 (BLD) are at +y
    peaks = [_direct_peak(ch) for ch in left]
    assert max(peaks[0], peaks[2]) < min(peaks[1], peaks[3])
    import datasets

    stored = datasets.load_from_disk(str(tmp_path / "test"))
    assert sorted(stored["azimuth_deg"]) == [-180.0, -90.0, 0.0, 90.0]  # no symmetry shortcut: all simulated


def test_rooms_can_be_capped_per_split(tmp_path):
    config = RirBankConfig(max_rooms_per_split={"train": 2, "validation": 1}, azimuth_step_deg=90)
    everything = RirBankConfig(azimuth_step_deg=90)
    assert config.rooms("train") == everything.rooms("train")[:2]
    assert config.rooms("validation") == everything.rooms("validation")[:1]
    assert config.rooms("test") == everything.rooms("test")  # a split the mapping leaves out keeps all
    assert RirBankConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.cache_key() != RirBankConfig(max_rooms_per_split={"train": 3, "validation": 1}, azimuth_step_deg=90).cache_key()
    bank = RirBank.build(tmp_path, config, splits=["train", "validation"], num_workers=1, show_progress=False)
    assert sorted(bank.rooms("train")) == sorted(r.room_id for r in config.rooms("train"))
    assert len(bank.rooms("validation")) == 1
    for bad, message in ((0, "whole number"), ({"train": 0}, "whole number"), ({"tran": 3}, "Unknown split")):
        with pytest.raises(ValueError, match=message):
            RirBankConfig(max_rooms_per_split=bad)
