"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""

import re
import reprlib


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


REASON_CHARS = 160  # a quoted library reason longer than this is cut at a word


def library_reason(err: BaseException) -> str:
    """One clean sentence of why a library failed, to quote inside a user-facing message.

    rasterio wraps GDAL's error as the cause of a bare "Read failed. See previous exception
    for details.", so the most specific message is the innermost cause's; GDAL's advice on
    its own configuration options and further lines are dropped, and a long reason is cut
    at a word, never mid-word."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
    text = text.split(" (this error can be turned")[0]
    text = text.replace("See previous exception for details.", "").strip().rstrip(".")
    if len(text) > REASON_CHARS:
        text = text[: text.rfind(" ", 0, REASON_CHARS)].rstrip(",;:") + " …"
    return text or type(err).__name__


def parse_reason(err: BaseException) -> str:
    """Where and why a YAML or JSON text failed to parse, on one line ("line 2, column 10:
    expected ',' or ']'"): PyYAML's own message quotes the text over several lines."""
    mark = getattr(err, "problem_mark", None)  # PyYAML's MarkedYAMLError
    problem = getattr(err, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    if isinstance(err, ValueError) and "integer string conversion" in str(err):
        return "a number of more than 4,300 digits"  # Python's advice is for programmers
    lineno, column, msg = (getattr(err, k, None) for k in ("lineno", "colno", "msg"))
    if lineno is not None and msg:  # json.JSONDecodeError
        return f"line {lineno}, column {column}: {msg}"
    return library_reason(err)


# A value of a user's file quoted in a message, bounded however large or deep it is: a 1 KB
# YAML of nested aliases is a list of 9**7 colours, whose repr was a 25 MB error line.
_BOUNDED = reprlib.Repr()  # (its settings as arguments: Python 3.12)
_BOUNDED.maxlevel = 2
_BOUNDED.maxlist = _BOUNDED.maxtuple = _BOUNDED.maxdict = _BOUNDED.maxset = 4
_BOUNDED.maxstring = _BOUNDED.maxother = _BOUNDED.maxlong = 200


# What a terminal acts on rather than shows: C0 and C1 controls (ESC starts sequences that
# clear the screen, set the title or write the clipboard), DEL, and direction overrides
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` as a line of a terminal may show it: each control character written as its
    escape (``\\x1b``, ``\\n``). File names are a user's, or an archive's author's: one
    holding ESC sequences cleared the screen from predict's progress line (a review)."""
    return CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode(), str(text))


def shown(value: object, most: int = 40) -> str:
    """``value`` as a message quotes it: its repr, cut to ``most`` characters."""
    text = re.sub(r"\s*\n\s*", " ", _BOUNDED.repr(value))  # an array's rows: one line
    return text if len(text) <= most else text[: most - 3] + "..."
