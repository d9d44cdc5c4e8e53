"""The audio layer's errors: one base, fixed messages, variable data in attributes."""

from callscope.core import CallscopeError


class AudioError(CallscopeError):
    """Base of every error the audio layer raises on purpose."""

    #: stable machine name used as the `Anomaly.kind` when a caller records it
    kind = "audio"


class AudioParseError(AudioError):
    """Bytes that are not a valid spool file or encrypted recording container."""

    kind = "audio.parse"


class AudioIntegrityError(AudioError):
    """Authenticated data failed its check: tampered, truncated, reordered or wrong key."""

    kind = "audio.integrity"


class AudioDecodeError(AudioError):
    """One RTP payload the codec could not decode (counted, replaced by silence)."""

    kind = "audio.decode"


class AudioEncodeError(AudioError):
    """The Opus encoder or Ogg muxer failed."""

    kind = "audio.encode"


class AudioRangeError(AudioError):
    """A byte range that does not describe a part of the recording."""

    kind = "audio.range"


class AudioKeyError(AudioError):
    """A key of the wrong size, or a wrapped key whose master key is not configured."""

    kind = "audio.key"
