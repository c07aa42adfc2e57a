"""The scoring engine now lives in the core package (`jdlens.engine`), shared by the CLI, the HTTP service,
batch scoring and the MLflow pyfunc; this module keeps `from serving.engine import Engine, Limits` working."""

from jdlens.engine import Engine, Limits, Prepared

__all__ = ["Engine", "Limits", "Prepared"]
