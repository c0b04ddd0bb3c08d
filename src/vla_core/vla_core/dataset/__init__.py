"""LeRobotDataset v3.0 datasets: a crash-safe writer and a random-access reader (pyarrow + PyAV, no ROS)."""
from vla_core.dataset.layout import CODEBASE_VERSION, DatasetError
from vla_core.dataset.reader import DatasetReader, load_meta
from vla_core.dataset.writer import DatasetWriter, EpisodeWriter

__all__ = ["CODEBASE_VERSION", "DatasetError", "DatasetReader", "DatasetWriter", "EpisodeWriter", "load_meta"]
