"""Property-based tests (hypothesis): for any sequence of inputs the shield's output satisfies every limit,
e-stop always yields zero motion, a non-finite value never passes and a stale source always stops."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla_safety.shield import Shield

DT = 0.1
TIMEOUT = 0.5
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

value = st.floats(-5.0, 5.0)
non_finite = st.sampled_from([float("nan"), float("inf"), -float("inf")])


def poisoned(dim):
    """A command of the right size with one non-finite value somewhere."""
    return st.tuples(st.lists(value, min_size=dim, max_size=dim), st.integers(0, dim - 1), non_finite).map(
        lambda c: c[0][:c[1]] + [c[2]] + c[0][c[1] + 1:])


def command(dim):
    right = st.lists(value, min_size=dim, max_size=dim)
    wrong = st.lists(st.floats(-1, 1), min_size=0, max_size=dim + 2).filter(lambda v: len(v) != dim)
    return st.one_of(st.none(), right, right, right, poisoned(dim), wrong)


def tick(dim):
    return st.fixed_dictionaries({
        "teleop": command(dim), "policy": command(dim),
        "estop": st.sampled_from([None, None, None, None, True, False]),
        "reset": st.booleans(),
        "gap": st.sampled_from([1, 1, 1, 1, 2, 7]),  # ticks until the next step: 7 ticks = a stale gap
    })


def feed(shield, t, event, sent_at):
    for source in ("teleop", "policy"):
        if event[source] is not None:
            shield.offer_command(source, event[source], t)
            sent_at[source] = (t, event[source])
    if event["estop"] is not None:
        shield.estop_input(event["estop"], t)
    if event["reset"]:
        shield.reset()


def nothing_valid_fresh(sent_at, t, dim):
    """True when no source has a fresh, valid command (then only a stop may come out)."""
    for stamp, values in sent_at.values():
        v = np.asarray(values, dtype=float)
        if t - stamp <= TIMEOUT + 1e-9 and v.shape == (dim,) and np.all(np.isfinite(v)):
            return False
    return True


@SETTINGS
@given(st.lists(tick(6), min_size=1, max_size=40))
def test_twist_output_always_within_limits(params, config, events):
    p = params(teleop_timeout=TIMEOUT, policy_timeout=TIMEOUT, max_jerk=[20.0, 0, 0, 0, 0, 20.0])
    shield = Shield(config(**p))
    vmax, amax = np.array(p["max_velocity"]), np.maximum(p["max_accel"], p["max_decel"])
    prev, t, sent_at = np.zeros(6), 0.0, {}
    for event in events:
        feed(shield, t, event, sent_at)
        out, report = shield.step(t)
        assert out.shape == (6,) and np.all(np.isfinite(out))
        assert np.all(np.abs(out) <= vmax + 1e-12)
        # Speeding up is bounded by the acceleration limit; braking toward zero never is.
        lo, hi = prev - amax * DT - 1e-12, prev + amax * DT + 1e-12
        assert np.all((out >= np.minimum(lo, 0)) & (out <= np.maximum(hi, 0)))
        faster = (np.abs(out) > np.abs(prev)) & (out * prev >= 0)
        assert np.all(np.abs(out - prev)[faster] <= (np.array(p["max_accel"]) * DT + 1e-12)[faster])
        if shield.estopped:
            assert np.all(out == 0) and report.estop
        if nothing_valid_fresh(sent_at, t, 6):
            assert np.all(out == 0) and report.stopped
        prev = out
        t = round(t + event["gap"] * DT, 9)
        if event["gap"] > 1:  # the shield's timer ticks through a gap too
            for k in range(1, event["gap"]):
                out, _ = shield.step(round(t - (event["gap"] - k) * DT, 9))
                assert np.all(np.abs(out) <= vmax + 1e-12)
                assert np.all((out >= np.minimum(prev - amax * DT - 1e-12, 0))
                              & (out <= np.maximum(prev + amax * DT + 1e-12, 0)))
                prev = out


@SETTINGS
@given(st.lists(tick(7), min_size=1, max_size=30), st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7))
def test_joint_positions_always_within_limits(config, events, start):
    shield = Shield(config(command_type="joint_position", teleop_timeout=TIMEOUT, policy_timeout=TIMEOUT,
                           joint_max_step=[0.05]))
    lim = shield.config.joints
    lower, upper = lim.lower, lim.upper
    max_step = np.minimum(lim.max_step, lim.max_velocity * DT)
    q0 = np.clip(start, lower, upper)
    shield.set_position(q0, 0.0)
    prev, t, sent_at = None, 0.0, {}
    for event in events:
        feed(shield, t, event, sent_at)
        shield.set_position(q0 if prev is None else prev, t)  # the arm follows its commands
        out, report = shield.step(t)
        if out is None:
            assert prev is None  # nothing is ever published before there is a position to start from
            t = round(t + event["gap"] * DT, 9)
            continue
        assert out.shape == (7,) and np.all(np.isfinite(out))
        assert np.all((out >= lower - 1e-12) & (out <= upper + 1e-12))
        ref = q0 if prev is None else prev
        assert np.all(np.abs(out - ref) <= max_step + 1e-12)
        if shield.estopped or nothing_valid_fresh(sent_at, t, 7):
            assert np.array_equal(out, ref)  # a stop holds the position: zero motion
        prev = out
        t = round(t + event["gap"] * DT, 9)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["teleop", "policy"]), st.one_of(st.lists(value, min_size=6, max_size=6),
                                                                            poisoned(6))),
                min_size=1, max_size=10), st.integers(1, 6))
def test_repeated_steps_within_one_period_never_add_up(params, config, commands, repeats):
    """A timer tick and commands at the same instant: the output still moves at most one period's worth."""
    p = params()
    shield = Shield(config(**p))
    amax = np.maximum(p["max_accel"], p["max_decel"])
    prev = np.zeros(6)
    for k, (source, values) in enumerate(commands):
        t = k * DT
        for _ in range(repeats):
            shield.offer_command(source, values, t)
            out, _ = shield.step(t)
            assert np.all((out >= np.minimum(prev - amax * DT - 1e-12, 0))
                          & (out <= np.maximum(prev + amax * DT + 1e-12, 0)))
        prev = out
