"""The dataset card (``README.md``) of a spatialized dataset, rendered from its ``spatialized.json``.

The template is ``model_cards/dataset_card.md`` (shipped as ``spatial_clap_hf.model_cards``),
rendered with ``huggingface_hub.DatasetCard.from_template``. Its YAML header carries the Hub
metadata, and ``configs`` names every split's Parquet files, so ``load_dataset(DIR_OR_ID,
config)`` works on the folder and on its Hub copy alike. The template receives, besides
``card_data``, these Markdown blocks: ``pretty_name``, ``summary``, ``splits_table``,
``conventions``, ``rooms``, ``audio``, ``usage``, ``source``, ``citation``; and the raw
``manifest`` and ``repo_id``.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from ..spatial.rooms import ABSORPTIONS, ROOM_X_M, ROOM_Y_M, ROOM_Z_M, room_grid

__all__ = ["DATASET_CARD_TEMPLATE", "SOURCES", "corpus_source", "render_dataset_card", "write_dataset_card"]

#: The dataset card template.
DATASET_CARD_TEMPLATE = Path(str(resources.files("spatial_clap_hf.model_cards").joinpath("dataset_card.md")))

SPATIAL_CLAP_CITATION = """@misc{seki2025spatialclap,
  title         = {Spatial-CLAP: Learning Spatially-Aware audio--text Embeddings for Multi-Source Conditions},
  author        = {Seki, Kentaro and Okamoto, Yuki and Yamaoka, Kouei and Saito, Yuki and Takamichi, Shinnosuke and Saruwatari, Hiroshi},
  year          = {2025},
  eprint        = {2509.14785},
  archivePrefix = {arXiv},
  primaryClass  = {cs.SD},
  url           = {https://arxiv.org/abs/2509.14785}
}"""

#: What the card says about each kind of source corpus: name, Hub licence id, licence text, citation.
SOURCES: dict[str, dict[str, str]] = {
    "audiocaps": {
        "name": "AudioCaps",
        "license": "other",
        "license_text": (
            "The captions are AudioCaps' (https://github.com/cdjkim/audiocaps, released there under the MIT "
            "License); the audio comes from YouTube videos indexed by AudioSet (whose annotations are CC BY 4.0), "
            "and its rights stay with the videos' uploaders. This spatialized copy carries both: check them before "
            "you redistribute it."
        ),
        "homepage": "https://audiocaps.github.io/",
        "citation": (
            "@inproceedings{kim2019audiocaps,\n  title     = {AudioCaps: Generating Captions for Audios in the Wild},\n"
            "  author    = {Kim, Chris Dongjoo and Kim, Byeongchang and Lee, Hyunmin and Kim, Gunhee},\n"
            "  booktitle = {NAACL-HLT},\n  year      = {2019}\n}"
        ),
    },
    "synthetic": {
        "name": "the synthetic corpus embedded in spatial_clap_hf",
        "license": "apache-2.0",
        "license_text": (
            "The source clips and their captions are generated procedurally by spatial_clap_hf (Apache-2.0); "
            "nothing is recorded or downloaded."
        ),
        "homepage": "",
        "citation": "",
    },
    "other": {
        "name": "",
        "license": "unknown",
        "license_text": "The licence of the source corpus applies to this spatialized copy; state it here before sharing.",
        "homepage": "",
        "citation": "",
    },
}


def corpus_source(info: Any, corpus_dir: str | os.PathLike | None = None) -> str:
    """Which of ``SOURCES`` a corpus split is: from its ``DatasetInfo`` (the AudioCaps builder's
    homepage) or the synthetic corpus' parameter file beside it; ``"other"`` otherwise."""
    if "audiocaps" in (getattr(info, "homepage", "") or "").lower():
        return "audiocaps"
    if corpus_dir is not None and (Path(corpus_dir) / "synthetic_corpus.json").is_file():
        return "synthetic"
    if "synthetic corpus" in (getattr(info, "description", "") or "").lower():
        return "synthetic"
    return "other"


def _size_category(rows: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "10M<n<100M"


def _range(values: list[float], unit: str, digits: int = 1) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f} {unit}" if lo == hi else f"{lo:.{digits}f}–{hi:.{digits}f} {unit}"


def _parts(manifest: dict) -> list[dict]:
    order = {"train": 0, "validation": 1, "test": 2}
    parts = [entry["info"] | {"params": entry["params"]} for entry in manifest["parts"].values()]
    return sorted(parts, key=lambda p: (p["config"] != "default", p["config"], order.get(p["split"], 3)))


def _configs(parts: list[dict]) -> list[dict]:
    configs: dict[str, list[dict]] = {}
    for part in parts:
        path = f"{part['data_dir']}/{part['split']}/{part['split']}-*"
        configs.setdefault(part["config"], []).append({"split": part["split"], "path": path})
    return [{"config_name": name, "data_files": files} for name, files in configs.items()]


def _splits_table(parts: list[dict]) -> str:
    lines = [
        "| config | split | rows | scenes | sources per scene | SCL | draws | rooms | audio | size |",
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for part in parts:
        params = part["params"]
        sources = params.get("num_sources") or []
        lines.append(
            f"| {part['config']} | {part['split']} | {part['rows']:,} | {part['scenes']:,} | "
            f"{', '.join(map(str, sources)) or '–'} | {'yes' if params.get('scl') else 'no'} | "
            f"{params.get('pairings', 1)} | {len(part['room_ids'])} | {part['audio_seconds'] / 3600:.2f} h | "
            f"{part['bytes'] / 1e6:.1f} MB |"
        )
    return "\n".join(lines)


def _conventions(settings: dict) -> str:
    phrases = settings["phrases"]
    sectors = ", ".join(f'"{p}"' for p in phrases)
    return (
        "- **Azimuth** `azimuth_deg` in degrees, counter-clockwise from the front of the array: 0° = front, "
        "+90° = left, −90° = right (array frame: facing +x, z up; sources at elevation 0°).\n"
        "- **Channel order**: channel 0 is the **left** microphone (+y), channel 1 the right, "
        "0.15 m apart; a source on the left reaches channel 0 first.\n"
        "- **Folding**: a stereo pair cannot tell front from back, so `folded_azimuth_deg` = asin(sin θ) ∈ "
        f"[−90°, 90°] and `doa_class` cuts the folded half-plane into {len(phrases)} equal sectors from the left "
        f"(class 0) to the right (class {len(phrases) - 1}), with the phrases {sectors}.\n"
        "- **Captions**: `caption` is each source's caption followed by the phrase of its direction, one sentence "
        "per source (\"A dog is barking on the left side. A bell rings on the right side.\"); `caption_src` the "
        "same without phrases; `source_captions`, `source_ids` and `labels` list the sources in that order.\n"
        "- **Mixtures**: n sources x_i placed with room impulse responses h_i of one room give "
        "y = (1/n) Σ_i h_i * x_i, cut to the clip length; the sources of a scene lie in distinct DoA classes.\n"
        "- **Assignments**: `assignment` σ says that source i is heard from the direction drawn for source σ(i); "
        "the identity is the drawn scene. With SCL (spatial contrastive learning) a mixture is present in all n! "
        "assignments, rows sharing its `scene_id`: the same sounds, swapped directions, each with its own caption.\n"
        "- `pairing` numbers the draws of a split (epochs of pairings); the test split has one fixed draw."
    )


def _rooms(settings: dict, parts: list[dict]) -> str:
    bank = settings["rir_bank"]
    grid = {room.room_id: room for room in room_grid()}
    c = float(bank.get("speed_of_sound", 340.0))
    lines = [
        f"Shoebox rooms of the Spatial-CLAP grid: x {ROOM_X_M[0]}–{ROOM_X_M[-1]} m, y {ROOM_Y_M[0]}–{ROOM_Y_M[-1]} m, "
        f"z {ROOM_Z_M[0]}–{ROOM_Z_M[-1]} m in 0.5 m steps, flat wall energy absorption "
        f"{' / '.join(map(str, ABSORPTIONS))} ({len(grid)} rooms), split into disjoint train, validation and test "
        f"rooms by seed {bank['seed']}; room impulse responses by the image-source method (pyroomacoustics), up to "
        f"the order that reaches each room's Sabine RT60. The array sits at the room centre; sources "
        f"{bank['distance_m']} m away at elevation {bank['elevation_deg']}°, on a {bank['azimuth_step_deg']}° "
        f"azimuth grid; {settings['sample_rate']} Hz, {settings['num_channels']} microphones. Every split uses only "
        "its own rooms:",
        "",
        "| split | rooms | dimensions x / y / z | RT60 (Sabine) |",
        "|---|---:|---|---|",
    ]
    by_split: dict[str, set[int]] = {}
    for part in parts:
        by_split.setdefault(part["split"], set()).update(part["room_ids"])
    for split, ids in by_split.items():
        rooms = [grid[i] for i in sorted(ids)]
        if not rooms:
            continue
        dims = " / ".join(_range([r.dims_m[k] for r in rooms], "m") for k in range(3))
        lines.append(f"| {split} | {len(rooms)} | {dims} | {_range([r.rt60(c) for r in rooms], 's', 2)} |")
    return "\n".join(lines)


def _audio(settings: dict, parts: list[dict]) -> str:
    bits = settings["bit_depth"]
    clipped = sum(p["clipped_rows"] for p in parts)
    return (
        f"`audio` is FLAC, {bits}-bit PCM, {settings['num_channels']} channels at {settings['sample_rate']} Hz, "
        f"{settings['clip_seconds']:g} s per row (source clips cut or zero-padded to that length before rendering). "
        f"FLAC is lossless at {bits} bits: a decoded row equals `gain` × the rendered mixture to within "
        f"2^−{bits} of full scale. `gain` is 1 unless the mixture would have clipped, then full scale over its "
        f"peak ({clipped} row{'s' if clipped != 1 else ''} here): divide `audio` by `gain` for the rendered level. "
        "Room: `room_id`, `room_dim` (x, y, z in m), "
        "`absorption`, `rt60` (Sabine, s)."
    )


def _usage(parts: list[dict], repo_id: str | None, sample_rate: int) -> str:
    first = parts[0]
    config, split = first["config"], first["split"]
    files = f"{first['data_dir']}/{split}/*.parquet"
    config_arg = "" if config == "default" else f', "{config}"'
    if repo_id:
        load = f'ds = load_dataset("{repo_id}"{config_arg}, split="{split}", streaming=True)'
        other = f'A local copy reads the same way: `load_dataset("parquet", data_files="{files}", split="{split}", streaming=True)`.'
    else:
        load = f'ds = load_dataset("parquet", data_files="{files}", split="{split}", streaming=True)  # in this folder'
        other = (
            "Uploaded to the Hub (`spatial-clap spatialize --push-to-hub user/name`), it loads as "
            f'`load_dataset("user/name"{config_arg}, split="{split}", streaming=True)`. '
            "`load_dataset` on this folder itself also reads the `configs` above, but datasets caches a folder by its "
            'name: after rebuilding it, pass `download_mode="force_redownload"`.'
        )
    return (
        "```python\n"
        "from datasets import load_dataset\n\n"
        f"{load}\n"
        "row = next(iter(ds))\n"
        'samples = row["audio"].get_all_samples()  # torchcodec AudioSamples\n'
        f"samples.data.shape                        # (2, T) float32 at samples.sample_rate = {sample_rate} Hz; channel 0 = left\n"
        'row["caption"], row["azimuth_deg"], row["doa_class"]\n'
        "```\n\n"
        f"{other} Streaming reads Parquet row groups of 100 rows. `row[\"audio\"][\"array\"]` is datasets' mono "
        "mean; `get_all_samples()` keeps both channels. None of this needs `spatial_clap_hf`; with it, "
        "`spatial_clap_hf.data.load_spatialized` and `AudioClips` read the same files."
    )


def _source(parts: list[dict]) -> tuple[str, str, str]:
    """(Hub licence id, Markdown paragraph, corpus citation) of the parts' source corpus."""
    kinds = {p["params"].get("corpus", {}).get("source", "other") for p in parts}
    kind = kinds.pop() if len(kinds) == 1 else "other"
    source = SOURCES[kind]
    names = sorted({p["params"].get("corpus", {}).get("name", "") for p in parts} - {""})
    name = source["name"] or ", ".join(names) or "the source corpus"
    skipped = sum(p["skipped_clips"] for p in parts)
    text = f"Source clips and captions: {name}"
    text += f" ({source['homepage']})." if source["homepage"] else "."
    text += f" Licence: `{source['license']}`. {source['license_text']}"
    if skipped:
        text += f" {skipped} source clip(s) were missing or did not decode and are left out (`skipped.json`)."
    return source["license"], text, source["citation"]


def render_dataset_card(directory: str | os.PathLike, *, repo_id: str | None = None) -> DatasetCard:
    """The card of the spatialized dataset in ``directory`` (from its ``spatialized.json``)."""
    manifest = json.loads((Path(directory) / "spatialized.json").read_text())
    settings, parts = manifest["settings"], _parts(manifest)
    if not parts:
        raise ValueError(f"{directory} holds no complete part; there is nothing to describe yet.")
    license_id, source, corpus_citation = _source(parts)
    evaluation = all(p["config"] != "default" for p in parts)
    pretty = "Spatial CLAP evaluation sets" if evaluation else "Spatialized audio-caption scenes"
    rows = sum(p["rows"] for p in parts)
    card_data = DatasetCardData(
        license=license_id,
        pretty_name=pretty,
        language="en",
        size_categories=_size_category(rows),
        task_categories=["audio-classification", "zero-shot-classification"],
        tags=["audio", "spatial-audio", "sound-event-localization", "audio-text", "spatial_clap_hf"],
        configs=_configs(parts),
    )
    summary = (
        f"Stereo scenes for spatially-aware audio–language models ({'the evaluation protocol of' if evaluation else 'training'} "
        "[Spatial-CLAP](https://arxiv.org/abs/2509.14785)), written by `spatial_clap_hf`: dry source clips "
        "placed in simulated shoebox rooms, each at its own direction, with captions that say what sounds and "
        f"where. {rows:,} rows in all."
    )
    citation = "```bibtex\n" + SPATIAL_CLAP_CITATION + ("\n\n" + corpus_citation if corpus_citation else "") + "\n```"
    return DatasetCard.from_template(
        card_data,
        template_path=str(DATASET_CARD_TEMPLATE),
        pretty_name=pretty,
        summary=summary,
        splits_table=_splits_table(parts),
        conventions=_conventions(settings),
        rooms=_rooms(settings, parts),
        audio=_audio(settings, parts),
        usage=_usage(parts, repo_id, settings["sample_rate"]),
        source=source,
        citation=citation,
        manifest=manifest,
        repo_id=repo_id,
    )


def write_dataset_card(directory: str | os.PathLike, *, repo_id: str | None = None) -> Path:
    """Render the card into ``<directory>/README.md`` (written under a temporary name, then renamed)."""
    path = Path(directory) / "README.md"
    tmp = path.with_name(f".tmp-README-{os.getpid()}.md")
    render_dataset_card(directory, repo_id=repo_id).save(tmp)
    os.replace(tmp, path)
    return path
