"""MLflow "models from code" entry point of the jdlens pyfunc (see jdlens/pyfunc.py); MLflow runs this file
when it loads the model, so the model is never pickled."""

import mlflow
from mlflow.pyfunc import PythonModel

from jdlens.pyfunc import JDLensPyfunc


class JDLensPythonModel(JDLensPyfunc, PythonModel):
    """`JDLensPyfunc` as an `mlflow.pyfunc.PythonModel`."""


mlflow.models.set_model(JDLensPythonModel())
