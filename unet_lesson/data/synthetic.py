r"""Synthetic nuclei in the Data Science Bowl layout: the course's default data set.

Everything in the course runs on these images with no account and no network, through the
same reader as the real data (:func:`~unet_lesson.data.read_dsb_folder`). They imitate the three
kinds of image in the DSB 2018 training set (Caicedo et al. 2019):

* ``fluorescence`` - a dark background with bright, textured nuclei of varied brightness, an
  out-of-focus glow and uneven illumination (about 80% of the real set);
* ``brightfield`` - grey: a bright background, pale cell bodies and small dark nuclei;
* ``stained`` - colour (H&E-like): purple nuclei on a pale lilac tissue background, made with
  the Beer-Lambert colour model :math:`I = 255\,\exp(-(c_n \mathbf{s}_n + c_t \mathbf{s}_t))`:
  stain concentrations :math:`c` times optical densities per unit stain :math:`\mathbf{s}`
  (R, G, B), measured on the real stained images for nuclei and for tissue.

Sizes, counts and brightness follow the real ``stage1_train`` statistics (median nucleus
radius 8 px for fluorescence, 11 px stained; about 9% of a fluorescence image is nuclei).
Image sizes are drawn from the real set's most common sizes (256x256 to 520x696).

Nuclei are ellipses with a wavy outline (a few random Fourier terms of the polar angle), of
varied size, often in clusters, touching each other (a pixel claimed by two nuclei goes to the
one whose outline it is deeper inside, so they meet along a clean border, never overlap). The
image is blurred and noisy. Image ``i`` depends only on ``(seed, i)``: the same arguments give
the same bytes, and a larger ``n_images`` keeps the first images unchanged.

:func:`make_synthetic_dsb` writes a set atomically (a temporary folder renamed into place,
so concurrent callers are safe) with a ``synthetic.json`` manifest; calling it again with the
same arguments does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from .. import env

MODALITIES = ("fluorescence", "brightfield", "stained")
# image sizes (height, width) like the real stage1_train, most of them 256-520 pixels
REAL_LIKE_SIZES = ((256, 256), (256, 320), (360, 360), (512, 640), (520, 696), (260, 347))
SIZE_WEIGHTS = (0.40, 0.20, 0.15, 0.05, 0.12, 0.08)
# optical density per unit stain (R, G, B), measured as -ln(I/255) on the real stained images:
# nuclei median (128, 71, 189), background median (179, 160, 207)
STAIN_NUCLEUS = np.array([0.47, 0.86, 0.20])
STAIN_TISSUE = np.array([0.57, 0.75, 0.33])


# --------------------------------------------------------------------------------------------
# Geometry: where the nuclei are and which pixels they own
# --------------------------------------------------------------------------------------------


def _shape_in_box(rng, centre, radius, aspect, shape, wobble):
    """One nucleus outline: a rotated ellipse with a wavy boundary.

    Returns ``(box slices, inside mask, normalised depth)`` where the depth is 0 at the centre
    and 1 on the outline.
    """
    cy, cx = centre
    a, b = radius / np.sqrt(aspect), radius * np.sqrt(aspect)  # semi-axes, area ~ pi r^2
    reach = int(np.ceil(max(a, b) * (1 + 3 * wobble) + 1))
    y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, shape[0])
    x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    dy = (np.arange(y0, y1) - cy)[:, None]
    dx = (np.arange(x0, x1) - cx)[None, :]
    angle = rng.uniform(0, np.pi)
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / a
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / b
    rho, phi = np.hypot(u, v), np.arctan2(v, u)
    outline = np.ones_like(phi)
    for k in (2, 3, 4, 5):  # a few random Fourier terms make the outline irregular
        outline += rng.normal(0, wobble / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    depth = rho / np.maximum(outline, 0.3)
    return (slice(y0, y1), slice(x0, x1)), depth < 1.0, depth


def _place_nuclei(rng, shape, radius, coverage, clustered, wobble, min_area):
    """Label image ``int32 (H, W)`` and depth map of touching, clustered, non-overlapping nuclei."""
    height, width = shape
    labels = np.zeros(shape, dtype=np.int32)
    depth = np.full(shape, np.inf, dtype=np.float32)
    n_target = max(1, int(coverage * height * width / (np.pi * radius**2)))
    n_clusters = rng.integers(1, 5)
    cluster_at = rng.uniform([0, 0], [height, width], size=(n_clusters, 2))
    cluster_spread = rng.uniform(2.0, 6.0, size=n_clusters) * radius
    count = 0
    for _ in range(3 * n_target):
        if count == n_target:
            break
        if rng.random() < clustered:
            c = rng.integers(n_clusters)
            centre = cluster_at[c] + rng.normal(0, cluster_spread[c], size=2)
        else:
            centre = rng.uniform([0, 0], [height, width])
        r = radius * rng.lognormal(0.0, 0.25)
        found = _shape_in_box(rng, centre, r, rng.uniform(1.0, 2.2), shape, wobble)
        if found is None:
            continue
        box, inside, d = found
        if inside.sum() < min_area or (labels[box][inside] > 0).mean() > 0.3:
            continue  # too small, or mostly on top of other nuclei: try elsewhere
        count += 1
        take = inside & (d < depth[box])  # touching nuclei meet where they are equally deep
        labels[box][take] = count
        depth[box][take] = d[take]
    return _clean_labels(labels, min_area), np.where(np.isfinite(depth), depth, 1.0)


def _clean_labels(labels, min_area):
    """Keep each nucleus's largest connected piece, drop tiny ones, renumber 1..N."""
    objects = ndimage.find_objects(labels)
    for k, box in enumerate(objects, start=1):
        if box is None:
            continue
        mine = labels[box] == k
        pieces, n = ndimage.label(mine)
        if n > 1:
            sizes = np.bincount(pieces.ravel())[1:]
            mine &= pieces != 1 + int(np.argmax(sizes))
            labels[box][mine] = 0
            mine = labels[box] == k
        if mine.sum() < min_area:
            labels[box][mine] = 0
    ids = np.unique(labels)
    ids = ids[ids > 0]
    lookup = np.zeros(labels.max() + 1, dtype=np.int32)
    lookup[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lookup[labels]


# --------------------------------------------------------------------------------------------
# Appearance: how each modality looks
# --------------------------------------------------------------------------------------------


def _smooth_noise(rng, shape, sigma):
    """Gaussian noise smoothed with ``sigma`` pixels, rescaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _illumination(rng, shape, strength):
    """A smooth multiplicative field: a tilted plane and a vignette, mean about 1."""
    height, width = shape
    y, x = np.ogrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j]
    gy, gx = rng.normal(0, strength, size=2)
    cy, cx = rng.uniform(-1, 1, size=2)
    vignette = ((y - cy) ** 2 + (x - cx) ** 2) * rng.uniform(0, strength)
    return np.clip(1.0 + gy * y + gx * x - vignette, 0.5, 1.5).astype(np.float32)


def _nucleus_signal(rng, labels, depth, level, spread, texture):
    """Per-pixel nucleus density: per-nucleus level, darker rim, granular chromatin texture."""
    n = int(labels.max())
    levels = np.concatenate([[0.0], level * rng.lognormal(0.0, spread, size=n)])
    chromatin = 1.0 + texture * _smooth_noise(rng, labels.shape, rng.uniform(0.8, 1.6))
    profile = 1.0 - 0.35 * np.clip(depth, 0, 1) ** 2
    return (levels[labels] * profile * np.clip(chromatin, 0.2, None)).astype(np.float32)


def _finish(rng, image, blur, noise):
    """Optical blur, then shot-like and read noise; clip to uint8."""
    image = ndimage.gaussian_filter(image, sigma=(blur, blur, 0) if image.ndim == 3 else blur)
    image = image + rng.normal(size=image.shape).astype(np.float32) * (
        noise + 0.04 * np.sqrt(np.clip(image, 0, None)) * noise)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _fluorescence(rng, labels, depth):
    shape = labels.shape
    level = np.exp(rng.uniform(np.log(20), np.log(150)))
    signal = _nucleus_signal(rng, labels, depth, level, 0.35, rng.uniform(0.1, 0.4))
    glow = ndimage.gaussian_filter(signal, rng.uniform(6, 14)) * rng.uniform(0.1, 0.4)
    background = rng.uniform(1, 15)
    image = (background + signal + glow) * _illumination(rng, shape, 0.25)
    grey = _finish(rng, image, rng.uniform(0.6, 1.6), rng.uniform(1.0, 4.0))
    return np.repeat(grey[..., None], 3, axis=-1)


def _brightfield(rng, labels, depth, radius):
    shape = labels.shape
    # pale cell bodies: large wobbly blobs around some nuclei, darker at their edges
    cells = np.zeros(shape, dtype=np.float32)
    n = int(labels.max())
    for centre in ndimage.center_of_mass(labels > 0, labels, range(1, n + 1)):
        if rng.random() < 0.7:
            found = _shape_in_box(rng, centre, radius * rng.uniform(3, 6),
                                  rng.uniform(1.0, 1.8), shape, 0.25)
            if found is not None:
                box, inside, d = found
                cells[box] = np.maximum(cells[box], inside * (0.6 + 0.4 * np.clip(d, 0, 1) ** 4))
    cells = ndimage.gaussian_filter(cells, 1.5) * rng.uniform(25, 60)
    nuclei = _nucleus_signal(rng, labels, depth, rng.uniform(80, 150), 0.2, 0.25)
    background = rng.uniform(200, 235) * _illumination(rng, shape, 0.12)
    image = background - cells - nuclei + 2 * _smooth_noise(rng, shape, 3.0)
    grey = _finish(rng, image, rng.uniform(0.6, 1.4), rng.uniform(1.0, 3.0))
    return np.repeat(grey[..., None], 3, axis=-1)


def _stained(rng, labels, depth):
    shape = labels.shape
    nuclei = _nucleus_signal(rng, labels, depth, rng.uniform(1.1, 2.0), 0.2, 0.25)
    tissue = np.clip(0.6 + 0.4 * _smooth_noise(rng, shape, rng.uniform(8, 20)), 0, 1)
    fibres = 0.1 * _smooth_noise(rng, shape, 1.0) * tissue  # fine structure in the tissue
    stroma = rng.uniform(0.15, 0.9) * (tissue + fibres)
    tint = rng.uniform(0.9, 1.1, size=3)  # each slide's stain differs a little
    optical = (nuclei[..., None] * STAIN_NUCLEUS * tint + stroma[..., None] * STAIN_TISSUE)
    image = 255.0 * np.exp(-optical) * _illumination(rng, shape, 0.06)[..., None]
    return _finish(rng, image.astype(np.float32), rng.uniform(0.6, 1.3), rng.uniform(1.0, 3.0))


# ranges (both drawn log-uniformly) of the typical nucleus radius (pixels) and of the fraction
# of the image covered by nuclei, per modality; chosen from the real stage1_train statistics
# (median equivalent radius 8 px fluorescence, 9 brightfield, 11 stained; median coverage 9%,
# 2%, 20%)
_GEOMETRY = {
    "fluorescence": {"radius": (4.5, 20.0), "coverage": (0.03, 0.3), "wobble": 0.06},
    "brightfield": {"radius": (6.0, 11.0), "coverage": (0.015, 0.05), "wobble": 0.05},
    "stained": {"radius": (7.0, 18.0), "coverage": (0.08, 0.35), "wobble": 0.10},
}


def synthetic_sample(rng: np.random.Generator, modality: str = "fluorescence",
                     shape: tuple[int, int] = (256, 256)) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image ``uint8 (H, W, 3)`` and its labels ``int32 (H, W)``, in memory.

    Not built in a notebook: :func:`make_synthetic_image` and the tests use it.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if min(shape) < 32:
        raise ValueError(f"image size must be at least 32x32, got {shape}")
    geometry = _GEOMETRY[modality]
    radius = np.exp(rng.uniform(*np.log(geometry["radius"])))  # log-uniform
    labels, depth = _place_nuclei(
        rng, shape, radius, coverage=np.exp(rng.uniform(*np.log(geometry["coverage"]))),
        clustered=rng.uniform(0.3, 0.9), wobble=geometry["wobble"], min_area=12,
    )
    if modality == "fluorescence":
        image = _fluorescence(rng, labels, depth)
    elif modality == "brightfield":
        image = _brightfield(rng, labels, depth, radius)
    else:
        image = _stained(rng, labels, depth)
    return image, labels


# --------------------------------------------------------------------------------------------
# Writing a set in the competition layout
# --------------------------------------------------------------------------------------------

MANIFEST = "synthetic.json"
GENERATOR_VERSION = 1  # bump when the images change, so old sets are not mistaken for new


def synthetic_image_id(seed: int, index: int) -> str:
    """The folder name of image ``index`` of the set made with ``seed``.

    Not built in a notebook: :func:`make_synthetic_dsb` names its folders with it.
    """
    return f"syn-s{seed}-{index:04d}"


def make_synthetic_image(seed: int, index: int, modality_weights=None, image_size=None):
    """Image ``index`` of the set made with ``seed``: ``(modality, image, labels)``.

    Depends only on ``(seed, index)`` (and the two options), not on the size of the set.

    Not built in a notebook: :func:`make_synthetic_dsb` calls it.
    """
    rng = np.random.default_rng([seed, index])
    weights = np.asarray(modality_weights if modality_weights is not None else (0.6, 0.2, 0.2),
                         dtype=float)
    modality = MODALITIES[rng.choice(len(MODALITIES), p=weights / weights.sum())]
    if image_size is None:
        shape = REAL_LIKE_SIZES[rng.choice(len(REAL_LIKE_SIZES), p=SIZE_WEIGHTS)]
    else:
        shape = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    image, labels = synthetic_sample(rng, modality, shape)
    return modality, image, labels


def _write_sample(folder: Path, image_id: str, image: np.ndarray, labels: np.ndarray) -> None:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    alpha = np.full(image.shape[:2] + (1,), 255, dtype=np.uint8)  # RGBA like the real files
    Image.fromarray(np.concatenate([image, alpha], axis=-1)).save(
        folder / "images" / f"{image_id}.png", compress_level=1)

    def save_mask(item: tuple[int, tuple[slice, slice]]) -> None:
        k, box = item
        mask = np.zeros(labels.shape, dtype=np.uint8)
        mask[box] = (labels[box] == k) * np.uint8(255)
        Image.fromarray(mask).save(folder / "masks" / f"{k:04d}.png", compress_level=1)

    # PNG encoding and file creation release the GIL: a few threads write the masks faster
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(save_mask, enumerate(ndimage.find_objects(labels), start=1)))


def read_synthetic_manifest(root: str | Path) -> dict | None:
    """The manifest of a synthetic set (arguments and per-image modality), or None.

    Not built in a notebook: :func:`make_synthetic_dsb` reuses a set with it.
    """
    try:
        return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def make_synthetic_dsb(root: str | Path, n_images: int = 100, seed: int = 0, *,
                       modality_weights: tuple[float, float, float] | None = None,
                       image_size: int | tuple[int, int] | None = None,
                       overwrite: bool = False, progress: bool | None = None) -> Path:
    """Write ``n_images`` synthetic samples in the DSB layout under ``root``; returns ``root``.

    ``modality_weights``: chances of fluorescence, brightfield, stained (default 0.6, 0.2, 0.2).
    ``image_size``: one size for all images (default: sizes like the real set, 256 to 520 px).
    Calling it again with the same arguments does nothing. A ``root`` that holds something else
    raises ``FileExistsError`` unless ``overwrite=True``. Safe when several processes ask at
    once: each writes into its own temporary folder and renames it into place; whoever comes
    second finds the set made and throws its copy away.

    Not built in a notebook: :func:`~unet_lesson.course.datasets.find_or_make_dataset` calls it.
    """
    root = Path(root)
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    args = {"generator_version": GENERATOR_VERSION, "n_images": int(n_images), "seed": int(seed),
            "modality_weights": None if modality_weights is None else list(modality_weights),
            "image_size": None if image_size is None else np.atleast_1d(image_size).tolist()}
    if _matches(root, args):
        return root
    if root.exists() and any(root.iterdir()) and not overwrite:
        found = read_synthetic_manifest(root)
        what = f"a synthetic set made with {found['args']}" if found else "other files"
        raise FileExistsError(f"{root} already holds {what}; pass overwrite=True to replace it, "
                              f"or choose another folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = root.parent / f".{root.name}.tmp-{token}"
    try:
        images = []
        bar = {} if progress is None else {"disable": not progress}
        for index in env.progress(range(n_images), desc="generating synthetic nuclei", **bar):
            modality, image, labels = make_synthetic_image(seed, index, modality_weights,
                                                           image_size)
            image_id = synthetic_image_id(seed, index)
            _write_sample(tmp / image_id, image_id, image, labels)
            images.append({"image_id": image_id, "modality": modality, "height": labels.shape[0],
                           "width": labels.shape[1], "n_nuclei": int(labels.max())})
        manifest = {"args": args, "images": images}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _move_into_place(tmp, root, args, overwrite, token)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _matches(root: Path, args: dict) -> bool:
    found = read_synthetic_manifest(root)
    return found is not None and found.get("args") == args


def _move_into_place(tmp: Path, root: Path, args: dict, overwrite: bool, token: str) -> None:
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()  # an empty folder (made by hand) is simply replaced
    old = None
    if overwrite and root.exists() and not _matches(root, args):
        old = root.parent / f".{root.name}.old-{token}"
        os.rename(root, old)
    try:
        os.rename(tmp, root)
    except OSError:
        if _matches(root, args):
            return  # another process finished first with the same set: keep theirs
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
