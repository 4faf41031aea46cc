"""OpenEVSE over RAPI: codec (`rapi`), transports, driver, emulator and the `divert rapi` tool.

This package module stays light: config loading imports `chargers.openevse.config` only.
"""
