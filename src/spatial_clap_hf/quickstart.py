"""The main job end to end on one CPU: data, both pretrainings, the four Table-1 variants, evaluation.

``run_quickstart(output_dir)`` builds everything it needs from nothing (no download):

1. the embedded synthetic corpus and an RIR bank subset (train, val and test rooms);
2. evaluation sets from the test rooms (``<output_dir>/eval``);
3. stage 1: the SELDnet spatial encoder pretrained with the SELD objective, and another
   with the DoA objective;
4. stage 2: the four variants of the paper's Table 1 — none (mono), DoA, SELD, SELD+SCL;
5. the Table-1 evaluation of all four (``report.json``, ``report.md``, ``embeddings_pca.png``)
   and ``<output_dir>/model``: the SELD+SCL model with its processor.

Every step reuses what an earlier (or interrupted) run already finished in ``output_dir``.
The six trainings run in worker processes of one thread each, two at a time, each as soon as
the trainings it starts from are done (one-thread trainings side by side get more done on a
2-core CPU than one two-thread training after the other).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .data.eval_sets import build_eval_sets
from .data.synthetic import make_synthetic_corpus
from .spatial.rir_bank import RirBank, RirBankConfig
from .training import latest_checkpoint, load_config, train

__all__ = ["QuickstartSettings", "VARIANTS", "run_quickstart"]

logger = logging.getLogger(__name__)

#: Table-1 variants: name → (spatial encoder, SCL).
VARIANTS: dict[str, tuple[str, bool]] = {
    "none": ("none", False),
    "doa": ("doa", False),
    "seld": ("seld", False),
    "seld_scl": ("seld", True),
}


def _schedule(*, lr: float, steps: int) -> dict[str, Any]:
    """Training overrides shared by every quickstart stage: the paper's batch composition
    (16 single + 8 two-source scenes from 32 clips), 20 warm-up steps, ``steps`` in all."""
    return {
        "batch.n_single": 16,
        "batch.n_mix2": 8,
        "optim.lr": lr,
        "optim.warmup_steps": 20,
        "optim.max_steps": steps,
        "optim.epochs": 1000,
    }


@dataclass
class QuickstartSettings:
    """Sizes and schedules of the quickstart (chosen on validation rooms only)."""

    seed: int = 0
    clip_seconds: float = 1.0
    n_train: int = 1360
    n_validation: int = 170
    n_test: int = 340
    # Rooms of the RIR bank per split (an int: the same for every split). 24 train rooms instead
    # of 6 for the encoder to generalise from (about 10 s more of RIR simulation; validation
    # rooms, SELD+SCL with three-source mixtures: DoA / assignment / three sources 92.7 / 85.5 /
    # 41 % → 92 / 87 / 43.7 %).
    rooms_per_split: int | dict[str, int] = field(
        default_factory=lambda: {"train": 24, "validation": 6, "test": 6}
    )
    azimuth_step_deg: int = 5
    rir_workers: int = 2
    # Trainings run side by side, and torch threads each. 60 SELD+SCL steps: one two-thread run
    # 22 s; two one-thread runs side by side 26-27 s each, about 1.6x the throughput. Two at a
    # time, the SELD pretraining (which SELD and SELD+SCL wait for) shares the CPU with one
    # training rather than two (two-source batches: 12 min 53 s in all, against 14 min 25 s
    # three at a time; with 600 SELD steps three at a time had been faster, 13 min 24 s against
    # 14 min 35 s).
    # With one thread each, a training computes the same whatever runs beside it (both runs
    # wrote the same report byte for byte). 1 runs them one after the other in this process,
    # with the same threads, so the results do not depend on parallel_trainings.
    parallel_trainings: int = 2
    threads_per_training: int = 1
    n_doa: int = 400
    n_doa_val: int = 200
    n_assignment2: int = 300
    n_assignment3: int = 200
    n_retrieval: int = 300
    preset: str = "tiny"
    # A wider SELDnet than the test-sized preset: 4 frequency bands × 32 filters into the GRU,
    # positives of the 17-class SED weighted (plain BCE stalls on "nothing active"), and the
    # DoA loss weighted up so the shared layers learn direction too (validation rooms, 300
    # steps, DoA class / SED accuracy: weight 1 → 25 % / 69 %, 5 → 77 % / 31 %, 10 → 85 % / 27 %).
    #
    # Binding (which sound is where) needs both towers to keep each source's description with its
    # direction (validation rooms, SELD+SCL, 400 steps): captions are embedded sentence by
    # sentence (``text_pooling="sentence"``; with mean pooling, captions that differ only in
    # who-is-where embed at cosine 0.998 and assignment stayed at chance, 49 %, → 57.5 %), and
    # the fusion also reads the SELD heads' class × direction map (``spatial_readout_bins``:
    # zero-shot DoA 78.5 → 86 %, content-only T2A R@1 9.8 → 16 %).
    model_overrides: dict[str, Any] = field(
        default_factory=lambda: {
            "spatial_config": {
                "conv_filters": [32, 32, 32],
                "frequency_pool_sizes": [4, 4, 4],
                "gru_hidden_size": 64,
                "head_hidden_size": 64,
                "sed_pos_weight": "balanced",
                "doa_loss_weight": 5.0,
            },
            "text_pooling": "sentence",
            "spatial_readout_bins": 8,
            # ... and each class's mean predicted DoA with its square, so that the distance to a
            # caption's direction is linear in the features (the map scores direction by bin
            # overlap, flat beyond one bin). Scoring straight from the frozen heads with the true
            # classes, three-source assignment 44 → 50 %; SELD+SCL, 800 steps, 128-d: DoA
            # 92.5 → 93.5 %, assignment 77 → 78.5 %, three-source 27 → 32 %, T2A R@1 62.5 → 69.6 %.
            "spatial_readout_mean_doa": True,
            # A 128-d joint space (the tiny preset has 32): room for the class × direction pairs
            # next to content (SELD+SCL, validation rooms, 800 steps: DoA 91.5 → 92.5 %,
            # assignment 74.5 → 77 %, three-source 26 → 27 %, T2A R@1 56 → 62.5 %).
            "projection_dim": 128,
            "fusion_hidden_size": 128,
            # Log-mel STFT in float32: the model is trained from scratch here, and the float64
            # STFT was a fifth of a stage-2 step (73 → 23 ms for a 40-clip batch).
            "mel_float64": False,
        }
    )
    # SELD pretraining gets seven times the DoA pretraining's steps: classes and per-class
    # direction share the small encoder, and binding rests on its per-class direction where
    # sources overlap (validation rooms, 600 → 1000 → 1400 steps: single-source SED 55 → 70 →
    # 80.5 %; two-source scenes whose assignment the frozen heads get right with the true
    # classes 80.5 → 86 → 90.5 %); one direction per clip is learnt faster. Its targets are
    # frame-level (a class counts as active, and its DoA is learnt, where its source is heard):
    # with the readout, SELD+SCL assignment 58.5 → 67 %.
    spatial: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "seld": {**_schedule(lr=2e-3, steps=1400), "seld_frame_activity_db": -30.0},
            "doa": _schedule(lr=2e-3, steps=200),
        }
    )
    contrastive: dict[str, Any] = field(default_factory=lambda: _schedule(lr=1e-3, steps=250))
    # The spatial variants start their source and text towers from the trained mono model and
    # learn direction and binding on top (content is kept, and compute goes to what is new).
    # Twelve single-source clips per batch also appear at a second direction: the pairs only
    # direction tells apart (SELD+SCL, validation rooms: zero-shot DoA 73 → 78.5 % with eight).
    # Two three-source mixtures per batch (six assignments each with SCL): the scenes of the
    # three-source task, whose binding two-source training did not teach (SELD+SCL, validation
    # rooms, DoA / assignment / three sources: none 93.2 / 86.3 / 34.7 %, one 92.7 / 85.5 / 41 %;
    # with 24 train rooms, two 91.5 / 88.2 / 45 % (seed 1: 90.7 / 86.5 / 42 %), and with twelve
    # twins instead of eight, which win back the DoA, 93.2 / 87.5 / 41.3 %).
    # Steps go where binding is learnt best: SELD+SCL on validation rooms (128-d, mean-DoA
    # readout), assignment / three-source assignment / DoA: 600 SELD + 1100 stage-2 steps
    # 82 / 33 / 92 %, 600 + 1300: 85.5 / 36 / 92.5 %, 1400 + 700: 84 / 40 / 92.5 % (two-source
    # batches). With the larger batches, 700 stage-2 steps took 14 min 53 s in all, too close
    # to 15 minutes, and 600 take 14 min 18 s (validation, DoA / assignment / three sources,
    # seeds 0 / 1: 94 / 86 / 40.7 % and 93 / 85.5 / 36.7 %, against 93.2 / 87.5 / 41.3 % for 700).
    spatial_variant: dict[str, Any] = field(
        default_factory=lambda: {"optim.max_steps": 600, "batch.direction_twins": 12, "batch.n_mix3": 2}
    )
    # Towers the spatial variants keep as they come: the pretrained spatial encoder (fine-tuning
    # it at the contrastive learning rate blurred its direction) and the mono model's source
    # tower (content is kept, and without their backward passes a step costs about 40 % less).
    frozen_towers: tuple[str, ...] = ("spatial", "source")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _stage(name: str, fn: Callable[[], Any], log: list[dict]) -> Any:
    start = time.perf_counter()
    print(f"\n== {name}", flush=True)
    result = fn()
    _done(name, start, log)
    return result


def _done(name: str, start: float, log: list[dict]) -> None:
    seconds = time.perf_counter() - start
    log.append({"stage": name, "seconds": round(seconds, 1)})
    print(f"== {name}: done in {seconds:.0f} s", flush=True)


@dataclass(frozen=True)
class _Training:
    """One training of the quickstart: ``values`` override the shared base config; it starts
    once the trainings named in ``after`` are done (it reads their models)."""

    key: str
    title: str
    output_dir: Path
    values: dict[str, Any]
    after: tuple[str, ...] = ()


def _train(settings: QuickstartSettings, training: _Training, position: int | None = None) -> Path:
    """Run one training (in this process or a worker); returns its model directory."""
    output_dir = training.output_dir
    base = {
        "output_dir": str(output_dir),
        "seed": settings.seed,
        "model.preset": settings.preset,
        # The processor pads and cuts to the clip length the model was trained on (the preset's
        # 4 s would zero-pad every 1 s clip at evaluation: validation SELD+SCL DoA 85 → 87.5 %
        # with 1 s, at half the evaluation time).
        "model.overrides": {**settings.model_overrides, "max_length_s": settings.clip_seconds},
        "data.clip_seconds": settings.clip_seconds,
        "save_every": 100,
        "log_with": [],
    }
    config = load_config(None, {**base, **training.values})
    resume = latest_checkpoint(output_dir) is not None
    result = train(config, resume=resume, progress_label=training.key, progress_position=position)
    if result.model_dir is None:
        raise RuntimeError(f"Training in {output_dir} was interrupted; run the quickstart again to resume it.")
    return result.model_dir


def _set_threads(threads: int) -> int:
    """Set torch's intra-op threads in this process; returns the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


