"""The same identity in two processes (issue #13, item 8): the second is told at once that tcall
is already running with it, and the first goes on undisturbed (no tug of war on the relay)."""

from __future__ import annotations

from tests.support.users import User


def test_a_second_tcall_with_the_same_identity_says_so_and_leaves_the_first_alone(
    people: tuple[User, User],
) -> None:
    alice, bob = people
    first = bob.listen("--auto-answer", "--once")
    second = bob.run("listen", check=False)
    assert second.returncode == 6
    assert "already running with this identity" in second.stderr
    assert "Traceback" not in second.stderr
    code, out, err = alice.call("bob", "--duration", "2")  # the first one still answers
    assert code == 0, err
    assert first.finish() == 0
    online = [e for e in first.events if e["event"] == "relay" and e["state"] == "online"]
    assert len(online) == 1  # never pushed off the relay
