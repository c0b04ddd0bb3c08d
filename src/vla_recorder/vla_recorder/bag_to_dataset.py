"""ROS 2 bags (MCAP, as `ros2 bag record -s mcap`, Foxglove or this recorder write them) -> dataset episodes, through a
robot contract. No ROS graph: messages are decoded from the bag's own schemas (mcap-ros2-support).

Each bag (an ``.mcap`` file, or a rosbag2 directory holding them) becomes one episode. Frames are assembled the way
the recorder assembles them live (:class:`vla_recorder.sampler.FrameSampler`, the same contract codecs): camera
images and joint states by their header stamps, commands and operator interventions by the time the bag logged them,
moved onto the stamps' clock by the first image's offset (a bag recorded by another process logs wall time while a
simulation stamps simulated time). A frame without every camera is dropped and counted; a missing or non-finite
state or command makes the frame invalid, never invented. The instruction is the bag's last ``instruction`` message
unless one is given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from vla_core.contract import RobotContract
from vla_core.dataset import DatasetError, DatasetWriter
from vla_core.image import ImageError
from vla_recorder.convert import command_vector, image_to_feature, joint_state_vector
from vla_recorder.sampler import FrameSampler

INTERVENTION_TOPIC = "teleop/intervention"


class BagError(ValueError):
    """A bag that cannot be converted as asked; the message names the bag and the fix."""


@dataclass
class BagSummary:
    bag: str
    episode_index: int
    frames: int
    dropped: int
    invalid: int
    late: int
    refused_images: int
    instruction: str


def bag_files(path: Path) -> list[Path]:
    """The MCAP files of one bag: the file itself, or a rosbag2 directory's ``*.mcap`` in name order."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.mcap"))
    if not files:
        raise BagError(f"{path}: no .mcap file (record with `ros2 bag record -s mcap` or convert the bag to MCAP)")
    return files


def _match(topics: set[str], wanted: str, what: str, bag: Path, required: bool) -> str | None:
    """The bag topic for a contract topic: the same name (leading '/' ignored), else one unique namespaced one."""
    name = wanted.strip("/")
    exact = [t for t in topics if t.strip("/") == name]
    if exact:
        return exact[0]
    namespaced = [t for t in topics if t.strip("/").endswith("/" + name)]
    if len(namespaced) == 1:
        return namespaced[0]
    if required:
        raise BagError(f"{bag}: no topic for {what} '{wanted}' (topics: {', '.join(sorted(topics))}); record it "
                       "or pass the bag's topic name")
    return None


def _stamp(msg) -> float:
    return float(msg.header.stamp.sec) + 1e-9 * float(msg.header.stamp.nanosec)


def convert_bag(bag: Path, writer: DatasetWriter, contract: RobotContract, instruction: str | None = None,
                command_topic: str | None = None, intervention_topic: str = INTERVENTION_TOPIC,
                success: bool | None = None) -> BagSummary:
    """Append one bag to ``writer`` as one episode; raises BagError when the bag lacks a contract topic."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    files = bag_files(bag)
    topics: set[str] = set()
    for path in files:
        with open(path, "rb") as f:
            summary = make_reader(f).get_summary()
        topics |= {c.topic for c in (summary.channels.values() if summary else [])}
    cams = {_match(topics, cam.topic, f"camera {cam.name}", bag, True): cam for cam in contract.cameras}
    state_topic = _match(topics, contract.state.topic, "joint states", bag, True)
    cmd_topic = _match(topics, command_topic or contract.action.topic, "commands", bag, True)
    flag_topic = _match(topics, intervention_topic, "interventions", bag, False)
    text_topic = _match(topics, contract.instruction_topic, "instruction", bag, False)
    sampler = FrameSampler(contract.fps, [f"observation.images.{c.name}" for c in contract.cameras],
                           len(contract.state.names), contract.action.dim)
    offset = _clock_offset(files, next(iter(cams)))
    frames: list[dict] = []
    refused = 0
    texts: list[str] = []
    started = False
    last_time = 0.0
    wanted = [t for t in (*cams, state_topic, cmd_topic, flag_topic, text_topic) if t]
    for path in files:
        with open(path, "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            for _, channel, message, msg in reader.iter_decoded_messages(topics=wanted, log_time_order=True):
                now = (message.log_time - offset) * 1e-9  # integer nanoseconds first: no rounding
                last_time = max(last_time, now)
                topic = channel.topic
                if topic in cams:
                    cam = cams[topic]
                    try:
                        rgb, _ = image_to_feature(msg, cam)
                    except (ImageError, ValueError):
                        refused += 1
                        continue
                    if not started:
                        sampler.start(_stamp(msg))
                        started = True
                    sampler.offer_image(f"observation.images.{cam.name}", _stamp(msg), rgb)
                elif topic == state_topic:
                    sampler.offer_state(_stamp(msg), joint_state_vector(msg, contract))
                elif topic == cmd_topic:
                    sampler.offer_command(now, command_vector(msg, contract))
                elif topic == flag_topic:
                    sampler.offer_intervention(now, bool(getattr(msg, "active", False)))
                elif topic == text_topic:
                    texts.append(str(msg.data))
                if started:
                    frames.extend(sampler.poll(now))
    if not started:
        raise BagError(f"{bag}: no usable image on {', '.join(cams)} ({refused} refused); nothing to convert")
    sampler.stop(math.inf)
    frames.extend(sampler.poll(last_time + 1.0 / contract.fps, flush=True))
    text = instruction if instruction is not None else (texts[-1] if texts else "")
    if not text:
        raise BagError(f"{bag}: no instruction message on '{contract.instruction_topic}'; pass --instruction TEXT")
    if not frames:
        raise BagError(f"{bag}: no complete frame (every camera of the contract in one slot); check the topics")
    episode = writer.begin_episode(text, contract=yaml.safe_dump(_contract_text(contract)))
    try:
        for frame in frames:
            episode.add_frame(frame)
    except DatasetError:
        episode.discard()
        raise
    episode.count_dropped(sampler.counters.dropped)
    episode.start_stamp = sampler.t0 or 0.0
    row = episode.save(success=success)
    return BagSummary(str(bag), row["episode_index"], row["length"], row["dropped_frames"], row["invalid_frames"],
                      row["late_frames"], refused, text)


def _clock_offset(files: list[Path], camera_topic: str) -> int:
    """log time - header stamp of the first image (nanoseconds): what moves log times onto the stamps' clock."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    for path in files:
        with open(path, "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            for _, _, message, msg in reader.iter_decoded_messages(topics=[camera_topic], log_time_order=True):
                return message.log_time - (int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec))
    return 0


def _contract_text(contract: RobotContract):
    source = Path(contract.source) if contract.source else None
    return yaml.safe_load(source.read_text()) if source and source.is_file() else {"robot": contract.robot}


def bags_to_dataset(bags: list[Path], out: Path, contract: RobotContract, instruction: str | None = None,
                    command_topic: str | None = None, intervention_topic: str = INTERVENTION_TOPIC,
                    success: bool | None = None, gaps: str = "fill", codec: str = "libx264") -> list[BagSummary]:
    """Convert ``bags`` (in order) into episodes of the dataset at ``out`` (created, or appended to when it was
    recorded under the same contract)."""
    writer = DatasetWriter(out, contract.fps, contract.features(), robot_type=contract.robot, codec=codec, gaps=gaps)
    return [convert_bag(Path(b), writer, contract, instruction, command_topic, intervention_topic, success)
            for b in bags]
