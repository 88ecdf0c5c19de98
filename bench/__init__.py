"""``make bench``: throughput and latency of the system beside the bare stack."""
