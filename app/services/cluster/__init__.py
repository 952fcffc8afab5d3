"""More than one machine (SPEC §10): the registry, cluster cap and write lock that instances share in Redis.

Without REDIS_URL nothing here is used. Forwarding a request to the instance that owns its session is the
API's job (`app.api.forwarding`); this package only knows who owns what.
"""
