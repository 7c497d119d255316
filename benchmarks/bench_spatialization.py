"""Spatialization and RIR-simulation throughput on this machine.

Prints, from one run:
  1. spatialized clip-seconds per second: a per-clip ``scipy.signal.fftconvolve`` loop (the
     baseline), the batched torch FFT with each batch's RIR spectra computed afresh
     (``spatializer.convolve``), and with the RIR spectra computed once and kept, as the
     ``Spatializer`` does (``spatializer.mix_spectra``); each path's ratio to the baseline;
  2. RIRs per second: ``RirBank.build`` with K worker processes vs one process, and their ratio.

Run:  python benchmarks/bench_spatialization.py [--clips 32 --clip-seconds 10 --workers 2 ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import datasets  # noqa: F401  (imported before timing: import cost is not simulation cost)
import numpy as np
import pyroomacoustics  # noqa: F401
import scipy.signal
import torch

from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig
from spatial_clap_hf.spatial.simulation import simulate_rirs
from spatial_clap_hf.spatial.rooms import split_rooms
from spatial_clap_hf.spatial.spatializer import convolve, fft_size, mix_spectra

from _timing import median_seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32, help="clips per batch (default 32)")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="sample rate in Hz (default 16000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default 3)")
    parser.add_argument("--device", default="cpu", help="torch device for the batched path (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, like scipy)")
    parser.add_argument("--workers", type=int, default=2, help="K worker processes for the RIR build (default 2)")
    parser.add_argument("--rooms", type=int, default=6, help="rooms simulated per RIR build (default 6)")
    parser.add_argument("--azimuth-step", type=int, default=10, help="azimuth step in degrees (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def bench_convolution(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    room = split_rooms(args.seed)["train"][0]
    azimuths = rng.choice(np.arange(0, 91), size=min(args.clips, 8), replace=False)
    base = simulate_rirs(room, azimuths.tolist(), sample_rate=args.sample_rate)
    length = max(r.shape[1] for r in base)
    rirs = np.zeros((args.clips, base[0].shape[0], length), dtype=np.float32)
    for i in range(args.clips):
        r = base[i % len(base)]
        rirs[i, :, : r.shape[1]] = r
    samples = int(args.clip_seconds * args.sample_rate)
    clips = rng.standard_normal((args.clips, samples)).astype(np.float32)
    device = torch.device(args.device)
    clips_t, rirs_t = torch.from_numpy(clips).to(device), torch.from_numpy(rirs).to(device)

    def torch_batched():
        convolve(clips_t, rirs_t)
        if device.type == "cuda":
            torch.cuda.synchronize()

    taps = min(length, samples)  # as the Spatializer: later taps reach only the cut-off tail
    nfft = fft_size(samples + taps - 1)
    spectra = torch.fft.rfft(rirs_t[..., :taps], n=nfft)[:, None]  # computed once, as the Spatializer keeps them

    def torch_kept_spectra():
        mix_spectra(clips_t[:, None], spectra, [(0,)], nfft)
        if device.type == "cuda":
            torch.cuda.synchronize()

    def scipy_per_clip():
        for i in range(args.clips):
            scipy.signal.fftconvolve(clips[i][None], rirs[i], axes=-1)[:, :samples]

    audio_seconds = args.clips * args.clip_seconds
    t_scipy = median_seconds(scipy_per_clip, args.repeats)
    t_torch = median_seconds(torch_batched, args.repeats)
    t_kept = median_seconds(torch_kept_spectra, args.repeats)
    print(
        f"[convolution] {args.clips} clips x {args.clip_seconds:g} s at {args.sample_rate} Hz, "
        f"stereo RIRs of {length} samples, torch threads={torch.get_num_threads()}, device={device}"
    )
    for name, seconds in (("scipy per clip", t_scipy), ("torch batched", t_torch), ("torch, kept spectra", t_kept)):
        print(
            f"  {name:<20}: {audio_seconds / seconds:10.1f} clip-s/s  ({seconds * 1000:.1f} ms per batch, "
            f"{t_scipy / seconds:.2f}x the scipy loop)"
        )


def bench_rir_build(args: argparse.Namespace) -> None:
    config = RirBankConfig(seed=args.seed, max_rooms_per_split=args.rooms, azimuth_step_deg=args.azimuth_step)
    n_rirs = args.rooms * len(config.simulated_azimuths())
    timings = {}
    for workers in (1, args.workers):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            RirBank.build(tmp, config, splits=["train"], num_workers=workers, show_progress=False)
            timings[workers] = time.perf_counter() - start
    print(
        f"[RIR simulation] {args.rooms} rooms x {len(config.simulated_azimuths())} stored azimuths = {n_rirs} "
        "stereo RIRs (pyroomacoustics, Sabine max_order), RirBank.build incl. writing"
    )
    print(f"  serial (1 process) : {n_rirs / timings[1]:8.1f} RIR/s  ({timings[1]:.2f} s)")
    print(f"  K={args.workers} workers       : {n_rirs / timings[args.workers]:8.1f} RIR/s  ({timings[args.workers]:.2f} s)")
    print(f"  ratio K/serial     : {timings[1] / timings[args.workers]:.2f}x")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    bench_convolution(args)
    bench_rir_build(args)
    print(f"[total] {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
