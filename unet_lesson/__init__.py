"""unet_lesson: the U-Net of Ronneberger, Fischer & Brox (2015), built block by block.

The package holds the course's final, tested implementation; the notebooks in ``notebooks/``
build each piece in plain view and check it against this package.
"""

__version__ = "0.1.0"

from .networks import UNet, UNetConfig  # noqa: E402

__all__ = ["UNet", "UNetConfig", "__version__"]
