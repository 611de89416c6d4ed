"""The rules of a call, without I/O (h11's `Connection` is the model).

`CallCore` owns one call's state; `Switchboard` routes verified messages and local commands to calls
and judges incoming offers by `policy`. Inputs go in (verified messages, timer expiries, media
connected or failed, local commands); actions come out (send this message, open or close media,
emit this event, start or cancel this timer, write this history record). Nothing here owns a clock,
a socket, a task or a file: `tcall.engine.phone` performs the actions. import-linter keeps it so.
"""
