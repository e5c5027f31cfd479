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

    def __init__(self, field: str, problem: str, related: tuple[str, ...] = ()):
        super().__init__(f"'{field}' {problem}")
        self.field = field
        self.problem = problem
        self.related = related  # other keys the problem involves: the loader names the line of one that was written

    def __reduce__(self):  # pickled whole (it crosses process boundaries), not rebuilt from its message
        return type(self), (self.field, self.problem, self.related)


class DataError(ArtnetError):
    """An annotation file, video or frame folder that cannot be used."""


class CheckpointError(ArtnetError):
    """A checkpoint or weight file that does not fit the model asked for."""


class OutputError(ArtnetError):
    """A place artnet will not or cannot write: a file it would replace without being asked, a folder it
    cannot write in, a write that failed (a full disk). What was there before is left as it was."""


class FaultError(ArtnetError):
    """The machine stopped a run: a killed worker process, a lost peer process. The message says how to go on."""


class DivergedError(ArtnetError):
    """A training run whose loss (or weights) stopped being finite numbers: it stops rather than train on."""
