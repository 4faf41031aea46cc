"""EVSEMaster chargers (Besen, Telestar, Deltaco, …) over their LAN protocol.

`protocol` (framing and payloads), `session` (the UDP session thread), `driver` (restart-only
control), `emulator` (a strict stand-in charger), `config` and `cli` (`divert evsemaster`).
"""
