"""Local mode: the hub on one machine with an embedded AWS (moto server).

`chalice local` serves REST routes only, so this package also drives the app's own queue, stream
and schedule handlers the way Lambda's event sources would, calling the same handler objects.
"""
