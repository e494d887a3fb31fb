"""Train a tiny iris classifier and save it with joblib (the example model of the README)."""

import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

features, labels = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), sys.argv[1])
