"""Processes on machines: what starts, supervises and secures the Flower processes.

The loopback launcher, ``hierfl-client`` (a SuperNode with the device owner's policy), the
long-lived edge worker and its supervisor, TLS material and SuperNode keys, app pinning.
"""
