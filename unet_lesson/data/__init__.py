"""The 2018 Data Science Bowl data: read, generate, split, augment and tile.

One subpackage, one module per idea (read them in this order):

* :mod:`.dsb` - the competition layout, the reader and mask merging (the overlap rule);
* :mod:`.normalise` - :func:`to_input` (x / 255, the plain input of the lessons) and
  :func:`to_network_input`, the input modes a run chooses from (raw, per-image percentiles,
  inversion of bright backgrounds): the one preprocessing shared by training and prediction;
* :mod:`.cache` - the label cache that makes a second read of the real set take seconds;
* :mod:`.synthetic` - the synthetic default data set, written in the same layout;
* :mod:`.labelled` - stage1_test with its labels from the solution CSV;
* :mod:`.label_files` - label images written and read back with every id (16-bit PNG or
  32-bit TIFF);
* :mod:`.table` - a pandas table of the set, the modality rule, seeded stratified splits;
* :mod:`.groups` - acquisition groups, recovered from the pixels;
* :mod:`.split` - splits that hold out whole groups (or images at random);
* :mod:`.augment` - the paper's elastic deformation, flips, rotations, grey values (sec. 3.1);
* :mod:`.colour` - stain, colour, quality and scale augmentations (not in the paper);
* :mod:`.tiles` - the overlap-tile geometry (sec. 2) as a torch ``Dataset`` of training tiles;
* :mod:`.batch_augment` - the paper's augmentations on a whole batch, on the training device.

Finding, downloading or generating the course's data set is the course's job
(:mod:`unet_lesson.course.datasets`, :mod:`unet_lesson.course.download`).
"""

from .augment import (
    Augment,
    augment_window,
    elastic_deform,
    elastic_displacement,
    flip_rotate,
    grey_values,
    warp,
)
from .colour import ColourAugment
from .dsb import (
    DSBDataError,
    DSBSample,
    load_dsb_folder,
    merge_masks,
    read_dsb_folder,
    read_dsb_image,
    read_dsb_sample,
    read_image,
)
from .groups import acquisition_groups, image_features
from .label_files import read_label_image, write_label_image
from .labelled import SOLUTION_CSV, load_labelled, load_labelled_test_set
from .normalise import INPUT_MODES, input_stats, normalise, to_input, to_network_input
from .split import group_split, split_summary, training_split
from .synthetic import (
    MODALITIES,
    make_synthetic_dsb,
    read_synthetic_manifest,
    synthetic_sample,
)
from .table import (
    dataset_table,
    default_split_path,
    load_splits,
    make_splits,
    modality_of,
    save_splits,
    size_class,
    stratified_split,
)
from .tiles import TileDataset, extract_window, mirror_indices, tile_sizes

__all__ = [
    "Augment", "augment_window", "elastic_deform", "elastic_displacement", "flip_rotate",
    "grey_values", "warp",
    "DSBDataError", "DSBSample", "load_dsb_folder", "merge_masks", "read_dsb_folder",
    "read_dsb_image", "read_dsb_sample", "read_image", "to_input",
    "MODALITIES", "make_synthetic_dsb", "read_synthetic_manifest", "synthetic_sample",
    "dataset_table", "default_split_path", "load_splits", "make_splits", "modality_of",
    "save_splits", "size_class", "stratified_split",
    "SOLUTION_CSV", "load_labelled", "load_labelled_test_set",
    "read_label_image", "write_label_image",
    "TileDataset", "extract_window", "mirror_indices", "tile_sizes",
    "ColourAugment", "acquisition_groups", "image_features",
    "group_split", "split_summary", "training_split",
    "INPUT_MODES", "input_stats", "normalise", "to_network_input",
]
