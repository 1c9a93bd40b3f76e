"""Exceptions of the strata binding: one class per C error code, grouped by band.

Every failure of the C library is raised as a subclass of :class:`Error` that
carries the library's numeric code (``.code``, a negative ``STRATA_E*`` value
of ``engine/strata.h``), its symbolic name (``.name``), the library's sentence
for the code (``.message``) and the detail of that failure (``.detail``: what
failed and where, from ``strata_last_error_detail()``).

The hierarchy follows the bands of strata.h, so a caller can catch a class of
failure as well as one code::

    Error
    +-- UsageError            -1..-19  the call was wrong; nothing changed
    |   +-- InvalidArgument       -1   (also a ValueError)
    |   |   +-- Closed                 the Database or Index is closed
    |   +-- DimensionError        -2   (also a ValueError)
    |   +-- MetricError           -3   (also a ValueError)
    |   +-- NotFound              -4   (also a LookupError)
    |   +-- AlreadyExists         -5
    |   +-- Busy                  -6   another writer holds the directory
    |   +-- ReadOnly              -7
    |   +-- NonFinite             -8   (also a ValueError)
    |   +-- DuplicateId           -9   (also a ValueError)
    +-- ResourceError         -20..-39
    |   +-- OutOfMemory          -20   (also a MemoryError)
    |   +-- LimitExceeded        -21
    |   +-- NoSpace              -22
    +-- IOError               -40..-59 the operating system failed
    |   +-- FsyncFailed          -41   every later write fails the same way
    |   +-- PermissionDenied     -42
    +-- DataError             -60..-79 the bytes of a file are wrong
    |   +-- NotADatabase         -60
    |   +-- VersionError         -61
    |   +-- Corrupt              -62
    |   +-- ChecksumMismatch     -63
    |   +-- Truncated            -64
    +-- Unsupported                    the loaded library lacks a function
                                       (code None; also a NotImplementedError)

``strata.IOError`` is this module's class, not Python's builtin ``IOError``
(an alias of ``OSError``); write ``strata.IOError`` to catch it.

Argument checks the binding makes itself, before calling the library (a
vector of the wrong length, a negative id), raise the class and code the
library would have returned for the same mistake.
"""

from . import _lib

__all__ = [
    "Error", "UsageError", "InvalidArgument", "Closed", "DimensionError", "MetricError",
    "NotFound", "AlreadyExists", "Busy", "ReadOnly", "NonFinite", "DuplicateId",
    "ResourceError", "OutOfMemory", "LimitExceeded", "NoSpace",
    "IOError", "FsyncFailed", "PermissionDenied",
    "DataError", "NotADatabase", "VersionError", "Corrupt", "ChecksumMismatch", "Truncated",
    "Unsupported", "error_for", "check",
]


class Error(Exception):
    """A failure of strata. ``code`` is the C library's negative STRATA_E* value."""

    code = None

    def __init__(self, code=None, detail="", message=None):
        if code is None:
            code = type(self).code
        self.code = code
        self.name = _lib.CODE_NAMES.get(code, "STRATA_E?") if code is not None else None
        self.message = message if message is not None else (
            _lib.strerror(code) if code is not None else "")
        self.detail = detail or ""
        super().__init__(self.code, self.message, self.detail)

    def __str__(self):
        head = "%s (%d): %s" % (self.name, self.code, self.message) if self.code is not None \
            else self.message
        return "%s: %s" % (head, self.detail) if self.detail else head

    def __reduce__(self):
        return (type(self), (self.code, self.detail, self.message))


class UsageError(Error):
    """Band -1..-19: the call was wrong and nothing changed."""


class InvalidArgument(UsageError, ValueError):
    code = -1


class Closed(InvalidArgument):
    """An operation on a closed Database (what the C library returns for a null handle)."""


class DimensionError(UsageError, ValueError):
    code = -2


class MetricError(UsageError, ValueError):
    code = -3


class NotFound(UsageError, LookupError):
    code = -4


class AlreadyExists(UsageError):
    code = -5


class Busy(UsageError):
    code = -6


class ReadOnly(UsageError):
    code = -7


class NonFinite(UsageError, ValueError):
    code = -8


class DuplicateId(UsageError, ValueError):
    code = -9


class ResourceError(Error):
    """Band -20..-39: a resource ran out."""


class OutOfMemory(ResourceError, MemoryError):
    code = -20


class LimitExceeded(ResourceError):
    code = -21


class NoSpace(ResourceError):
    code = -22


class IOError(Error):  # noqa: A001 - strata.IOError, deliberately named after the band
    """Band -40..-59: the operating system failed (STRATA_EIO itself is -40)."""

    code = -40


class FsyncFailed(IOError):
    code = -41


class PermissionDenied(IOError):
    code = -42


class DataError(Error):
    """Band -60..-79: the bytes of a file are wrong (STRATA_IS_DATA_ERROR)."""


class NotADatabase(DataError):
    code = -60


class VersionError(DataError):
    code = -61


class Corrupt(DataError):
    code = -62


class ChecksumMismatch(DataError):
    code = -63


class Truncated(DataError):
    code = -64


class Unsupported(Error, NotImplementedError):
    """The loaded C library lacks a function this call needs (no C code: ``code`` is None)."""

    def __init__(self, detail="", message="the loaded strata library lacks this function"):
        Error.__init__(self, None, detail, message)
        self.code = None

    def __reduce__(self):
        return (type(self), (self.detail, self.message))


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgument, DimensionError, MetricError, NotFound, AlreadyExists, Busy, ReadOnly,
    NonFinite, DuplicateId, OutOfMemory, LimitExceeded, NoSpace, IOError, FsyncFailed,
    PermissionDenied, NotADatabase, VersionError, Corrupt, ChecksumMismatch, Truncated)}

_BANDS = ((-19, -1, UsageError), (-39, -20, ResourceError), (-59, -40, IOError),
          (-79, -60, DataError))


def error_for(code, detail=""):
    """The exception for C code ``code`` (a negative STRATA_E* value) and a detail."""
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = Error
        for low, high, band in _BANDS:
            if low <= code <= high:
                cls = band
                break
    return cls(code, detail)


def check(rc):
    """Raise the error of C result ``rc`` (with the calling thread's detail) unless it is 0."""
    if rc != 0:
        raise error_for(rc, _lib.last_error_detail())
