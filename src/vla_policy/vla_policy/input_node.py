"""The model inputs of a node that runs an artifact on the graph (the policy node, the reward node): camera
images, the contract's joint state and the instruction embedding are checked against the artifact
(:mod:`vla_policy.inputs`) and offered to the node's :class:`~vla_policy.inputs.InputCache`; a bad one is dropped
(nothing older is used in its place), counted by feature and reason, and logged with the value and the fix,
throttled.

A mixin for :class:`vla_ros.node_base.ManagedNode`: the node sets ``cache``, ``contract`` and ``encoder_id`` when it
configures (after :meth:`ModelInputs._init_input_counts`), and names what waits for a valid input in
``WAITING_FOR_INPUT`` (the end of the log line).
"""
from __future__ import annotations

import collections
import threading

from sensor_msgs.msg import Image, JointState

from vla_core.features import LANGUAGE, STATE
from vla_interfaces.msg import InstructionEmbedding
from vla_policy.inputs import InputError, embedding_input, image_input, state_vector
from vla_ros.convert import time_to_seconds

MAX_LOG_CHARS = 600


class ModelInputs:
    """Input callbacks and the drop accounting shared by the nodes that feed an artifact from the graph."""

    #: What the log line of a dropped input says waits for a valid one.
    WAITING_FOR_INPUT = "nothing is used until a valid one arrives"

    def _init_input_counts(self, lock: threading.Lock) -> None:
        """Zero the drop counts; ``lock`` is the one the node's status snapshot holds while it reads them."""
        self.rejects: collections.Counter = collections.Counter()  # (feature, reason) -> inputs dropped
        self.last_reject = ""
        self._reject_lock = lock

    def _offer_image(self, feature: str, msg: Image) -> bool:
        """Check ``msg`` and offer it to the cache as ``feature``; False if it was dropped."""
        try:
            rgb = image_input(msg.data, msg.height, msg.width, msg.encoding, msg.step)
            self.cache.offer(feature, rgb, time_to_seconds(msg.header.stamp), f"{msg.encoding[:32]} image")
        except InputError as exc:
            self._reject(feature, exc)
            return False
        return True

    def _offer_joints(self, msg: JointState) -> bool:
        try:
            vec = state_vector(msg.name, msg.position, msg.velocity, msg.effort, self.contract.state.joints,
                               self.contract.state.fields)
            self.cache.offer(STATE, vec, time_to_seconds(msg.header.stamp), "joint_states")
        except InputError as exc:
            self._reject(STATE, exc)
            return False
        return True

    def _offer_embedding(self, msg: InstructionEmbedding) -> bool:
        try:
            vec = embedding_input(msg.embedding, msg.encoder_id, self.encoder_id, msg.text)
            # The instruction holds until the next one (no stamp): it arrives once, latched.
            self.cache.offer(LANGUAGE, vec, None, f"encoder '{msg.encoder_id[:64]}'")
        except InputError as exc:
            self._reject(LANGUAGE, exc)
            return False
        return True

    def _reject(self, feature: str, exc: InputError) -> None:
        """Drop the feature (nothing older is used in its place), count it and say why, throttled."""
        self.cache.refuse(feature, str(exc))
        text = f"{feature} input dropped ({exc.reason}): {exc}"[:MAX_LOG_CHARS]
        with self._reject_lock:
            self.rejects[(feature, exc.reason)] += 1
            self.last_reject = text
        self.throttled_warning((feature, exc.reason), f"{text}; {self.WAITING_FOR_INPUT}")
