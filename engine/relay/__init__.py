"""The relay as both sides see it: the shared wire protocol and the client that calls flow through.

`protocol` is the relay's own wire format, sans-I/O (no sockets, no clock), spoken by the client
here and by the server in `tcall.engine.server`; `client` is what the phone uses to sign in to a
relay and send and receive sealed payloads. The server itself is not here: a phone never needs it.

The relay passes sealed payloads between mailboxes. It sees a recipient mailbox id, sizes, timing
and IP addresses, and nothing else: see `protocol` for the wire format.
"""
