"""`make bench`: the platform measured against the raw library limits, in one run."""
