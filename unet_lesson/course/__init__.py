"""The course's machinery: what runs the lessons, not what they teach.

Everything here builds on the lessons' modules and nothing there imports from here (a test
checks the direction). Read it when you want to know how the course runs:

* :mod:`.datasets`, :mod:`.download`, :mod:`.release` - the course's data set: found,
  downloaded and verified against the release's manifest, or generated;
* :mod:`.run` - a training run's folder, the one writer of its files;
* :mod:`.lessons`, :mod:`.budget` - the runs notebooks 10-12 train, sized for the machine, and
  their times (measured, or estimated from FLOPs);
* :mod:`.compare`, :mod:`.costs`, :mod:`.experiments` - the comparisons of notebooks 11 and
  12: several networks or configurations over seeds, on one split;
* :mod:`.distributed` - several processes with ``torchrun``;
* :mod:`.cli`, :mod:`.commands` - ``python -m unet_lesson``;
* :mod:`.notebook` - the notebooks' setup cell.

Not built in a notebook: the course's machinery.
"""
