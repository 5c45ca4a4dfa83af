"""The models served: the registry of names and versions, the folder it watches, the loader."""
