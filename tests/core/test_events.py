"""README's `--json` contract: each event's keys and values, pinned."""

from __future__ import annotations

import json

from tcall.engine.events import (
    CallPhase,
    CallState,
    ContactRequested,
    IncomingCall,
    MediaFigures,
    MemberJoined,
    MemberLeft,
    Missed,
    Notice,
    PeerVideo,
    PresenceChanged,
    Refused,
    RelayChanged,
    Silenced,
    Stats,
    Summary,
    VideoRequest,
)

FIGURES = MediaFigures(300, 297, 29.8, 11.0, 16.5, 127.3, "srflx/srflx")


def test_every_event_prints_as_readme_says() -> None:
    pinned = [
        (
            RelayChanged("online", "ws://r:7711"),
            {"event": "relay", "state": "online", "url": "ws://r:7711"},
        ),
        (PresenceChanged("bob", True), {"event": "presence", "contact": "bob", "online": True}),
        (
            IncomingCall("c1", "alice", True, False),
            {
                "event": "incoming",
                "call_id": "c1",
                "from": "alice",
                "verified": True,
                "video": False,
            },
        ),
        (
            Silenced("unknown 1234", "not a contact"),
            {"event": "silenced", "from": "unknown 1234", "reason": "not a contact"},
        ),
        (
            Missed("bob", "do not disturb"),
            {"event": "missed", "from": "bob", "reason": "do not disturb"},
        ),
        (
            ContactRequested("dave", "a703 e8b2", "ws://r:7711"),
            {
                "event": "request",
                "name": "dave",
                "fingerprint": "a703 e8b2",
                "relay": "ws://r:7711",
            },
        ),
        (
            ContactRequested("", "a703 e8b2", ""),
            {"event": "request", "name": "", "fingerprint": "a703 e8b2", "relay": ""},
        ),
        (
            Refused("replayed", "a replay"),
            {"event": "refused", "reason": "replayed", "message": "a replay"},
        ),
        (Notice("no camera"), {"event": "notice", "message": "no camera"}),
        (Notice("no speaker", "c1"), {"event": "notice", "message": "no speaker", "call_id": "c1"}),
        (
            CallState("c1", CallPhase.RINGING),
            {"event": "state", "state": "ringing", "call_id": "c1"},
        ),
        (
            Stats("c1", 30.0, 29.5, "640x480", 800.0, 790.5, 0, 1.2, 41.0, "host/host"),
            {
                "event": "stats",
                "fps_sent": 30.0,
                "fps_received": 29.5,
                "resolution": "640x480",
                "kbps_sent": 800.0,
                "kbps_received": 790.5,
                "packets_lost": 0,
                "rtt_ms": 1.2,
                "latency_ms": 41.0,
                "route": "host/host",
                "call_id": "c1",
            },
        ),
        (VideoRequest("c1", "bob"), {"event": "video_request", "call_id": "c1", "from": "bob"}),
        (PeerVideo("c1", False), {"event": "peer_video", "call_id": "c1", "on": False}),
        (
            Summary("answered", "c1", "bob", FIGURES),
            {
                "event": "summary",
                "outcome": "answered",
                "frames_sent": 300,
                "frames_received": 297,
                "fps_received": 29.8,
                "latency_ms_median": 11.0,
                "latency_ms_p95": 16.5,
                "setup_ms": 127.3,
                "route": "srflx/srflx",
                "call_id": "c1",
                "peer": "bob",
            },
        ),
        (
            Summary("missed", "c1", "unknown 1234"),
            {"event": "summary", "outcome": "missed", "call_id": "c1", "peer": "unknown 1234"},
        ),
        (
            Summary("relay_unreachable", reason="cannot reach ws://r:7711"),
            {
                "event": "summary",
                "outcome": "relay_unreachable",
                "reason": "cannot reach ws://r:7711",
            },
        ),
    ]
    for event, expected in pinned:
        assert event.to_json() == expected
        assert json.loads(json.dumps(event.to_json())) == expected  # plain JSON types only


def test_one_state_vocabulary() -> None:
    assert [str(p) for p in CallPhase] == [
        "calling",
        "ringing",
        "incoming",
        "connecting",
        "connected",
        "reconnecting",  # added on purpose in issue #16 (README says so)
        "closed",
    ]


def test_group_call_events_print_as_readme_says() -> None:
    """Issue #17 added these; the events of 1:1 calls above are unchanged."""
    code = "12345 67890 12345 67890 12345 67890"
    pinned = [
        (
            MemberJoined("g1", "bob", True, code),
            {"event": "joined", "call_id": "g1", "member": "bob", "verified": True, "code": code},
        ),
        (
            MemberLeft("g1", "bob", "failed", code, FIGURES),
            {
                "event": "left",
                "call_id": "g1",
                "member": "bob",
                "reason": "failed",
                "code": code,
                "media": FIGURES.to_json(),
            },
        ),
        (
            IncomingCall("g1", "alice", False, True, members=("bob", "carol")),
            {
                "event": "incoming",
                "call_id": "g1",
                "from": "alice",
                "verified": False,
                "video": True,
                "members": ["bob", "carol"],
            },
        ),
        (
            Summary(
                "answered",
                members=(("bob", FIGURES), ("carol", None)),
                frames_sent=300,
                video_encodes=300,
            ),
            {
                "event": "summary",
                "outcome": "answered",
                "frames_sent": 300,
                "video_encodes": 300,
                "members": [{"member": "bob", **FIGURES.to_json()}, {"member": "carol"}],
            },
        ),
    ]
    for event, expected in pinned:
        assert event.to_json() == expected
    stats = Stats(
        "g1", 15.0, 15.0, "320x240", 200.0, 190.0, 0, 3.0, 20.0, "host/host", member="bob"
    )
    assert list(stats.to_json())[-2:] == ["call_id", "member"]
