"""Sim-robot lifecycle node: a gymnasium environment that looks like a robot on ROS topics.

Publishes (relative names, so a namespace moves them all):
  camera/<name>/image_raw (sensor_msgs/Image rgb8), camera/<name>/camera_info (every camera of the environment:
  the arm's scene and wrist), joint_states,
  instruction (std_msgs/String, latched), episode/events (vla_interfaces/EpisodeEvent),
  sim/state (vla_interfaces/SimState, ground truth for scripted experts), /clock (when publish_clock),
  /diagnostics.
Subscribes: cmd_vel (geometry_msgs/Twist), or cmd (std_msgs/Float64MultiArray or trajectory_msgs/JointTrajectory),
per ``command_type``. Every command is checked before it is kept (vla_sim.command_gate): the wrong length, NaN/Inf,
a trajectory to other joints, or (position control) a target outside the contract's low/high is refused, counted in
/diagnostics and never applied; a stale command stops a velocity-controlled robot and makes a position-controlled
one hold where it is.
Services: ~/reset (vla_interfaces/ResetEpisode): the seed (0 .. 2**32 - 1, or negative for the next one) and the
instruction (checked by vla_core.text) are validated before anything changes; a refused reset leaves the
episode running and publishes no event.

The simulation steps on a steady-clock timer at fps x real_time_factor; simulated time advances one
control period per step and, with publish_clock, drives every use_sim_time node. A step publishes its frame
(images, joint states, sim/state) before its /clock tick, as a robot's sensors sample before the controller that
reads them ticks: a node acting on the clock's tick has that instant's observation. With ``lockstep`` the next
step also waits for a command that arrived after the frame (the answer to it; at most ``lockstep_timeout`` of
wall-clock time), so the command that answers observation k is the one applied at step k on an idle or a busy
machine alike. INACTIVE: paused, no output.
"""
from __future__ import annotations

import copy
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from vla_core.codecs import CommandError, planar_twist_fields
from vla_core.contract import RobotContract
from vla_core.errors import ConfigError
from vla_core.paths import workspace_path
from vla_interfaces.msg import EpisodeEvent, SimState
from vla_interfaces.srv import ResetEpisode
from vla_ros import node_qos
from vla_ros.convert import (joint_state_msg, joint_trajectory_to_array, multiarray_to_array, pinhole_camera_info,
                             rgb_to_image, seconds_to_time, sent_time, twist_to_array)
from vla_ros.node_base import ManagedNode, main_for
from vla_sim.backends import PRESETS, make_backend
from vla_sim.command_gate import CommandGate, following_seed, reset_request
from vla_sim.contract_check import contract_mismatches
from vla_sim.randomization import PARAM_PREFIX, ranges_from_params
from vla_sim.sim_params import SIM_ROBOT_PARAMS


def takes_randomization(preset: str) -> bool:
    """Whether the preset's env draws domain randomisation (the embedded tabletop and arm envs)."""
    return preset.startswith("tabletop") or preset == "arm"


def backend_config(params: dict) -> dict:
    """The backend configuration for these node parameters: the preset, with size, limit and id overrides."""
    config = copy.deepcopy(PRESETS[params["preset"]])
    if params["env_id"]:
        config["env_id"] = params["env_id"]
    kwargs = config.setdefault("env_kwargs", {})
    if params["preset"].startswith("tabletop") or params["preset"] == "arm":
        kwargs["image_size"] = [params["image_height"], params["image_width"]]
        kwargs["instruction_set"] = params["instruction_set"]
        kwargs["max_episode_steps"] = params["max_episode_steps"]
    else:
        kwargs["observation_height"], kwargs["observation_width"] = params["image_height"], params["image_width"]
    config["max_episode_steps"] = params["max_episode_steps"]
    ranges = ranges_from_params(params)
    if ranges.enabled and takes_randomization(params["preset"]):
        kwargs["randomization"] = ranges.to_dict()
    elif ranges.enabled:
        raise ConfigError(f"preset {params['preset']!r} takes no domain randomisation (the tabletop and arm presets "
                          f"do); set every {PARAM_PREFIX}* parameter to 0")
    return config


