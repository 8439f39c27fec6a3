"""The goals service: SMART goals, KPIs, action plans and progress."""
