"""Answering "with video" is honest about the camera (issue #13, item 1): by default
(answer_with_camera = off) it stays off, and `listen --camera on` wins over the setting."""

from __future__ import annotations

from pathlib import Path

from tests.support.relays import ServeProcess
from tests.support.users import User


def test_listen_camera_on_beats_the_privacy_default(tmp_path: Path, relay: ServeProcess) -> None:
    alice = User("alice", tmp_path / "alice", relay.url)
    bob = User("bob", tmp_path / "bob", relay.url)  # answer_with_camera stays off, the default
    alice.add(bob)
    bob.add(alice)
    for flags, sees_bob in (((), False), (("--camera", "on"), True)):
        listener = bob.listen("--auto-answer", "--once", *flags)
        code, out, err = alice.call("bob", "--duration", "2")
        assert code == 0, err
        assert listener.finish() == 0
        assert (out[-1]["frames_received"] > 20) is sees_bob, out[-1]
