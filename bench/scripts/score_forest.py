"""Azure ML entry script for the 100-tree RandomForest: 64 rows per request.

Written the way Azure ML users write them (stdlib json, a global model), so azmlinfsrv and prebake
run the very same file. Body: ``{"data": [[10 floats], ... 64 rows]}``.
"""

import json
import os

import joblib
import numpy as np

model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))


def run(raw_data):
    data = np.asarray(json.loads(raw_data)["data"], dtype=np.float64)
    return model.predict(data).tolist()
