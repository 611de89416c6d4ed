"""Finding libopus: the copy inside PyAV's wheel, else the system's.

tcall speaks to libopus itself (engine/media/opus.py) for what PyAV's codec wrapper cannot do:
decode a lost frame from the next packet's in-band FEC (`opus_decode(..., decode_fec=1)`), conceal
one with the decoder's PLC (`opus_decode(NULL)`), and change the expected loss while the call goes
(`OPUS_SET_PACKET_LOSS_PERC`; libavcodec reads it only when the encoder opens). The C API is public
and stable; what is PyAV's own is where its wheel keeps the library: auditwheel copies it into the
`av.libs` folder beside the package under a hashed name (`libopus-<hash>.so.<version>`), and it is the
very copy PyAV's codecs use (libopus 1.6.1 in PyAV 18, where Debian 12 has 1.3.1). When that folder
or file is gone (another PyAV build), the system's libopus is used if there is one.

load() checks the functions tcall calls and the version (in-band FEC decoding needs 1.1 or later);
anything missing is a CompatError naming PyAV's version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

import av

from tcall.engine.errors import CompatError

SUPPORTED = ">=14 (a wheel that bundles libopus, or libopus 1.1+ on the system)"
NEEDED = (
    "opus_get_version_string",
    "opus_encoder_create",
    "opus_encoder_ctl",
    "opus_encode",
    "opus_encoder_destroy",
    "opus_decoder_create",
    "opus_decoder_ctl",
    "opus_decode",
    "opus_decoder_destroy",
    "opus_packet_get_nb_samples",
    "opus_packet_get_bandwidth",
)


def _incompatible(problem: str) -> CompatError:
    return CompatError("av", problem, SUPPORTED)


def _candidates() -> list[str]:
    bundled = Path(av.__file__).resolve().parent.parent / "av.libs"
    found = sorted(str(p) for p in bundled.glob("libopus*.so*")) if bundled.is_dir() else []
    system = ctypes.util.find_library("opus")
    return found + ([system] if system else [])


def version_of(lib: ctypes.CDLL) -> tuple[int, ...]:
    """(1, 6, 1) from "libopus 1.6.1" (a build's suffix such as "-rc" or "-dirty" is ignored)."""
    lib.opus_get_version_string.restype = ctypes.c_char_p
    text = lib.opus_get_version_string().decode("ascii", "replace")
    numbers = text.rsplit(" ", 1)[-1].split("-")[0].split(".")
    return tuple(int(n) for n in numbers if n.isdigit())


@functools.cache
def load() -> ctypes.CDLL:
    """The libopus tcall uses (the same one every time); CompatError when none will do."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if all(hasattr(lib, name) for name in NEEDED) and version_of(lib) >= (1, 1):
            return lib
    raise _incompatible("no libopus 1.1+ with the encoder, decoder and packet functions found")


def install() -> None:
    """Check that libopus loads now, before any call needs it."""
    load()
