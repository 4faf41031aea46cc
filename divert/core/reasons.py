"""Why a decision is what it is, as a code: metrics, logs and MQTT use the code, people read
the one-line text beside it (which carries the numbers)."""

from enum import StrEnum


class Reason(StrEnum):
    OFF = "off"  # mode off
    FAST = "fast"  # fast mode: maximum current, grid allowed
    NO_DATA = "no_data"  # surplus unknown, not charging
    FAIL_SAFE = "fail_safe"  # surplus unknown while charging: minimum current
    FAIL_SAFE_PAUSE = "fail_safe_pause"  # unknown for stale_pause_s: pause
    WAITING = "waiting"  # not enough surplus yet, or not for long enough
    STARTING = "starting"  # the policy starts
    CHARGING = "charging"  # following the surplus
    BRIDGING = "bridging"  # charging through a dip the sun is expected to end
    STOPPING = "stopping"  # the policy stops
    HOLDING = "holding"  # the guard keeps the relay on (minimum on-time) against the policy
    BLOCKED_MIN_OFF = "blocked_min_off_time"  # a start the minimum off-time holds back
    BLOCKED_HOUR = "blocked_hourly_budget"  # … the rolling hour's start budget holds back
    BLOCKED_DAY = "blocked_daily_budget"  # … the rolling 24 h budget holds back
    BLOCKED_UNSAVED = "blocked_unsaved"  # … that could not be recorded first (state file)
    RESTART_HOLD = "restart_hold"  # restart-only: keeping the session's current
    RESTARTING = "restarting"  # restart-only: stopping to start again at a new current
    PHASE_SWITCH = "phase_switch"  # switching between one and three phases
    PLAN = "plan"  # a departure plan charges at full power (or will not let go)
    SHARING = "sharing"  # the policy decided on its share of a surplus other chargers share
    SITE_LIMITED = "site_limited"  # the site's import or phase-current limit holds it back
    NO_VEHICLE = "no_vehicle"  # no car connected: no share of the surplus
    FAULT = "fault"  # the charger reports a fault: no share of the surplus

    @property
    def blocked(self) -> bool:
        """A start the relay guard held back."""
        return self in (Reason.BLOCKED_MIN_OFF, Reason.BLOCKED_HOUR, Reason.BLOCKED_DAY,
                        Reason.BLOCKED_UNSAVED)
