"""The relay: `tcall serve`'s WebSocket server and the client that calls flow through.

The relay passes sealed payloads between mailboxes. It sees a recipient mailbox id, sizes, timing
and IP addresses, and nothing else: see `protocol` for the wire format.
"""
