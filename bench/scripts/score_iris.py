"""Azure ML entry script for the iris LogisticRegression: 1 row per request.

Written the way Azure ML users write them (stdlib json, a global model), so azmlinfsrv and prebake
run the very same file. Body: ``{"data": [[sepal_len, sepal_wid, petal_len, petal_wid], ...]}``.
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
