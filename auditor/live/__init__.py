"""The live side: what the cluster holds, and how it changes.

:mod:`.client` talks to the API server (discovery, paged lists, watches, the writes a revert
makes); :mod:`.watch` follows every in-scope kind's changes (list, then watch with resume,
bookmarks and a relist on 410); :mod:`.audittail` follows an API-server audit log across
rotation; :mod:`.snapshot` writes the cluster's objects to a file and reads such files back.
"""
