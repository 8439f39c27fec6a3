"""coachctl: operate the coaching platform through its event streams."""
