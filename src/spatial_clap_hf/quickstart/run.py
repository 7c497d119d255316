"""The main job end to end on one CPU: data, both pretrainings, the four Table-1 variants, evaluation.

``run_quickstart(output_dir)`` builds everything it needs from nothing (no download):

1. the embedded synthetic corpus and an RIR bank subset (train, validation and test rooms);
2. evaluation sets from the test rooms (``<output_dir>/eval``);
3. the trainings of the recipe (``recipes/quickstart.yaml``): stage 1, the SELDnet spatial
   encoder pretrained with the SELD objective and another with the DoA objective; stage 2, the
   four variants of the paper's Table 1 — none (mono), DoA, SELD, SELD+SCL;
4. the Table-1 evaluation of the recipe's report stages (``report.json``, ``report.md``,
   ``embeddings_pca.png``) and ``<output_dir>/model``: the recipe's final model with its processor.

Every step reuses what an earlier (or interrupted) run already finished in ``output_dir``.
The trainings run in worker processes of one thread each, two at a time, each as soon as
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

from ..data.eval_sets import build_eval_sets
from ..data.spatialized import MANIFEST_FILE, DatasetSettingsError
from ..data.synthetic import make_synthetic_corpus
from ..spatial.rir_bank import RirBank, RirBankConfig
from ..training import TrainConfig, latest_checkpoint, train
from .recipe import QuickstartRecipe, load_recipe

__all__ = ["QuickstartSettings", "run_quickstart"]

logger = logging.getLogger(__name__)


@dataclass
class QuickstartSettings:
    """What the quickstart runs besides its trainings: data and evaluation-set sizes, parallelism,
    and the recipe of the trainings (``None``: the packaged ``recipes/quickstart.yaml``)."""

    seed: int = 0
    clip_seconds: float = 1.0
    n_train: int = 1360
    n_validation: int = 170
    n_test: int = 340
    # Rooms of the RIR bank per split (an int: the same for every split).
    rooms_per_split: int | dict[str, int] = field(
        default_factory=lambda: {"train": 24, "validation": 6, "test": 6}
    )
    azimuth_step_deg: int = 5
    # Worker processes of the RIR simulation and of rendering the evaluation sets.
    rir_workers: int = 2
    # Trainings side by side, with torch threads each. With one thread each a training computes
    # the same whatever runs beside it; 1 runs them one after the other in this process, with the
    # same threads, so the results do not depend on parallel_trainings.
    parallel_trainings: int = 2
    threads_per_training: int = 1
    n_doa: int = 400
    n_doa_val: int = 200
    n_assignment2: int = 300
    n_assignment3: int = 200
    n_retrieval: int = 300
    recipe: str | None = None

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
    """One training of the quickstart; it starts once the trainings named in ``after`` are done
    (it reads their models)."""

    key: str
    title: str
    output_dir: Path
    config: TrainConfig
    after: tuple[str, ...] = ()


def _train(training: _Training, position: int | None = None) -> Path:
    """Run one training (in this process or a worker); returns its model directory."""
    resume = latest_checkpoint(training.output_dir) is not None
    result = train(training.config, resume=resume, progress_label=training.key, progress_position=position)
    if result.model_dir is None:
        raise RuntimeError(
            f"Training in {training.output_dir} was interrupted; run the quickstart again to resume it."
        )
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
                done[training.key] = _announce(training) or _train(training)
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
                running[pool.submit(_train, training, slot)] = (training, start, slot)
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


def _trainings(settings: QuickstartSettings, recipe: QuickstartRecipe, out: Path) -> list[_Training]:
    """The recipe's stages as trainings on this run's data, in the recipe's order."""
    run_values = {
        "seed": settings.seed,
        "data": {
            "corpus": str(out / "corpus"),
            "rirs": str(out / "rirs"),
            "clip_seconds": settings.clip_seconds,
        },
        # The processor pads and cuts to the clip length the model was trained on.
        "model": {"overrides": {"max_length_s": settings.clip_seconds}},
    }
    outputs = {stage.name: stage.output for stage in recipe.stages}
    trainings = []
    for stage in recipe.stages:
        config = stage.config(out, run_values, outputs)
        step = "4/6" if config.stage == "spatial" else "5/6"
        trainings.append(
            _Training(stage.name, f"{step} {stage.title}", stage.output_dir(out), config, stage.after)
        )
    _check_order(trainings)
    return trainings


