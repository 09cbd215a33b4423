"""Drafts: a planner's working copy of the active generation, edited, diffed and published."""
