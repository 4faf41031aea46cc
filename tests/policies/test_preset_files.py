"""Preset files a user names: regular TOML files under a size cap, every value a finite number
of the right kind; anything else is one PresetError, never a traceback or a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from divert.policies.presets import MAX_PRESET_BYTES, PresetError, load_preset


@pytest.mark.parametrize(("text", "message"), [
    # Issue 14: non-UTF-8 bytes, and tables that are no tables, ended in tracebacks.
    (b"\xff\xfe[policy]\n", "cannot read policy file '{path}': not UTF-8 text (byte 0)"),
    (b"policy = 5\n", "policy p: [policy] must be a table, got 5"),
    (b'policy = "ab"\n', "policy p: [policy] must be a table, got 'ab'"),
    (b"relay = [1]\n", "policy p: [relay] must be a table, got [1]"),
    (b"[policy]\nkind = 5\n", "policy p: policy.kind must be one of surplus, openevse"),
    (b"[policy]\nkind = [1]\n", "policy p: policy.kind must be one of surplus, openevse"),
    (b'[policy]\nimport_weight = "5"\n', "policy p: import_weight must be a number, got '5'"),
    (b"[policy]\nimport_weight = true\n", "policy p: import_weight must be a number, got True"),
    (b"[policy]\nimport_weight = inf\n",
     "policy p: import_weight must be a finite number, got inf"),
    (b"[policy]\nbogus = 1\n", "policy p: policy.bogus: unknown for kind surplus"),
    # Found by the fuzz harness: an integer beyond a float ended in OverflowError.
    (b"[policy]\nimport_weight = 1" + b"0" * 400 + b"\n",
     "policy p: import_weight must be within ±1e15, got 1000"),
    (b'[policy]\nkind = "openevse"\npv_ratio = nan\n',
     "policy p: pv_ratio must be a finite number, got nan"),
    (b'[relay]\nmin_on_s = "x"\n', "policy p: min_on_s must be a number, got 'x'"),
    (b"[relay]\nmin_on_s = -1\n", "policy p: min_on_s must be a number from 0 to 86400, got -1"),
    (b"[relay]\nmax_starts_per_hour = 2.5\n",
     "policy p: max_starts_per_hour must be a whole number from 1 to 60, got 2.5"),
    (b"[relay]\nphase_tau_s = nan\n", "policy p: phase_tau_s must be a finite number, got nan"),
    (b"[relay]\nmax_relays = 1\n", "policy p: relay.max_relays: unknown key"),
    (b"[policy]\nx = " + b"[" * 1000 + b"]" * 1000 + b"\n",
     "policy p: invalid TOML: nested too deeply"),
    (b"[policy]\nx = " + b"1" * 5000 + b"\n", "policy p: invalid TOML: a number with too many"),
    (b"#" * (MAX_PRESET_BYTES + 1), "cannot read policy file '{path}': larger than 64 KiB"),
])
def test_bad_preset_file_is_one_preset_error(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(text)
    with pytest.raises(PresetError) as err:
        load_preset(str(path))
    assert str(err.value).startswith(message.format(path=path)), str(err.value)


def test_a_whole_number_of_starts_is_taken() -> None:
    assert load_preset("balanced").relay.max_starts_per_hour == 2


@pytest.mark.parametrize("name", ["/dev/zero", "/dev/stdin", "/", "fifo", "a" * 5000,
                                  "/tmp/" + "a" * 5000 + ".toml", "nul\0.toml"])
def test_a_preset_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, name: str) -> None:
    os.mkfifo(tmp_path / "fifo.toml")  # reading it would block until a writer comes
    if name == "fifo":
        name = str(tmp_path / "fifo.toml")
    with pytest.raises(PresetError, match=r"^(no preset|cannot read policy file)"):
        load_preset(name)
