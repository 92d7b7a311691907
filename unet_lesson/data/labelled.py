"""The labelled stage-1 test set: stage1_test images with nuclei from the solution CSV.

After the competition, Kaggle published the labels of the 65 stage1_test images as a
run-length-encoded CSV (``stage1_solution.csv``), so the course can score on them offline.
The one reader of that format is :func:`unet_lesson.rle.read_solution_csv`; this module only
pairs its label images with the image files, and refuses any mismatch by name.
"""

from __future__ import annotations

from pathlib import Path

from ..rle import read_solution_csv
from .dsb import DSBDataError, DSBSample, load_dsb_folder, read_dsb_image, sample_folders

SOLUTION_CSV = "stage1_solution.csv"  # the labels of stage1_test, beside its folder


def load_labelled_test_set(images_root: str | Path, solution_csv: str | Path) -> list[DSBSample]:
    """The images of ``images_root`` (``<id>/images/<id>.png``, no masks) with their labels.

    Every image must have labels in ``solution_csv`` and every labelled image must be there;
    the label image must have the image's size. Errors name the file.

    Not built in a notebook: :func:`load_labelled` calls it.
    """
    images_root, solution_csv = Path(images_root), Path(solution_csv)
    labels = read_solution_csv(solution_csv)
    folders = sample_folders(images_root)
    missing = sorted(set(labels) - {f.name for f in folders})
    if missing:
        raise DSBDataError(images_root, f"{len(missing)} image(s) of {solution_csv.name} are "
                           f"missing here, e.g. {missing[0]}; is this the right folder?")
    samples = []
    for folder in folders:
        if folder.name not in labels:
            raise DSBDataError(folder, f"no labels for this image in {solution_csv}")
        image = read_dsb_image(folder)
        if labels[folder.name].shape != image.shape[:2]:
            raise DSBDataError(folder, f"the image is {image.shape[:2]} but {solution_csv.name} "
                               f"gives {labels[folder.name].shape}")
        samples.append(DSBSample(folder.name, image, labels[folder.name], folder))
    return samples


def load_labelled(root: str | Path, solution_csv: str | Path | None = None, **read_kwargs
                  ) -> list[DSBSample]:
    """Any labelled set: a ``stage1_train``-style folder (masks), or images + a solution CSV.

    Without ``solution_csv``, a folder whose samples have no ``masks/`` uses
    ``<root>/../stage1_solution.csv`` (where ``download_dsb2018`` puts it). ``read_kwargs``
    go to :func:`~unet_lesson.data.load_dsb_folder` for a folder with masks (e.g.
    ``on_error="skip"``).

    Not built in a notebook: the command line, ``python -m unet_lesson evaluate``.
    """
    root = Path(root)
    if solution_csv is None:
        first = sample_folders(root)[0]
        if (first / "masks").is_dir():
            return load_dsb_folder(root, **read_kwargs)
        solution_csv = root.parent / SOLUTION_CSV
        if not solution_csv.is_file():
            raise FileNotFoundError(f"{root} has no masks/ folders and there is no "
                                    f"{solution_csv} beside it: download it with `python -m "
                                    f"unet_lesson download`")
    return load_labelled_test_set(root, solution_csv)
