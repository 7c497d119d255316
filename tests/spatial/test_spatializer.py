"""Batched convolution, mixtures, SCL permutations, SELD targets and seeded pairings."""

import numpy as np
import pytest
import scipy.signal
import torch

from spatial_clap_hf.spatial import compose_caption, doa_class, fold_azimuth
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig, RirKey
from spatial_clap_hf.spatial.spatializer import (
    PairingSampler,
    Scene,
    SpectrumCache,
    Spatializer,
    convolve,
    doa_targets,
    fft_size,
    mix,
    permutations_of,
    permuted_mixtures,
    seld_frame_targets,
    seld_targets,
    source_activity,
)

FS = 16000


def _reference_conv(clip: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """(C, T) float64 reference: full scipy convolution cut to the clip length."""
    return np.stack([scipy.signal.fftconvolve(clip.astype(np.float64), h.astype(np.float64))[: clip.size] for h in rir])


def _rel_err(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    config = RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=30)
    return RirBank.build(tmp_path_factory.mktemp("bank"), config, splits=["train", "test"], show_progress=False)


# --- FFT sizes and convolution -----------------------------------------------------------------


def _is_5_smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def test_fft_size_is_smallest_smooth_multiple_of_8():
    for n in list(range(1, 400)) + [174999, 177147, 160000 + 19441]:
        m = fft_size(n)
        assert m >= n and m % 8 == 0 and _is_5_smooth(m)
        smaller = [k for k in range(max(8, n), m) if k % 8 == 0 and _is_5_smooth(k)]
        assert not smaller, (n, m, smaller[:1])
    assert fft_size(177147) != 177147  # 3^11: the slow size scipy's next_fast_len picks


def test_convolve_matches_scipy():
    rng = np.random.default_rng(0)
    clips = rng.standard_normal((3, 4000)).astype(np.float32)
    rirs = (rng.standard_normal((3, 2, 1500)) * np.exp(-np.arange(1500) / 300)).astype(np.float32)
    out = convolve(torch.from_numpy(clips), torch.from_numpy(rirs))
    assert out.shape == (3, 2, 4000) and out.dtype == torch.float32
    for b in range(3):
        assert _rel_err(out[b].numpy(), _reference_conv(clips[b], rirs[b])) <= 1e-5


def test_convolve_rir_longer_than_clip():
    rng = np.random.default_rng(1)
    clips, rirs = rng.standard_normal((2, 300)), rng.standard_normal((2, 4, 1000))
    out = convolve(torch.tensor(clips, dtype=torch.float32), torch.tensor(rirs, dtype=torch.float32))
    assert out.shape == (2, 4, 300)
    assert _rel_err(out[1].numpy(), _reference_conv(clips[1], rirs[1])) <= 1e-5


def test_convolve_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        convolve(torch.zeros(2, 1, 100), torch.zeros(2, 2, 10))
    with pytest.raises(ValueError, match="batch size 2"):
        convolve(torch.zeros(2, 100), torch.zeros(3, 2, 10))


def test_mix_and_permuted_mixtures_follow_the_formula():
    rng = np.random.default_rng(2)
    b, n, t, c, length = 2, 3, 2000, 2, 700
    sources = rng.standard_normal((b, n, t)).astype(np.float32)
    rirs = rng.standard_normal((b, n, c, length)).astype(np.float32)
    perms = permutations_of(n)
    assert len(perms) == 6 and perms[0] == (0, 1, 2)
    out = permuted_mixtures(torch.from_numpy(sources), torch.from_numpy(rirs))
    assert out.shape == (b, 6, c, t)
    for m in range(b):
        for p, perm in enumerate(perms):
            ref = sum(_reference_conv(sources[m, i], rirs[m, perm[i]]) for i in range(n)) / n
            assert _rel_err(out[m, p].numpy(), ref) <= 1e-5
    np.testing.assert_allclose(mix(torch.from_numpy(sources), torch.from_numpy(rirs)).numpy(), out[:, 0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="not a permutation"):
        permuted_mixtures(torch.from_numpy(sources), torch.from_numpy(rirs), [(0, 0, 1)])


# --- targets -----------------------------------------------------------------------------------


def test_seld_and_doa_targets():
    activity, doa = seld_targets([[[1], [3, 0]], [[2]], [[1], [1]]], [[120.0, -45.0], [-170.0], [30.0, -60.0]], num_classes=4)
    assert activity.shape == doa.shape == (3, 4) and activity.dtype == torch.float32
    np.testing.assert_array_equal(activity.numpy(), [[1, 1, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(doa.numpy(), [[-45, 60, 0, -45], [0, 0, -10, 0], [0, 30, 0, 0]], atol=1e-4)
    np.testing.assert_allclose(doa_targets([150.0, -100.0, 10.0]).numpy(), [30.0, -80.0, 10.0], atol=1e-4)
    with pytest.raises(ValueError, match="outside"):
        seld_targets([[[5]]], [[0.0]], num_classes=4)
    with pytest.raises(ValueError, match="one per source"):
        seld_targets([[[1], [2]]], [[0.0]], num_classes=4)


# --- pairings ----------------------------------------------------------------------------------


def test_source_activity_marks_the_frames_where_a_clip_sounds():
    clips = torch.zeros(3, 8000)
    clips[0, 2048:4096] = torch.randn(2048)  # a burst over frames ~4..8 (hop 512)
    clips[1] = 0.5 * torch.randn(8000)  # sounds throughout
    activity = source_activity(clips, n_fft=1024, hop_length=512, threshold_db=-30.0)
    assert activity.shape == (3, 8000 // 512 + 1)
    assert activity[0].nonzero().flatten().tolist() == list(range(4, 9))  # the frames overlapping the burst
    assert activity[1].all() and not activity[2].any()  # an all-zero clip is silent everywhere
    with pytest.raises(ValueError, match="<= 0 dB"):
        source_activity(clips, n_fft=1024, hop_length=512, threshold_db=3.0)


def test_seld_frame_targets_follow_each_sources_activity():
    # sample 0: class 1 at +30° in frames 0-1, class 2 at -60° in frames 2-3; sample 1: two sources of class 0
    act0 = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1]])
    act1 = torch.tensor([[1.0, 0, 0, 0], [1, 1, 0, 0]])
    activity, doa = seld_frame_targets([[[1], [2]], [[0], [0]]], [[30.0, -60.0], [150.0, 10.0]], [act0, act1], 3)
    assert activity.shape == doa.shape == (2, 4, 3)
    assert activity[0, :, 1].tolist() == [1, 1, 0, 0] and activity[0, :, 2].tolist() == [0, 0, 1, 1]
    assert activity[0, :, 0].sum() == 0
    assert doa[0, 0, 1] == pytest.approx(30.0) and doa[0, 2, 2] == pytest.approx(-60.0)
    # class 0 shared: the first source sets frame 0 (150° folds to 30°), the second fills frame 1
    assert activity[1, :, 0].tolist() == [1, 1, 0, 0]
    assert doa[1, 0, 0] == pytest.approx(30.0) and doa[1, 1, 0] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="sources, frames"):
        seld_frame_targets([[[1]]], [[0.0]], [torch.ones(2, 4)], 3)
    # The same as one (batch, sources, frames) tensor; a one-source sample ignores its padding row.
    padded = torch.stack([act0, act1])
    again = seld_frame_targets([[[1], [2]], [[0], [0]]], [[30.0, -60.0], [150.0, 10.0]], padded, 3)
    for got, want in zip(again, (activity, doa)):
        torch.testing.assert_close(got, want)
    single, _ = seld_frame_targets([[[1]]], [[0.0]], torch.tensor([[[1.0, 0, 0, 0], [1, 1, 1, 1]]]), 3)
    assert single[0, :, 1].tolist() == [1, 0, 0, 0]


def test_spatial_batch_frame_targets_gather_each_samples_sources(bank):
    clips = torch.zeros(4, 3000)
    for i in range(4):
        clips[i, 500 * i : 500 * i + 1200] = torch.randn(1200)  # each clip sounds in its own frames
    batch = Spatializer(bank, "train", seed=0)(clips, [0, 1, 2, 3], ["a", "b", "c", "d"], num_single=2)
    assert batch.sources == [(0,), (1,), (2, 3)]
    clip_activity = source_activity(clips, n_fft=512, hop_length=256)
    labels = [[0], [1], [2], [0, 1]]
    got = batch.seld_frame_targets(labels, 3, clip_activity)
    want = seld_frame_targets(
        [[labels[i] for i in s] for s in batch.sources],
        batch.azimuths_deg,
        [clip_activity[list(s)] for s in batch.sources],
        3,
    )
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    # the single-source samples carry only their own clip's frames
    assert got[0][0, :, 0].tolist() == clip_activity[0].tolist() and got[0][0, :, 1:].sum() == 0


def test_pairing_is_seeded_per_clip_and_epoch():
    rooms, grid = [3, 7, 11], np.arange(-180, 180, 10.0)
    train = PairingSampler(rooms, grid, split="train", seed=0)
    assert train.single([5, 6, 7], epoch=0) == train.single([5, 6, 7], epoch=0)
    assert train.single([5, 6, 7], epoch=0)[0] == train.single([9, 5], epoch=0)[1]  # independent of batch position
    epochs = [tuple(train.single(range(20), epoch=e)) for e in range(3)]
    assert len(set(epochs)) == 3  # re-drawn every epoch
    assert PairingSampler(rooms, grid, split="train", seed=1).single(range(20)) != train.single(range(20))
    test = PairingSampler(rooms, grid, split="test", seed=0)
    assert test.single(range(20), epoch=0) == test.single(range(20), epoch=5)  # fixed
    assert test.single(["a", "b"]) == test.single(["a", "b"])  # string ids work too
    keys = train.single(range(200))
    assert {k.room_id for k in keys} == set(rooms) and {k.azimuth_deg for k in keys} <= set(grid)


def test_pairing_scene_shares_a_room_with_distinct_classes():
    sampler = PairingSampler([1, 2], np.arange(-180, 180, 30.0), split="val", seed=0)
    for i in range(50):
        keys = sampler.scene([i, i + 100, i + 200], epoch=1)
        assert len({k.room_id for k in keys}) == 1
        assert len({doa_class(k.azimuth_deg) for k in keys}) == 3
    with pytest.raises(ValueError, match="distinct DoA classes"):
        sampler.scene(list(range(6)))


# --- the high-level spatializer ------------------------------------------------------------------


def test_spatialize_single_clips_matches_bank_rirs(bank):
    spatializer = Spatializer(bank, "train", seed=0, device="cpu")
    rng = np.random.default_rng(3)
    clips = torch.tensor(rng.standard_normal((3, 3000)), dtype=torch.float32)
    keys = spatializer.pairing.single([0, 1, 2])
    out = spatializer.spatialize(clips, keys)
    assert out.shape == (3, 2, 3000)
    for b, key in enumerate(keys):
        assert _rel_err(out[b].numpy(), _reference_conv(clips[b].numpy(), bank.get(*key))) <= 1e-5
    with pytest.raises(ValueError, match="one key per clip"):
        spatializer.spatialize(clips, keys[:2])


def test_rir_spectra_are_computed_once_per_stored_rir_and_reused(bank):
    """Each stored RIR's spectrum is computed once (mirror azimuths share it, channels swapped) and
    reused by later batches; keeping none gives the same audio."""
    rng = np.random.default_rng(5)
    clips = torch.tensor(rng.standard_normal((8, 2000)), dtype=torch.float32)
    captions, ids = [f"Sound {i}" for i in range(8)], list(range(8))
    spatializer = Spatializer(bank, "train", seed=0)
    first = spatializer(clips, ids, captions, epoch=0, num_single=4, num_sources=2, scl=True)
    kept = len(spatializer.spectra)
    stored = {bank.stored_key(room, az)[0] for scene in spatializer.draw_scenes(ids, num_single=4) for room, az in scene.keys}
    assert 0 < kept == len(stored)
    again = spatializer(clips, ids, captions, epoch=0, num_single=4, num_sources=2, scl=True)
    assert len(spatializer.spectra) == kept and torch.equal(again.waveforms, first.waveforms)
    uncached = Spatializer(bank, "train", seed=0, spectrum_cache_mb=0)
    assert torch.equal(uncached(clips, ids, captions, num_single=4, num_sources=2, scl=True).waveforms, first.waveforms)
    assert len(uncached.spectra) == 0
    room = bank.rooms("train")[0]
    longest = bank.max_length("train")
    for samples in (longest // 2, 3 * longest):  # RIRs cut at the clip length; whole RIRs for long clips
        taps = min(samples, longest)
        nfft = spatializer.fft_length(samples)
        assert spatializer.taps(samples) == taps and nfft == fft_size(samples + taps - 1)
        (left, right), spectra_nfft = spatializer.rir_spectra([(room, 60.0), (room, -60.0)], samples)  # mirror images
        assert spectra_nfft == nfft
        assert torch.equal(left, right.flip(0)) and not torch.equal(left, right)
        for spectrum, az in ((left, 60.0), (right, -60.0)):  # the spectrum of the RIR get() returns
            rir = torch.from_numpy(bank.get(room, az))[:, :taps]
            torch.testing.assert_close(spectrum, torch.fft.rfft(rir, n=nfft))


def test_spectrum_cache_drops_the_least_recently_used_past_its_budget():
    cache = SpectrumCache(max_bytes=2 * 1024)
    kib = lambda: torch.zeros(128, dtype=torch.complex64)  # noqa: E731  (1 KiB)
    cache.put("a", kib())
    cache.put("b", kib())
    assert cache.get("a") is not None  # now the most recently used
    cache.put("c", kib())
    assert (cache.get("b"), len(cache), cache.bytes) == (None, 2, 2048)
    assert cache.get("a") is not None and cache.get("c") is not None
    cache.put("big", torch.zeros(1024, dtype=torch.complex64))  # larger than the budget: not kept
    assert cache.get("big") is None and len(cache) == 2


def test_bank_max_length_is_the_longest_stored_rir(bank):
    for split in ("train", "test"):
        assert bank.max_length(split) == max(bank.get(r, a).shape[1] for r in bank.rooms(split) for a in bank.azimuths())
    with pytest.raises(KeyError, match="no 'validation' split"):
        bank.max_length("validation")


@pytest.mark.parametrize("scl", [False, True])
def test_spatializer_batch_single_and_mixtures(bank, scl):
    spatializer = Spatializer(bank, "train", seed=0)
    rng = np.random.default_rng(4)
    clips = torch.tensor(rng.standard_normal((8, 2000)), dtype=torch.float32)
    captions = [f"Sound number {i}" for i in range(8)]
    ids = list(range(100, 108))
    batch = spatializer(clips, ids, captions, epoch=2, num_single=4, num_sources=2, scl=scl)
    scenes = spatializer.draw_scenes(ids, epoch=2, num_single=4, num_sources=2)
    assert len(batch) == (8 if scl else 6) and batch.waveforms.shape == (len(batch), 2, 2000)
    assert batch.scene_index.tolist() == ([0, 1, 2, 3, 4, 4, 5, 5] if scl else [0, 1, 2, 3, 4, 5])
    assert batch.is_identity.tolist() == ([True] * 5 + [False, True, False] if scl else [True] * 6)
    for b in range(len(batch)):
        scene = scenes[int(batch.scene_index[b])]
        perm = batch.permutation[b]
        assert batch.sources[b] == scene.sources
        assert batch.azimuths_deg[b] == tuple(scene.keys[j].azimuth_deg for j in perm)
        content = [captions[i] for i in scene.sources]
        assert batch.captions[b] == compose_caption(content, batch.azimuths_deg[b])
        assert batch.captions_src[b] == compose_caption(content)
        rirs = [bank.get(*scene.keys[j]) for j in perm]
        ref = sum(_reference_conv(clips[i].numpy(), h) for i, h in zip(scene.sources, rirs)) / len(rirs)
        assert _rel_err(batch.waveforms[b].numpy(), ref) <= 1e-5
    if scl:  # the two assignments of a mixture: same content, swapped directions, different captions
        assert batch.captions_src[4] == batch.captions_src[5] and batch.captions[4] != batch.captions[5]
        assert batch.azimuths_deg[5] == batch.azimuths_deg[4][::-1]
    activity, doa = batch.seld_targets([[i % 3] for i in range(8)], num_classes=3)
    assert activity.shape == (len(batch), 3)
    last = len(batch) - 1
    for i, az in zip(batch.sources[last], batch.azimuths_deg[last]):
        assert activity[last, i % 3] == 1 and doa[last, i % 3] == pytest.approx(fold_azimuth(az), abs=1e-4)
    with pytest.raises(ValueError, match="single-source"):
        batch.doa_targets()


def test_direction_twins_place_one_clip_at_two_direction_classes(bank):
    spatializer = Spatializer(bank, "train", seed=0)
    clips = torch.randn(6, 1500)
    ids = list(range(6))
    batch = spatializer(clips, ids, [f"Sound {i}" for i in range(6)], epoch=1, num_single=4, num_twins=2)
    # clips 0 and 1 twice (consecutive samples), clips 2 and 3 once, then the mixture of 4 and 5
    assert [s for s in batch.sources] == [(0,), (0,), (1,), (1,), (2,), (3,), (4, 5)]
    for a, b in ((0, 1), (2, 3)):
        assert batch.room_ids[a] == batch.room_ids[b]
        assert doa_class(batch.azimuths_deg[a][0]) != doa_class(batch.azimuths_deg[b][0])
        assert batch.captions[a] != batch.captions[b] and batch.captions_src[a] == batch.captions_src[b]
        ref = [_reference_conv(clips[batch.sources[i][0]].numpy(), bank.get(batch.room_ids[i], batch.azimuths_deg[i][0])) for i in (a, b)]
        assert _rel_err(batch.waveforms[a].numpy(), ref[0]) <= 1e-5 and _rel_err(batch.waveforms[b].numpy(), ref[1]) <= 1e-5
    again = spatializer(clips, ids, [f"Sound {i}" for i in range(6)], epoch=1, num_single=4, num_twins=2)
    assert again.azimuths_deg == batch.azimuths_deg
    with pytest.raises(ValueError, match="num_twins=5"):
        spatializer.draw_scenes(ids, num_single=4, num_twins=5)


def test_mixtures_of_two_and_three_sources_in_one_batch(bank):
    spatializer = Spatializer(bank, "train", seed=0)
    clips = torch.randn(7, 1500)
    captions = [f"Sound {i}" for i in range(7)]
    batch = spatializer(clips, list(range(7)), captions, epoch=1, num_single=2, num_sources=[2, 3], scl=True)
    # two single-source scenes, the 2 assignments of (2, 3), the 6 of (4, 5, 6)
    assert batch.sources == [(0,), (1,), (2, 3), (2, 3)] + [(4, 5, 6)] * 6
    assert batch.scene_index.tolist() == [0, 1, 2, 2] + [3] * 6
    three = range(4, 10)
    assert sorted(batch.permutation[b] for b in three) == sorted(permutations_of(3))
    assert len({batch.captions[b] for b in three}) == 6 and len({batch.captions_src[b] for b in three}) == 1
    assert len({doa_class(az) for az in batch.azimuths_deg[4]}) == 3
    for b in three:
        rirs = [bank.get(batch.room_ids[b], az) for az in batch.azimuths_deg[b]]
        ref = sum(_reference_conv(clips[i].numpy(), h) for i, h in zip(batch.sources[b], rirs)) / 3
        assert _rel_err(batch.waveforms[b].numpy(), ref) <= 1e-5
    with pytest.raises(ValueError, match=r"sizes \[2, 2\] must each be at least 1 and add up to the 5 clips"):
        spatializer.draw_scenes(list(range(7)), num_single=2, num_sources=[2, 2])


def test_spatializer_doa_batch_and_determinism(bank):
    a = Spatializer(bank, "train", seed=5)
    clips = torch.randn(4, 1000)
    first = a(clips, [0, 1, 2, 3], ["a", "b", "c", "d"], epoch=0)
    again = Spatializer(bank, "train", seed=5)(clips, [0, 1, 2, 3], ["a", "b", "c", "d"], epoch=0)
    torch.testing.assert_close(first.waveforms, again.waveforms)
    assert first.azimuths_deg == again.azimuths_deg
    np.testing.assert_allclose(first.doa_targets().numpy(), [fold_azimuth(a[0]) for a in first.azimuths_deg], atol=1e-4)
    assert set(first.room_ids) <= set(bank.rooms("train"))
    test = Spatializer(bank, "test", seed=5)
    assert test.draw_scenes([0, 1], epoch=0) == test.draw_scenes([0, 1], epoch=7)
    with pytest.raises(ValueError, match="multiple of 2"):
        a.draw_scenes([0, 1, 2], num_single=0)


def test_scene_validation():
    with pytest.raises(ValueError, match="share a room"):
        Scene((0, 1), (RirKey(1, 0.0), RirKey(2, 30.0)))
    with pytest.raises(ValueError, match="one RIR key per source"):
        Scene((0, 1), (RirKey(1, 0.0),))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_spatializer_on_cuda_matches_cpu(bank):
    clips = torch.randn(6, 4000)
    cpu = Spatializer(bank, "train", seed=0)(clips, list(range(6)), list("abcdef"), num_single=2, scl=True)
    gpu = Spatializer(bank, "train", seed=0, device="cuda")(clips.cuda(), list(range(6)), list("abcdef"), num_single=2, scl=True)
    assert gpu.waveforms.is_cuda and gpu.is_identity.is_cuda
    torch.testing.assert_close(gpu.waveforms.cpu(), cpu.waveforms, atol=1e-5, rtol=1e-4)
