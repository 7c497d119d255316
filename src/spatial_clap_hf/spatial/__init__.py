"""Physics and conventions: directions, microphone arrays, room impulse responses, spatialization.

Imports no model, data or training code.
"""

from .conventions import (
    DEFAULT_PHRASES,
    PhraseSet,
    compose_caption,
    doa_class,
    doa_class_center_deg,
    fold_azimuth,
    neutral_prompts,
    num_doa_classes,
)
from .geometry import as_mic_positions, is_centred_stereo_pair, source_position, stereo_pair, tetrahedral_array
from .rir_bank import RirBank, RirBankConfig, RirKey, azimuth_grid, normalize_azimuth
from .rooms import SPLITS, RoomSpec, canonical_split, room_grid, sabine_rt60, split_rooms
from .simulation import run_in_workers, schroeder_rt60, simulate_rirs
from .spatializer import (
    PairingSampler,
    Scene,
    SpatialBatch,
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
