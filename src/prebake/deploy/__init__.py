"""Manifests for engines that already exist: Kubernetes (``kubernetes.py``) and KServe (``kserve.py``).

Everything here is a pure function from data to data: a validated ``DeploySpec`` (``spec.py``) becomes
a list of plain dicts, and ``render.py`` turns those into YAML text. Nothing talks to a cluster, and
nothing is written until every manifest rendered.
"""
