"""The assessment service: instruments, responses, scoring, strengths and development areas."""
