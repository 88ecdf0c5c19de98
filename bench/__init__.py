"""``make bench``: what one order costs, and throughput and latency, beside the bare stack."""