def _existing_model(training: _Training) -> Path | None:
    """The training's model directory if an earlier run finished it."""
    model_dir = training.output_dir / "model"
    return model_dir if (model_dir / "config.json").is_file() else None


def _announce(training: _Training) -> Path | None:
    """Print the training's title and what it starts from; its model directory if it already exists."""
    print(f"\n== {training.title}", flush=True)
    model_dir = _existing_model(training)
    if model_dir is not None:
        print(f"   reusing {model_dir}", flush=True)
        return model_dir
    checkpoint = latest_checkpoint(training.output_dir)
    if checkpoint is not None:
        print(f"   resuming from {checkpoint}", flush=True)
    return None


def _run_trainings(settings: QuickstartSettings, trainings: list[_Training], log: list[dict]) -> dict[str, Path]:
    """Run ``trainings`` (listed so that each comes after those it needs); returns key → model dir.

    Each runs with ``settings.threads_per_training`` torch threads. With
    ``settings.parallel_trainings`` > 1 they run in that many spawned worker processes, each as
    soon as its ``after`` trainings are done, earlier-listed first; otherwise one after the other
    in this process.
    """
    _check_order(trainings)
    done: dict[str, Path] = {}
    if settings.parallel_trainings <= 1:
        previous = _set_threads(settings.threads_per_training)
        try:
            for training in trainings:
                start = time.perf_counter()
                done[training.key] = _announce(training) or _train(settings, training)
                _done(training.title, start, log)
        finally:
            _set_threads(previous)
        return done
    pending = list(trainings)
    running: dict[Future, tuple[_Training, float, int]] = {}
    free_slots = list(range(settings.parallel_trainings))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        settings.parallel_trainings, mp_context=context, initializer=_set_threads,
        initargs=(settings.threads_per_training,),
    ) as pool:
        while pending or running:
            ready = [t for t in pending if all(key in done for key in t.after)]
            for training in ready:
                if not free_slots and _existing_model(training) is None:
                    continue
                pending.remove(training)
                start = time.perf_counter()
                reused = _announce(training)
                if reused is not None:
                    done[training.key] = reused
                    _done(training.title, start, log)
                    continue
                slot = free_slots.pop(0)
                running[pool.submit(_train, settings, training, slot)] = (training, start, slot)
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                training, start, slot = running.pop(future)
                done[training.key] = future.result()
                free_slots.append(slot)
                _done(training.title, start, log)
    return done


