"""The Ray lane (``--backend ray``): the backend, its cluster, the replicas it deploys, scaling."""
