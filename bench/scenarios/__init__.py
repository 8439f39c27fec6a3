"""The benchmark's scenarios: raw library limits, the by-the-book baseline, the services."""
