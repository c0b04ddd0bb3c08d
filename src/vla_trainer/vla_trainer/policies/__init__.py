"""Policies by name (``--policy.type=act``): torch modules that map features to an action chunk."""
from vla_trainer.policies.base import (POLICIES, Policy, PolicyConfig, make_policy, masked_mean, parameter_count,
                                       policy_class, register_policy)
from vla_trainer.policies import act, diffusion, mlp  # noqa: F401  (registration)

__all__ = ["POLICIES", "Policy", "PolicyConfig", "make_policy", "masked_mean", "parameter_count", "policy_class",
           "register_policy"]
