"""`sendmesh bench`: the mesh's throughput and latency, against a bare relay."""
