"""The feedback service: check-in schedules, check-ins, progress reviews, reflections, feedback."""
