"""Two tcall Sessions in one process call each other; prints one JSON line with what happened.

Run by the tests as `python -m tests.support.two_peers [CODEC]` from the repository, e.g. inside
`unshare -n` where loopback is the only interface.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.support.sessions import pattern_session


async def main(codec: str) -> None:
    states: dict[str, list[str]] = {"a": [], "b": []}

    def recorder(name: str):  # type: ignore[no-untyped-def]
        return states[name].append

    a = pattern_session(320, 240, recorder("a"), codec)
    b = pattern_session(320, 240, recorder("b"), codec)
    offer = await a.create_offer()
    answer = await b.create_answer(offer)
    await a.accept_answer(answer)
    try:
        await asyncio.wait_for(asyncio.gather(a.wait_connected(10), b.wait_connected(10)), 15)
        for _ in range(100):
            if a.video_sink.frames_received >= 10 and b.video_sink.frames_received >= 10:
                break
            await asyncio.sleep(0.1)
    finally:
        result = {
            "offer": offer,
            "answer": answer,
            "states": states,
            "a_received": a.video_sink.frames_received,
            "b_received": b.video_sink.frames_received,
        }
        await a.close()
        await b.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "vp8"))
