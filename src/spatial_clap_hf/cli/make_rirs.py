"""``spatial-clap make-rirs``: simulate (or reuse) the RIR bank of the paper's room grid."""

from __future__ import annotations

import argparse
import logging

from ..spatial.rooms import SPLITS, canonical_split


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-rirs",
        help="Simulate the RIR bank (shoebox rooms, pyroomacoustics) into a directory.",
        description=(
            "Simulate room impulse responses for the seeded train/validation/test room split and save them as a "
            "datasets bank. Complete splits built with the same parameters are reused; an interrupted build "
            "resumes; a directory holding a bank with other parameters is refused."
        ),
    )
    add = parser.add_argument
    add("--output-dir", required=True, metavar="DIR", help="bank directory")
    add("--split", action="append", type=canonical_split, choices=SPLITS, help="split to build; repeatable (default all)")
    add("--max-rooms", type=int, default=None, metavar="N", help="first N rooms of each split (default all)")
    add("--azimuth-step", type=int, default=1, metavar="DEG", help="azimuth step in degrees, dividing 180 (default 1)")
    add("--num-workers", type=int, default=2, metavar="K", help="simulation processes (default 2)")
    add("--seed", type=int, default=0, help="seed of the room split (default 0)")
    add("--mic-array", choices=("stereo", "tetrahedral"), default="stereo", help="microphone array (default stereo)")
    add("--distance", type=float, default=2.0, metavar="M", help="source distance in metres (default 2.0)")
    add("--elevation", type=float, default=0.0, metavar="DEG", help="source elevation in degrees (default 0)")
    add("--sample-rate", type=int, default=16000, metavar="HZ", help="sample rate in Hz (default 16000)")
    add("--dtype", choices=("float32", "float16"), default="float32", help="RIR storage type (default float32)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..spatial.geometry import stereo_pair, tetrahedral_array
    from ..spatial.rir_bank import RirBank, RirBankConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    mics = stereo_pair() if args.mic_array == "stereo" else tetrahedral_array()
    try:
        config = RirBankConfig(
            seed=args.seed,
            max_rooms_per_split=args.max_rooms,
            azimuth_step_deg=args.azimuth_step,
            distance_m=args.distance,
            elevation_deg=args.elevation,
            mic_positions=tuple(map(tuple, mics.tolist())),
            sample_rate=args.sample_rate,
            dtype=args.dtype,
        )
        bank = RirBank.build(
            args.output_dir, config, splits=args.split or SPLITS, num_workers=args.num_workers
        )
    except ValueError as err:
        raise SystemExit(f"make-rirs: {err}") from err
    print(f"{bank} in {args.output_dir}")
    return 0
