"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class AerialsegError(Exception):
    """Base class: anything raised as this is the user's input, not a bug."""


class DatasetError(AerialsegError, ValueError):
    """The dataset on disk is not what the tool can read (layout, pairs, sizes, files)."""


class ClassTableError(AerialsegError, ValueError):
    """A class table is malformed, or it does not describe the masks it is applied to."""


class ConfigError(AerialsegError, ValueError):
    """A config file, preset or override is invalid."""


class ModelFileError(AerialsegError, ValueError):
    """A file given as a model is not an aerialseg model."""
