"""`vla deploy ARTIFACT`: ask the running policy node to verify, load and hot-swap a policy."""
from __future__ import annotations

import rclpy
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger

from vla_interfaces.srv import LoadPolicy


def register(sub) -> None:
    deploy = sub.add_parser("deploy", help="hot-swap a policy into the running policy node")
    deploy.add_argument("artifact", nargs="?", help="path, NAME or NAME/VERSION under models/")
    deploy.add_argument("--rollback", action="store_true", help="go back to the previous policy")
    deploy.add_argument("--node", default="/policy", help="policy node (default /policy)")
    deploy.add_argument("--timeout", type=float, default=60.0)
    deploy.set_defaults(func=run_deploy)


def run_deploy(args) -> int:
    if not args.artifact and not args.rollback:
        print("error: name an artifact (path, NAME or NAME/VERSION) or pass --rollback")
        return 2
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("vla_deploy")
    try:
        srv, request = ((Trigger, Trigger.Request()) if args.rollback else
                        (LoadPolicy, LoadPolicy.Request(artifact=args.artifact)))
        name = f"{args.node}/{'rollback' if args.rollback else 'load_policy'}"
        client = node.create_client(srv, name)
        if not client.wait_for_service(timeout_sec=10.0):
            print(f"error: {name} is not available; is a profile with the policy node up (vla up ...)?")
            return 1
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
        if not future.done():
            print(f"error: no answer from {name} within {args.timeout:g} s")
            return 1
        result = future.result()
        print(("deployed: " if result.success else "error: ") + result.message)
        return 0 if result.success else 1
    finally:
        node.destroy_node()
        rclpy.shutdown()
