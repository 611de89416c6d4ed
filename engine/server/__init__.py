"""The relay server behind `tcall serve`: its own package, which no part of a phone imports.

`server` runs the WebSocket links and routes payloads between mailboxes; `websocket` is its
RFC 6455 handshake and framing, sans-I/O; `limits` and `hold` are its per-link token bucket and the
short in-memory hold for offline mailboxes; `redisbus` lets several relay nodes share routing.

From the rest of tcall it uses only the shared wire protocol (`tcall.engine.relay.protocol`) and
the error types (`tcall.engine.errors`), and only `tcall.tui.commands.serve` imports it; the
import-linter contracts in pyproject.toml hold both sides to that.
"""
