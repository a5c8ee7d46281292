"""The HTTP front: accepts uploads, records jobs, enqueues them and serves results."""
