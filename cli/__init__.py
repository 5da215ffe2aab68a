"""The sendmesh command line: run the mesh, send intents, follow them, bench."""
