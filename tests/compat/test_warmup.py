"""The codec and DTLS warm-up runs against this aiortc: a change in the names it uses would turn
every call's start cold again, silently (warm_up_soon swallows errors by design)."""

from __future__ import annotations

from tcall.engine.media import warmup


def test_warm_up_encodes_and_decodes_without_error() -> None:
    warmup.warm_up()


async def test_warm_up_soon_starts_once_per_process(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    runs: list[int] = []
    monkeypatch.setattr(warmup, "warm_up", lambda: runs.append(1))
    monkeypatch.setattr(warmup, "_started", type(warmup._started)())
    first = warmup.warm_up_soon()
    assert first is not None and warmup.warm_up_soon() is None
    await first
    assert runs == [1]
