"""Everything a UI may use from the engine, in one place (import-linter holds the TUI to it).

The Phone and what it hands out (snapshots, call handles, frames, the microphone's level), the
options of a call, and the plain value functions a UI needs to show things (addresses, QR codes,
safety numbers, the settings' schema, the devices there are). Events are in `tcall.engine.events`, errors in
`tcall.engine.errors`.
"""

from tcall.engine.address import Address, parse_address, qr_lines
from tcall.engine.call import CallOptions
from tcall.engine.contacts import check_name
from tcall.engine.core.outcome import outcome_words
from tcall.engine.devices import list_all
from tcall.engine.group_view import MAX_MEMBERS, GroupHandle, GroupView, MemberState, MemberView
from tcall.engine.history import CallRecord
from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.levels import MicLevel, MicReading
from tcall.engine.phone import ECHO, CallHandle, ContactView, Phone, Snapshot
from tcall.engine.requests import ContactRequest
from tcall.engine.safety import grouped, safety_number
from tcall.engine.settings import SCHEMA
from tcall.engine.text import printable

__all__ = [
    "ECHO",
    "MAX_MEMBERS",
    "SCHEMA",
    "Address",
    "CallHandle",
    "CallOptions",
    "CallRecord",
    "ContactRequest",
    "ContactView",
    "GroupHandle",
    "GroupView",
    "MemberState",
    "MemberView",
    "MicLevel",
    "MicReading",
    "Phone",
    "Snapshot",
    "VideoHandle",
    "check_name",
    "grouped",
    "list_all",
    "outcome_words",
    "parse_address",
    "printable",
    "qr_lines",
    "safety_number",
]
