"""The desired side: what Git declares.

:mod:`.gitrepo` clones, checks out and attributes files to commits; :mod:`.render` turns
files into objects (plain YAML/JSON, kustomize, Helm); :mod:`.state` assembles them into the
run's :class:`~auditor.desired.state.DesiredState`, keyed, namespaced and attributed;
:mod:`.parsecache` and :mod:`.statecache` let a steady run skip what did not change.
"""
