"""`refused` means something is wrong (issue #13, item 10): a silenced caller's courtesy hangup,
which always comes once their call rings out, is expected and says nothing."""

from __future__ import annotations

import time
from pathlib import Path

from tcall.engine.identity import load_identity
from tests.support.hostile import HostileRelay, peek
from tests.support.users import User, pair


def test_a_silenced_callers_hangup_is_no_false_alarm(tmp_path: Path) -> None:
    with HostileRelay() as relay:  # an honest one here: it only lets the test see what passes
        _, bob = pair(tmp_path, relay.url)
        carol = User("carol", tmp_path / "carol", relay.url)  # a stranger to bob
        carol.add(bob)
        listener = bob.listen("--ring-timeout", "2")
        try:
            code, _, _ = carol.call("bob", "--ring-timeout", "2")
            assert code == 10
            bob_id = load_identity(bob.home / "identity.key")
            kinds = [m.kind for r in relay.routed if (m := peek(bob_id, r.payload)) is not None]
            assert kinds[-1] == "hangup"  # carol's call rang out; her courtesy hangup went to bob
            time.sleep(1.0)  # bob reads it well within this
        finally:
            listener.stop()
    assert [e["event"] for e in listener.events if e["event"] in ("silenced", "refused")] == [
        "silenced"
    ]
