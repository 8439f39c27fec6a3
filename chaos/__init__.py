"""Fault injection against the whole platform: six kinds of processes, killed and restarted
under load, then checked for lost and duplicated effects (`make chaos`, tests/test_chaos.py)."""
