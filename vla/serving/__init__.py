"""A policy over TCP: the wire format (JSON header + raw array bytes, no pickle), `PolicyServer` and its client
`RemotePolicy`. Numpy only, so a benchmark in another Python environment can be a client.

    from vla.serving.policy_server import PolicyServer, RemotePolicy
"""
