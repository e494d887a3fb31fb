"""An Azure ML entry script, exactly as it would run under azmlinfsrv."""

import json
import os

import joblib
import numpy as np


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    names = ["setosa", "versicolor", "virginica"]
    return [names[i] for i in model.predict(data)]