def _evaluation_sets(settings: QuickstartSettings, corpus: Any, bank: RirBank, out: Path) -> dict:
    """The evaluation sets in ``<out>/eval``: complete sets with the same parameters are reused;
    sets of an earlier format or built with other settings (e.g. another bit depth) are rebuilt."""
    eval_dir = out / "eval"
    if (eval_dir / "eval_sets.json").is_file() and not (eval_dir / MANIFEST_FILE).is_file():
        # Sets of an earlier version (one save_to_disk folder per set).
        logger.warning("Replacing the evaluation sets in %s (an earlier format) with spatialized ones.", eval_dir)
        shutil.rmtree(eval_dir)
    args = dict(
        n_doa=settings.n_doa,
        n_doa_val=settings.n_doa_val,
        n_assignment2=settings.n_assignment2,
        n_assignment3=settings.n_assignment3,
        n_retrieval=settings.n_retrieval,
        seed=settings.seed,
        clip_seconds=settings.clip_seconds,
        num_proc=settings.rir_workers,
        corpus_name=out / "corpus",
    )
    try:
        return build_eval_sets(corpus, bank, eval_dir, **args)
    except DatasetSettingsError as err:
        logger.warning("Replacing the evaluation sets in %s: %s", eval_dir, err)
        shutil.rmtree(eval_dir)
        return build_eval_sets(corpus, bank, eval_dir, **args)


def _card_with_results(model_dir: Path, training: _Training, report: dict) -> None:
    """Rewrite the final model's card with its row of report.json (the card's table and model-index)."""
    from ..hub import write_model_card
    from ..models.spatial_clap.configuration_spatial_clap import SpatialClapConfig
    from ..training.tasks import card_sources, describe_training

    rows = [row for row in report["rows"] if row["model"] == training.key]
    write_model_card(
        model_dir,
        SpatialClapConfig.from_pretrained(model_dir),
        training_description=describe_training(training.config),
        eval_row=rows[0] if rows else None,
        eval_dataset="quickstart evaluation sets (embedded synthetic corpus, test rooms)",
        **card_sources(training.config),
    )


def run_quickstart(output_dir: str | Path, settings: QuickstartSettings | None = None) -> dict:
    """Run the quickstart into ``output_dir``; returns the evaluation report (report.json's dict).

    With ``settings.parallel_trainings`` > 1 the trainings run in spawned worker processes, which
    import the calling script again: call this under ``if __name__ == "__main__":`` in a script
    (the ``spatial-clap quickstart`` command does).
    """
    from ..evaluation import run_evaluation  # evaluation is only needed at the end

    settings = settings or QuickstartSettings()
    started = time.perf_counter()
    out = Path(output_dir)
    recipe = load_recipe(settings.recipe)
    trainings = _trainings(settings, recipe, out)  # every config checked before any work
    out.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []

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
        "2/6 room impulse responses (train, validation and test rooms)",
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
    _stage(
        "3/6 evaluation sets (test rooms; validation rooms for the probe)",
        lambda: _evaluation_sets(settings, corpus, bank, out),
        log,
    )

    trained = _run_trainings(settings, trainings, log)
    models = {name: trained[name] for name in recipe.report}
    report = _stage(
        "6/6 evaluation (Table 1)",
        lambda: run_evaluation(list(models.values()), eval_dir, out, names=list(models)),
        log,
    )
    final = out / "model"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(trained[recipe.final_model], final)
    _card_with_results(final, next(t for t in trainings if t.key == recipe.final_model), report)
    # Stage times overlap where trainings ran side by side; the wall time is their span.
    summary = {"settings": settings.to_dict(), "stages": log, "wall_seconds": round(time.perf_counter() - started, 1)}
    (out / "quickstart.json").write_text(json.dumps(summary, indent=1))
    return report
