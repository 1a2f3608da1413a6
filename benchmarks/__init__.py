"""`inferq bench`: measurements made side by side with their baselines in one run, printed as ratios."""
