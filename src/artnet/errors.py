"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class ArtnetError(ValueError):
    """Base class: bad input, named precisely (file and line where there is one)."""


class ConfigError(ArtnetError):
    """An unknown, misspelt or ill-typed configuration key or model option."""


class DataError(ArtnetError):
    """An annotation file, video or frame folder that cannot be used."""


class CheckpointError(ArtnetError):
    """A checkpoint or weight file that does not fit the model asked for."""
