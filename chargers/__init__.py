"""Charger drivers. `registry` maps a config `type` to its config model and driver."""