class SimRobotNode(ManagedNode):
    PARAMS = SIM_ROBOT_PARAMS

    def __init__(self, **kwargs):
        super().__init__("sim_robot", **kwargs)
        self.backend = None
        self._timer = None
        self._pubs: dict = {}
        self._cams: dict = {}
        self._entities: list = []

    # ---- lifecycle ------------------------------------------------------------------------------
    def configure(self, p: dict) -> None:
        self.backend = make_backend(backend_config(p))
        b = self.backend
        # Camera name -> frame_id: the environment's own cameras, or the one named by camera_name.
        self.cameras = ({c: f"camera_{c}_optical_frame" for c in b.camera_names} if b.camera_names
                        else {p["camera_name"]: p["camera_frame_id"]})
        low, high = (b.action_low, b.action_high) if b.position_controlled else (None, None)
        if p["contract"]:
            contract = RobotContract.from_yaml(workspace_path(p["contract"]))
            problems = contract_mismatches(contract, fps=b.fps, cameras={c: b.image_shape for c in self.cameras},
                                           joint_names=b.joint_names, action_dim=len(b.action_names),
                                           command_type=p["command_type"],
                                           action_names=b.action_names if b.position_controlled else None)
            if problems:
                raise ConfigError(problems, source=f"contract {p['contract']}")
            if b.position_controlled:  # the contract's limits, which the shield enforces too
                low, high = contract.action.low, contract.action.high
        dim = len(b.action_names)
        if p["command_type"] == "twist" and (dim > 3 or b.position_controlled):
            raise ConfigError(f"command_type 'twist' carries at most 3 planar velocities but {b.env_id} takes {dim} "
                              f"{'joint positions' if b.position_controlled else 'values'}; set command_type: "
                              "float64_multiarray (or joint_trajectory)")
        self.twist_fields = planar_twist_fields(dim) if p["command_type"] == "twist" else ()
        self.dt = 1.0 / b.fps
        self.gate = CommandGate(dim=dim, timeout=p["command_timeout"], low=low, high=high, names=b.action_names)
        lp = self.create_lifecycle_publisher
        self._cams = {cam: (lp(Image, f"camera/{cam}/image_raw", node_qos.SENSOR_PUB),
                            lp(CameraInfo, f"camera/{cam}/camera_info", node_qos.SENSOR_PUB)) for cam in self.cameras}
        self._pubs = {
            **{f"camera/{c}/{kind}": pub for c, pubs in self._cams.items() for kind, pub in zip(("image", "info"), pubs)},
            "joints": lp(JointState, "joint_states", node_qos.SENSOR_PUB),
            "instruction": lp(String, "instruction", node_qos.LATCHED),
            "events": lp(EpisodeEvent, "episode/events", node_qos.EVENTS),
            "state": lp(SimState, "sim/state", node_qos.SENSOR_PUB),
            "diagnostics": lp(DiagnosticArray, "/diagnostics", 10),
        }
        if p["publish_clock"]:
            self._pubs["clock"] = self.create_publisher(ClockMsg, "/clock", node_qos.CLOCK)
        if p["command_type"] == "twist":
            sub = self.create_subscription(Twist, "cmd_vel", self._on_twist, node_qos.COMMAND)
        elif p["command_type"] == "joint_trajectory":
            sub = self.create_subscription(JointTrajectory, "cmd", self._on_trajectory, node_qos.COMMAND)
        else:
            sub = self.create_subscription(Float64MultiArray, "cmd", self._on_multiarray, node_qos.COMMAND)
        self._entities = [sub, self.create_service(ResetEpisode, "~/reset", self._on_reset)]
        self.sim_time = 0.0
        self.next_seed = p["seed"]
        self.episode_index = -1
        self.episode_steps = 0
        self.frame = None
        self.totals = {"steps": 0, "episodes": 0, "successes": 0, "lockstep_timeouts": 0,
                       "previous_episode_commands": 0}
        self._frame_sent = self._episode_sent = float("-inf")  # system clock (s) when they were published
        self._answered, self._frame_wall, self._next_step_wall = True, time.monotonic(), 0.0
        self.resets_refused = 0
        self._rate_window = (time.monotonic(), 0, 0.0)
        self.get_logger().info(
            f"{b.env_id}: {b.image_shape[1]}x{b.image_shape[0]} cameras {list(self.cameras)}, joints "
            f"{list(b.joint_names)}, {'joint-position' if b.position_controlled else 'velocity'} commands, "
            f"{b.fps:g} Hz x {p['real_time_factor']:g} real time" + (" at most, in lockstep" if p["lockstep"] else ""))

    def activate(self) -> None:
        self.gate.clear()
        self._start_episode(seed=None, instruction=None)
        self._start_stepping()
        self.start_diagnostics()

    def on_parameters_changed(self, changed: dict) -> None:
        """command_timeout applies to the next command, seed and the randomization_* ranges to the next episode,
        real_time_factor to the next step (the step timer is restarted); auto_reset and publish_privileged_state
        are read where used."""
        if any(name.startswith(PARAM_PREFIX) for name in changed):
            self.backend.set_randomization(ranges_from_params(self.params))  # ValueError refuses the change
        if "command_timeout" in changed:
            self.gate.timeout = changed["command_timeout"]
        if "seed" in changed:
            self.next_seed = changed["seed"]
        if "real_time_factor" in changed and self._timer is not None:
            self.destroy_timer(self._timer)
            self._start_stepping()

    def deactivate(self) -> None:
        self.stop_diagnostics()
        self._timer = self.drop_timer(self._timer)
        t = self.totals
        self.get_logger().info(f"{t['steps']} steps, {t['episodes']} episodes ({t['successes']} successes)"
                               + (f", {t['lockstep_timeouts']} lockstep timeouts" if self.params["lockstep"] else ""))
        if self.frame is not None and self.episode_index >= 0:
            self._publish_event(EpisodeEvent.ABORTED)
        if self.gate is not None:
            self.gate.clear()

    def cleanup(self) -> None:
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        for entity in self._entities:
            (self.destroy_service if hasattr(entity, "srv_type") else self.destroy_subscription)(entity)
        self._pubs, self._cams, self._entities = {}, {}, []
        if self.backend is not None:
            self.backend.close()
        self.backend, self.gate, self.frame = None, None, None

    # ---- commands --------------------------------------------------------------------------------
    def _on_twist(self, msg: Twist, info) -> None:
        self._offer(twist_to_array(msg, self.twist_fields), sent_time(info))

    def _on_multiarray(self, msg: Float64MultiArray, info) -> None:
        self._offer(multiarray_to_array(msg), sent_time(info))

    def _on_trajectory(self, msg: JointTrajectory, info) -> None:
        if not self.is_active or self.gate is None:
            return
        try:
            values = joint_trajectory_to_array(msg, self.backend.action_names)
        except CommandError as exc:  # other joints, no points, a short point, NaN/Inf: never applied
            if exc.reason == "non_finite":
                self.gate.rejected_nonfinite += 1
            else:
                self.gate.rejected_malformed += 1
            self.get_logger().warning(f"command rejected: {exc}", throttle_duration_sec=1.0)
            return
        self._offer(values, sent_time(info))

    def _offer(self, values: np.ndarray, sent: float | None = None) -> None:
        """Take a command sent at ``sent`` (the publisher's system clock, s; None if unknown). One sent before
        this episode's first frame answers the previous episode (its last frame, arriving after the reset): it
        is not applied, and counted. Only one sent after the current frame answers it in lockstep."""
        if not self.is_active or self.gate is None:
            return  # INACTIVE: the robot is not commandable
        if sent is not None and sent < self._episode_sent:
            self.totals["previous_episode_commands"] += 1
            return
        reason = self.gate.offer(values, self.sim_time)
        if reason:
            self.get_logger().warning(f"command rejected: {reason}", throttle_duration_sec=1.0)
        # A refused command answers too: the robot then stops or holds.
        self._answered = self._answered or sent is None or sent >= self._frame_sent
        if self.params["lockstep"] and self._timer is not None and time.monotonic() >= self._next_step_wall:
            self._step()  # the answer came after the top speed allows the next step: take it now

    # ---- simulation ---------------------------------------------------------------------------
    def _start_stepping(self) -> None:
        """Step on a steady-clock timer at the top speed (fps x real_time_factor)."""
        self._period = 1.0 / (self.backend.fps * self.params["real_time_factor"])
        self._timer = self.create_timer(self._period, self._step, clock=self._steady)

    def _waiting_for_answer(self) -> bool:
        """In lockstep, whether the step must still wait for the command that answers the last frame."""
        if not self.params["lockstep"] or self._answered:
            return False
        if time.monotonic() - self._frame_wall < self.params["lockstep_timeout"]:
            return True
        self.totals["lockstep_timeouts"] += 1
        return False

    def _stamp(self):
        return seconds_to_time(self.sim_time) if "clock" in self._pubs else self.get_clock().now().to_msg()

    def _start_episode(self, seed: int | None, instruction: str | None, abort_running: bool = False) -> None:
        """Reset the environment (``seed`` None: the next in sequence) and announce the episode. With
        ``abort_running`` the running episode's ABORTED event goes out first, once the reset has succeeded.

        Raises:
            ValueError: the environment cannot start that episode; nothing changed, nothing was published.
        """
        seed = self.next_seed if seed is None else seed
        aborted = self._event(EpisodeEvent.ABORTED) if abort_running and self.frame is not None else None
        self.frame = self.backend.reset(seed, instruction)
        if aborted is not None:
            self._pubs["events"].publish(aborted)
        self.next_seed = following_seed(seed)
        self.seed = seed
        self.episode_index += 1
        self.episode_steps = 0
        # A reset takes one control period: the episode's first frame has its own instant and clock tick, so the
        # operator and the policy answer it (in lockstep, the sim waits for that answer); no command of the
        # previous episode carries over into this one.
        self.sim_time += self.dt
        self.gate.clear()
        self._episode_sent = time.time()  # commands sent before this answer the previous episode
        self.episode_start = self.sim_time
        self._pubs["instruction"].publish(String(data=self.backend.instruction))
        self._publish_event(EpisodeEvent.START)
        self._publish_frame()
        if "clock" in self._pubs:
            self._pubs["clock"].publish(ClockMsg(clock=seconds_to_time(self.sim_time)))

    def _step(self) -> None:
        if not self.is_active or self.backend is None or self.frame is None or self._waiting_for_answer():
            return
        self._next_step_wall = time.monotonic() + self._period - 1e-4
        hold = self.backend.hold_action() if self.backend.position_controlled else None
        action, _ = self.gate.current(self.sim_time, hold=hold)
        self.frame = self.backend.step(action)
        self.sim_time += self.dt
        self.episode_steps += 1
        self.totals["steps"] += 1
        self._publish_frame()  # the observation first, then the tick of the clock that reads it
        if "clock" in self._pubs:
            self._pubs["clock"].publish(ClockMsg(clock=seconds_to_time(self.sim_time)))
        if self.frame.terminated or self.frame.truncated:
            success = self.frame.is_success
            self.totals["episodes"] += 1
            self.totals["successes"] += int(success)
            self._publish_event(EpisodeEvent.SUCCESS if success else EpisodeEvent.TIMEOUT)
            if self.params["auto_reset"]:
                self._start_episode(seed=None, instruction=None)
            else:
                self.frame = None
                self._timer = self.drop_timer(self._timer)

    def _publish_frame(self) -> None:
        self._answered, self._frame_wall, self._frame_sent = False, time.monotonic(), time.time()
        stamp, f, b = self._stamp(), self.frame, self.backend
        for name, (image_pub, info_pub) in self._cams.items():
            frame_id = self.cameras[name]
            image = rgb_to_image(f.images.get(name, f.image), stamp, frame_id)
            image_pub.publish(image)
            info_pub.publish(pinhole_camera_info(image.height, image.width, 60.0, stamp, frame_id))
        self._pubs["joints"].publish(joint_state_msg(b.joint_names, f.joint_positions, f.joint_velocities,
                                                     stamp=stamp))
        if self.params["publish_privileged_state"]:
            state = SimState(env_id=b.env_id, episode_index=self.episode_index, step=self.episode_steps,
                             instruction=b.instruction, privileged=b.privileged_state().tolist(),
                             task_state_names=list(b.task_state_names), task_state=b.task_state().tolist())
            state.header.stamp = stamp
            self._pubs["state"].publish(state)

    def _event(self, kind: int) -> EpisodeEvent:
        event = EpisodeEvent(event=kind, episode_index=self.episode_index, seed=self.seed,
                             instruction=self.backend.instruction, steps=self.episode_steps,
                             sim_time=self.sim_time - self.episode_start)
        event.header.stamp = self._stamp()
        return event

    def _publish_event(self, kind: int) -> None:
        self._pubs["events"].publish(self._event(kind))

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response):
        if not self.is_active:
            response.success, response.message = False, "sim_robot is not active; activate it (vla up) first"
            return response
        try:
            seed, instruction = reset_request(request.seed, request.instruction, self.next_seed)
            self._start_episode(seed, instruction, abort_running=True)
        except ValueError as exc:  # a bad seed or instruction, or one the environment cannot follow
            self.resets_refused += 1
            self.get_logger().warning(f"reset refused ({self.resets_refused} so far): {exc}",
                                      throttle_duration_sec=1.0)
            response.success, response.message = False, f"reset refused: {exc}"
            return response
        if self._timer is None:
            self._start_stepping()
        response.success, response.message = True, "episode started"
        response.episode_index, response.seed, response.instruction = (
            self.episode_index, self.seed, self.backend.instruction)
        return response

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        t0, steps0, sim0 = self._rate_window
        elapsed = max(now - t0, 1e-9)
        self._rate_window = (now, self.totals["steps"], self.sim_time)
        values = {**self.totals, **self.gate.counters(), "resets_refused": self.resets_refused,
                  "step_rate_hz": f"{(self.totals['steps'] - steps0) / elapsed:.1f}",
                  "real_time_factor": f"{(self.sim_time - sim0) / elapsed:.2f}",
                  "episode": self.episode_index, "instruction": self.backend.instruction}
        rejected = self.gate.rejected
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if rejected else DiagnosticStatus.OK,
            name=f"{self.get_name()}: simulation", hardware_id=self.backend.env_id,
            message=f"{rejected} commands rejected" if rejected else "running",
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._stamp()
        self._pubs["diagnostics"].publish(array)


main = main_for(SimRobotNode)
