"""OpenEVSE: RAPI codec, emulator, driver on each transport, `divert rapi`, end to end."""
