"""The capture layer's errors: bad capture files and undecodable frames."""

from callscope.core import CallscopeError


class CaptureParseError(CallscopeError):
    """A capture file or frame that cannot be read."""

    kind = "capture.parse"


class CaptureTruncatedError(CaptureParseError):
    """The capture file ends inside a record: everything before it was read."""

    kind = "capture.truncated"
