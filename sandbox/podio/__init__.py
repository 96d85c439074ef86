"""The emulated Podio API (reference podio-api.md), served under ``/podio``."""
