"""The package version, in a module of its own: recording it (checkpoints, reports, ``kedi --version``)
must not load the whole public front door of :mod:`deepkedi`."""

__version__ = "0.1.0"
