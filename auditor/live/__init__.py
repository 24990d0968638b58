"""The live side: what the cluster holds.

:mod:`.client` talks to the API server (discovery, paged lists, the writes a revert makes);
:mod:`.snapshot` writes the cluster's objects to a file and reads such files back.
"""
