"""What more than one test folder uses, in one place: test folders import helpers from here (or
from their own folder), never from each other (tests/test_support_imports.py checks this).

- cli: the `tcall` console script as a process, the same CLI in-process, JSON events
- users: people with their own TCALL_HOME who call and listen as real `tcall` processes
- relays: `tcall serve` processes and free loopback ports
- hostile: an in-process relay that drops, replays, reorders, substitutes and forges
- relay_links: raw WebSocket links and byte-level sockets to a relay
- services: PulseAudio, redis-server, coturn and network namespaces, one of each per test worker
- tmux: a tmux server of a test's own
- sessions: a Session that sends the test pattern; the ICE candidates of an SDP
- wire_pair: two identities that exchange sealed signaling messages by hand
- decoders: sixel, kitty and ANSI output back into pixels and screens
- call_app, direct_app: call-like Textual apps for the VideoView tests
- loopback_audio, two_peers: scripts the tests run in a process of their own
"""
