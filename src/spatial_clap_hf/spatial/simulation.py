"""Room impulse responses by image-source simulation, and a worker pool to simulate many rooms.

Simulation (pyroomacoustics): a shoebox room of ``rooms.room_grid()``, flat wall energy
absorption (``Material(energy_absorption=r)``), image-source order from the room's Sabine RT60
(``RoomSpec.max_order``), no ray tracing, no air absorption, no randomised image sources, so a
simulation is deterministic. The array sits at the room centre; a source is ``distance_m``
from the array centre at ``elevation_deg`` (0 = array height) and ``azimuth_deg``
(array frame of ``conventions``). RIRs are float32 arrays shaped (channels, samples); the
channels of one RIR are zero-padded to a common length.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .geometry import as_mic_positions, source_position, stereo_pair
from .rooms import SPEED_OF_SOUND, RoomSpec

__all__ = ["run_in_workers", "schroeder_rt60", "simulate_rirs"]


def simulate_rirs(
    room: RoomSpec,
    azimuths_deg: Sequence[float],
    *,
    mic_positions: np.ndarray | Sequence[Sequence[float]] | None = None,
    distance_m: float = 2.0,
    elevation_deg: float = 0.0,
    sample_rate: int,
    speed_of_sound: float = SPEED_OF_SOUND,
) -> list[np.ndarray]:
    """Simulate one RIR per azimuth in ``room`` with the array at the room centre.

    ``mic_positions``: (num_mics, 3) metres relative to the array centre (default: the stereo
    pair). Returns float32 arrays shaped (num_mics, samples) at ``sample_rate`` Hz, one per
    azimuth (lengths differ with the image-source distances).
    """
    import pyroomacoustics as pra

    mics = as_mic_positions(stereo_pair() if mic_positions is None else mic_positions)
    centre = room.centre_m
    order = room.max_order(speed_of_sound)
    out = []
    for azimuth in azimuths_deg:
        source = centre + source_position(azimuth, elevation_deg, distance_m)
        positions = centre + mics
        for name, point in (("source", source[None]), ("microphone", positions)):
            if np.any(point <= 0) or np.any(point >= np.asarray(room.dims_m)):
                raise ValueError(
                    f"The {name} at {np.round(point, 3).tolist()} m lies outside room {room.room_id} "
                    f"{room.dims_m} m; reduce distance_m or the array size."
                )
        shoebox = pra.ShoeBox(
            list(room.dims_m),
            fs=sample_rate,
            materials=pra.Material(float(room.absorption)),
            max_order=order,
            air_absorption=False,
            ray_tracing=False,
            use_rand_ism=False,
        )
        shoebox.set_sound_speed(float(speed_of_sound))
        shoebox.add_source(source)
        shoebox.add_microphone_array(positions.T)
        shoebox.compute_rir()
        channels = [np.asarray(shoebox.rir[m][0], dtype=np.float32) for m in range(len(mics))]
        rir = np.zeros((len(mics), max(len(c) for c in channels)), dtype=np.float32)
        for m, channel in enumerate(channels):
            rir[m, : len(channel)] = channel
        out.append(rir)
    return out


def schroeder_rt60(rir: np.ndarray, sample_rate: int, *, decay_db: float = 20.0, start_db: float = -5.0) -> float:
    """Reverberation time (s) of a mono RIR (samples,) from Schroeder backward integration.

    A line is fitted to the energy decay curve between ``start_db`` and ``start_db − decay_db``
    (T20 by default, T30 with ``decay_db=30``) and extrapolated to 60 dB.
    """
    h = np.asarray(rir, dtype=np.float64)
    if h.ndim != 1 or h.size < 2:
        raise ValueError(f"schroeder_rt60 needs a mono RIR shaped (samples,), got shape {h.shape}.")
    energy = np.cumsum(h[::-1] ** 2)[::-1]
    if energy[0] <= 0:
        raise ValueError("The RIR is all zeros; its reverberation time is undefined.")
    edc_db = 10.0 * np.log10(np.maximum(energy / energy[0], 1e-30))
    stop_db = start_db - decay_db
    if edc_db[-1] > stop_db:
        raise ValueError(f"The RIR decays only {-edc_db[-1]:.1f} dB; need {-stop_db:.0f} dB for this fit.")
    i0, i1 = int(np.argmax(edc_db <= start_db)), int(np.argmax(edc_db <= stop_db))
    t = np.arange(h.size) / sample_rate
    slope = np.polyfit(t[i0 : i1 + 1], edc_db[i0 : i1 + 1], 1)[0]
    return float(-60.0 / slope)


_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _worker_init() -> None:
    """Pool initializer: one thread per worker process."""
    for name in _THREAD_ENV:
        os.environ[name] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@contextlib.contextmanager
def _single_threaded_env() -> Iterator[None]:
    """Set one-thread limits in the environment inherited by spawned workers, then restore it."""
    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update({k: "1" for k in _THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _start_method(requested: str | None) -> str:
    """``fork`` where available (workers start at once, without re-importing the package);
    ``spawn`` otherwise. Workers run simulations (pyroomacoustics/numpy), never torch or CUDA."""
    methods = multiprocessing.get_all_start_methods()
    if requested is not None:
        if requested not in methods:
            raise ValueError(f"Start method {requested!r} is not available here; use one of {methods}.")
        return requested
    return "fork" if "fork" in methods else "spawn"


def run_in_workers(
    fn: Callable[[Any], Any], tasks: Sequence[Any], *, num_workers: int, start_method: str | None = None
) -> Iterator[Any]:
    """Yield ``fn(task)`` for every task, in completion order.

    ``num_workers`` > 1 runs them in that many worker processes of one thread each
    (``start_method`` "fork" by default where available, else "spawn" — with spawn, call from
    under ``if __name__ == "__main__":``); 0 or 1 runs them here, in order. ``fn`` must be a
    module-level function. A worker that dies raises ``BrokenProcessPool`` instead of hanging.
    """
    if num_workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield fn(task)
        return
    context = multiprocessing.get_context(_start_method(start_method))
    workers = min(num_workers, len(tasks))
    with _single_threaded_env(), ProcessPoolExecutor(workers, context, initializer=_worker_init) as pool:
        futures = [pool.submit(fn, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
