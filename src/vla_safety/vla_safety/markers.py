"""RViz markers of the shield (no rclpy): zones and the workspace box as LINE_STRIPs in base_link (an arm's
end-effector box as a translucent cube), and a
sphere with a text whose colour says the state (green forwarding, yellow limited, red stopped/e-stop)."""
from __future__ import annotations

from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

ZONE_COLOURS = {"stop": (1.0, 0.0, 0.0), "slowdown": (1.0, 0.6, 0.0), "limit": (1.0, 1.0, 0.0),
                "approach": (0.0, 0.6, 1.0), "workspace": (0.6, 0.6, 0.6)}


def _colour(rgb, alpha=1.0) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=alpha)


def _strip(ns: str, mid: int, corners, rgb, stamp) -> Marker:
    m = Marker(ns=ns, id=mid, type=Marker.LINE_STRIP, action=Marker.ADD)
    m.header.frame_id, m.header.stamp = "base_link", stamp
    m.scale.x = 0.005
    m.pose.orientation.w = 1.0
    m.color = _colour(rgb)
    m.points = [Point(x=float(x), y=float(y), z=0.0) for x, y in list(corners) + [corners[0]]]
    return m


def shield_markers(shield, report, stamp) -> MarkerArray:
    """Markers for ``shield`` after ``report`` (None before the first step)."""
    markers = []
    cfg = shield.config
    for i, zone in enumerate(cfg.zones):
        markers.append(_strip(f"zone/{zone.name}", i, zone.polygon.tolist(), ZONE_COLOURS[zone.kind], stamp))
    if cfg.workspace is not None:
        (x0, y0), (x1, y1) = cfg.workspace.low[:2], cfg.workspace.high[:2]
        markers.append(_strip("workspace", 0, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)],
                              ZONE_COLOURS["workspace"], stamp))
    if cfg.joint_workspace is not None:  # the end effector's 3-D box (joint_position commands)
        box = cfg.joint_workspace.box
        cube = Marker(ns="workspace", id=1, type=Marker.CUBE, action=Marker.ADD)
        cube.header.frame_id, cube.header.stamp = "base_link", stamp
        centre, size = (box.low + box.high) / 2, box.high - box.low
        cube.pose.position.x, cube.pose.position.y, cube.pose.position.z = (float(v) for v in centre)
        cube.pose.orientation.w = 1.0
        cube.scale.x, cube.scale.y, cube.scale.z = (float(v) for v in size)
        cube.color = _colour(ZONE_COLOURS["workspace"], 0.15)
        markers.append(cube)
    if report is None or report.stopped:
        rgb, text = (1.0, 0.0, 0.0), "stopped" if report is None else "STOP: " + report.rules[-1][0]
    elif report.rules:
        rgb, text = (1.0, 0.8, 0.0), f"{report.source}: " + ", ".join(r for r, _ in report.rules)
    else:
        rgb, text = (0.0, 0.8, 0.0), f"{report.source}: ok"
    sphere = Marker(ns="state", id=0, type=Marker.SPHERE, action=Marker.ADD)
    label = Marker(ns="state", id=1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, text=text)
    for m, size in ((sphere, 0.05), (label, 0.03)):
        m.header.frame_id, m.header.stamp = "base_link", stamp
        m.pose.orientation.w = 1.0
        m.pose.position.z = 0.3 if m is sphere else 0.36
        m.scale.x = m.scale.y = m.scale.z = size
        m.color = _colour(rgb)
        markers.append(m)
    return MarkerArray(markers=markers)
