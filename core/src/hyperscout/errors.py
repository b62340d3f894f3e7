"""Errors that are the user's interface.

Every error hyperscout raises on bad input is a :class:`HyperscoutError`: its message is one line
that names what is wrong (the parameter, key or plugin and the value) and what to do about it.
The CLI prints that line and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class HyperscoutError(Exception):
    """Base class: a one-line, user-facing problem with a suggested fix."""

    exit_code = 2


class ParameterError(HyperscoutError, ValueError):
    """A parameter range is malformed (min > max, empty values, duplicate names, ...)."""


class ObjectiveError(HyperscoutError, ValueError):
    """The objective definition is malformed."""


class ConfigError(HyperscoutError, ValueError):
    """A study file or a CLI flag holds a bad value; the message names the key path."""


class PluginNotFoundError(HyperscoutError, LookupError):
    """A strategy or backend name is not provided by any installed plugin."""


class UnsupportedError(HyperscoutError, ValueError):
    """A strategy or backend cannot honour what was asked (a parameter type, an option)."""


class StudyConflictError(HyperscoutError):
    """A study of that name exists in the store with a different definition."""


class StoreError(HyperscoutError):
    """The store file cannot be opened or has an unknown schema version."""


class StudyLockedError(HyperscoutError):
    """Another live optimizer process owns the study (its lease in the store is fresh)."""


class BackendLostError(HyperscoutError):
    """The execution backend was lost mid-study; its jobs were left running for a resume to re-attach."""
