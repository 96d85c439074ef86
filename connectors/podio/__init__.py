"""Podio: a small typed client on httpx (pypodio2 cannot run on Python 3), sync streams
for the Postventa apps, and write-back primitives."""
