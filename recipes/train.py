"""Launcher for ``accelerate launch``; the same sub-commands as the ``spatial-clap`` CLI.

    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/train.py \
        --config recipes/paper.yaml --output-dir runs/paper          # stage 2 (``train``)
    accelerate launch recipes/train.py pretrain-spatial --config recipes/paper.yaml ...   # stage 1
"""

import sys

from spatial_clap_hf.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        args = ["train", *args]
    sys.exit(main(args))