def _check_order(trainings: list[_Training]) -> None:
    """Raise if a training waits for one that is not listed before it (it would never start)."""
    seen: set[str] = set()
    for training in trainings:
        missing = [key for key in training.after if key not in seen]
        if missing:
            raise ValueError(f"Training {training.key!r} waits for {missing}, which are not listed before it.")
        seen.add(training.key)


def _trainings(settings: QuickstartSettings, out: Path, data: dict[str, str]) -> list[_Training]:
    """Both pretrainings, the mono model and the spatial variants, longest first where it helps:
    the SELD pretraining and SELD+SCL sit on the critical path."""
    pretrain = {
        objective: _Training(
            f"pretrain_{objective}",
            f"4/6 spatial encoder pretraining ({objective.upper()} objective)",
            out / "pretrain" / objective,
            {**data, "stage": "spatial", "objective": objective, **settings.spatial[objective]},
        )
        for objective in ("seld", "doa")
    }
    none = _Training(
        "none",
        "5/6 contrastive training: none (mono)",
        out / "variants" / "none",
        {**data, "model.spatial_encoder": "none", **settings.contrastive},
    )
    variants = []
    for name, (encoder, scl) in VARIANTS.items():
        if name == "none":
            continue
        values = {
            **data,
            "model.spatial_encoder": encoder,
            "model.spatial_model": str(pretrain[encoder].output_dir / "model"),
            "model.init_from": str(none.output_dir / "model"),
            "batch.scl": scl,
            **{f"model.freeze_{tower}": True for tower in settings.frozen_towers},
            **settings.contrastive,
            **settings.spatial_variant,
        }
        variants.append(
            _Training(
                name, f"5/6 contrastive training: {name}", out / "variants" / name, values, (f"pretrain_{encoder}", "none")
            )
        )
    variants.sort(key=lambda t: not VARIANTS[t.key][1])  # SELD+SCL, the longest, first
    return [pretrain["seld"], pretrain["doa"], none, *variants]


