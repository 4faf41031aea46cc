"""PSP EVSE controller v1.0 over its JSON WebAPI: a power-setpoint charger.

`config` holds the `[[chargers]]` model (light, imported at config load); `webapi` parses the
documented JSON; `client` moves it over HTTP with an allow-list of writes; `driver` is the
`Charger`; `emulator` is a strict stand-in for tests.
"""
