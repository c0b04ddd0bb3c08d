"""Parameters of the perception node (pure data: ``vla up`` validates parameter files against them)."""
from vla_core.params import ParamSpec

PERCEPTION_PARAMS = (
    ParamSpec("contract", "params/robots/tabletop_sim.yaml", "Robot contract (YAML): its cameras, sizes and fps",
              read_only=True),
    ParamSpec("transport", "raw", "raw: subscribe <camera topic> (sensor_msgs/Image); compressed: "
              "<camera topic>/compressed (sensor_msgs/CompressedImage, JPEG or PNG)",
              choices=("raw", "compressed"), read_only=True),
    ParamSpec("output_prefix", "observation/images", "Model-ready images go to <output_prefix>/<camera>",
              read_only=True),
    ParamSpec("depth_scale", 0.001, "Metres per unit of 16UC1 depth images", range=(1e-6, 1.0), unit="m",
              read_only=True),
    ParamSpec("stale_after", 0.5, "A camera whose newest frame is older than this is reported stale (ERROR)",
              range=(0.01, 60.0), unit="s"),
    ParamSpec("max_future_stamp", 5.0, "A frame stamped further than this ahead of the node clock is dropped and "
              "counted (dropped_future_stamp): it would look fresh to every consumer. Under use_sim_time the node's "
              "view of /clock lags the simulator's stamps by its queueing delay times the real-time factor: keep it "
              "above that", range=(0.0, 600.0), unit="s"),
    ParamSpec("diagnostics_period", 1.0, "Period of /diagnostics", range=(0.1, 60.0), unit="s"),
    ParamSpec("overlay", True, "Publish ~/overlay (debug image with the policy's proposal) while subscribed",
              read_only=True),
    ParamSpec("overlay_camera", "", "Camera drawn on ~/overlay; empty: the contract's first camera",
              read_only=True),
    ParamSpec("overlay_width", 384, "Width of ~/overlay (the model-ready frame, enlarged)", range=(64, 4096),
              unit="px"),
    ParamSpec("overlay_max_rate", 10.0, "Most ~/overlay images per second", range=(0.1, 100.0), unit="Hz"),
    ParamSpec("features", "", "Frozen image features for policies that declare them, published on "
              "observation/features/<camera> (vla_interfaces/FeatureVector); empty: none",
              choices=("", "efficientnet-lite0"), read_only=True),
    ParamSpec("proposal_timeout", 1.0, "A policy command or status older than this is drawn as absent",
              range=(0.01, 60.0), unit="s"),
)