def run_quickstart(output_dir: str | Path, settings: QuickstartSettings | None = None) -> dict:
    """Run the quickstart into ``output_dir``; returns the evaluation report (report.json's dict).

    With ``settings.parallel_trainings`` > 1 the trainings run in spawned worker processes, which
    import the calling script again: call this under ``if __name__ == "__main__":`` in a script
    (the ``spatial-clap quickstart`` command does).
    """
    from .evaluation import run_evaluation  # evaluation is only needed at the end

    settings = settings or QuickstartSettings()
    started = time.perf_counter()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    data = {"data.corpus": str(out / "corpus"), "data.rirs": str(out / "rirs")}

    corpus = _stage(
        "1/6 synthetic corpus",
        lambda: make_synthetic_corpus(
            n_train=settings.n_train,
            n_validation=settings.n_validation,
            n_test=settings.n_test,
            clip_seconds=settings.clip_seconds,
            seed=settings.seed,
            output_dir=out / "corpus",
        ),
        log,
    )
    bank = _stage(
        "2/6 room impulse responses (train, val and test rooms)",
        lambda: RirBank.build(
            out / "rirs",
            RirBankConfig(
                seed=settings.seed,
                max_rooms_per_split=settings.rooms_per_split,
                azimuth_step_deg=settings.azimuth_step_deg,
            ),
            num_workers=settings.rir_workers,
        ),
        log,
    )
    eval_dir = out / "eval"
    if not (eval_dir / "eval_sets.json").is_file():
        _stage(
            "3/6 evaluation sets (test rooms; validation rooms for the probe)",
            lambda: build_eval_sets(
                corpus,
                bank,
                eval_dir,
                n_doa=settings.n_doa,
                n_doa_val=settings.n_doa_val,
                n_assignment2=settings.n_assignment2,
                n_assignment3=settings.n_assignment3,
                n_retrieval=settings.n_retrieval,
                seed=settings.seed,
                clip_seconds=settings.clip_seconds,
            ),
            log,
        )

    trained = _run_trainings(settings, _trainings(settings, out, data), log)
    models: dict[str, Path] = {name: trained[name] for name in VARIANTS}

    report = _stage(
        "6/6 evaluation (Table 1)",
        lambda: run_evaluation(list(models.values()), eval_dir, out, names=list(models)),
        log,
    )
    final = out / "model"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(models["seld_scl"], final)
    # Stage times overlap where trainings ran side by side; the wall time is their span.
    summary = {"settings": settings.to_dict(), "stages": log, "wall_seconds": round(time.perf_counter() - started, 1)}
    (out / "quickstart.json").write_text(json.dumps(summary, indent=1))
    return report
