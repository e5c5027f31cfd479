"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class ArtnetError(ValueError):
    """Base class: bad input, named precisely (file and line where there is one)."""


class ConfigError(ArtnetError):
    """An unknown, misspelt or ill-typed configuration key or model option."""


class InvalidValue(ConfigError):
    """A value a settings dataclass refuses, named by its field.

    Dataclasses check their own values (``__post_init__``); the config loader catches this error and
    says where the value was written (``file:line`` and the dotted key).
    """

    def __init__(self, field: str, problem: str):
        super().__init__(f"'{field}' {problem}")
        self.field = field
        self.problem = problem


class DataError(ArtnetError):
    """An annotation file, video or frame folder that cannot be used."""


class CheckpointError(ArtnetError):
    """A checkpoint or weight file that does not fit the model asked for."""
