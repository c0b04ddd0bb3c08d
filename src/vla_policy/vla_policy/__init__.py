"""Policy serving: engines, action-chunk execution, zero-downtime hot-swap, and the policy node."""
